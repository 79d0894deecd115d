import type { Session } from '@jupyterlab/services';

import { isPythonKernel, newNotebookKernels } from '../kernels/sessions';

function session(id: string, type: string, kernelName: string | null): Session.IModel {
  return {
    id,
    name: id,
    path: `${id}.ipynb`,
    type,
    kernel: kernelName ? { id: `k-${id}`, name: kernelName } : null
  } as Session.IModel;
}

describe('autoload of the magics', () => {
  it('recognises Python kernels by their kernelspec name', () => {
    expect(isPythonKernel('python3')).toBe(true);
    expect(isPythonKernel('conda-env-ml-python')).toBe(true);
    expect(isPythonKernel('ir')).toBe(false);
  });

  it('picks new Python notebook kernels only, once', () => {
    const sessions = [
      session('a', 'notebook', 'python3'),
      session('b', 'console', 'python3'),
      session('c', 'notebook', 'julia-1.10'),
      session('d', 'notebook', null),
      session('e', 'notebook', 'python3')
    ];
    const seen = new Set(['k-e']);
    expect(newNotebookKernels(sessions, seen).map(k => k.id)).toEqual(['k-a']);
  });
});
