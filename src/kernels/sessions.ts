/**
 * Which kernels get the magics, and the code that loads them (pure, unit-tested).
 */
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
