/**
 * Loads the %hpc_* magics in every Python notebook kernel the lab starts or
 * restarts, when the user enables `loadMagicsInKernels` in the settings.
 *
 * The snippet is sent on the notebook's own kernel connection as soon as the
 * kernel appears, so it is queued before any cell the user runs.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { SETTINGS_PLUGIN_ID } from '../settings';
import { AUTOLOAD_CODE, isPythonKernel } from './sessions';

function loadMagics(kernel: Kernel.IKernelConnection): void {
  kernel.requestExecute({ code: AUTOLOAD_CODE, silent: true, store_history: false });
}

/** Follows one notebook: each new kernel, and each restart of it. */
function follow(panel: NotebookPanel, enabled: () => boolean): void {
  const context = panel.sessionContext;
  let restarting = false;
  const onKernel = (): void => {
    const kernel = context.session?.kernel;
    if (kernel && enabled() && isPythonKernel(kernel.name)) {
      loadMagics(kernel);
    }
  };
  context.kernelChanged.connect(onKernel);
  context.statusChanged.connect((_, status) => {
    if (status === 'restarting' || status === 'autorestarting') {
      restarting = true;
    } else if (status === 'idle' && restarting) {
      restarting = false;
      onKernel();
    }
  });
  onKernel();
}

export const autoloadPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-hpcml:autoload-magics',
  description: 'Loads the %hpc_* magics in Python notebook kernels when enabled in the settings.',
  autoStart: true,
  requires: [ISettingRegistry, INotebookTracker],
  activate: async (
    app: JupyterFrontEnd,
    registry: ISettingRegistry,
    tracker: INotebookTracker
  ): Promise<void> => {
    const settings = await registry.load(SETTINGS_PLUGIN_ID);
    const enabled = (): boolean => settings.composite.loadMagicsInKernels === true;
    tracker.forEach(panel => follow(panel, enabled));
    tracker.widgetAdded.connect((_, panel) => follow(panel, enabled));
  }
};
