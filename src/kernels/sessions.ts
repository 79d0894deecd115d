/**
 * Which kernels get the magics, and the code that loads them (pure, unit-tested).
 */
import type { Kernel, Session } from '@jupyterlab/services';

/** The same snippet as `jupyterlab_hpcml.magics.AUTOLOAD_CODE`: harmless where the
 * package is not importable, and when run twice. */
export const AUTOLOAD_CODE =
  'try:\n' +
  "    get_ipython().extension_manager.load_extension('jupyterlab_hpcml')\n" +
  'except Exception:\n' +
  '    pass\n';

/** Kernels whose language is Python by their kernelspec name (python3, python, ...). */
export function isPythonKernel(name: string): boolean {
  return /python/i.test(name);
}

/** Kernel ids of notebook sessions not seen before. */
export function newNotebookKernels(
  sessions: Iterable<Session.IModel>,
  seen: ReadonlySet<string>
): Kernel.IModel[] {
  const out: Kernel.IModel[] = [];
  for (const session of sessions) {
    const kernel = session.kernel;
    if (session.type === 'notebook' && kernel && isPythonKernel(kernel.name) && !seen.has(kernel.id)) {
      out.push(kernel);
    }
  }
  return out;
}

