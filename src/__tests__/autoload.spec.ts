import { AUTOLOAD_CODE, isPythonKernel } from '../kernels/sessions';

describe('autoload of the magics', () => {
  it('recognises Python kernels by their kernelspec name', () => {
    expect(isPythonKernel('python3')).toBe(true);
    expect(isPythonKernel('conda-env-ml-python')).toBe(true);
    expect(isPythonKernel('ir')).toBe(false);
    expect(isPythonKernel('julia-1.10')).toBe(false);
  });

  it('loads the extension and swallows errors where it is not installed', () => {
    expect(AUTOLOAD_CODE).toContain("load_extension('jupyterlab_hpcml')");
    expect(AUTOLOAD_CODE.startsWith('try:')).toBe(true);
  });
});
