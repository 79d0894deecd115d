/**
 * Loads the %hpc_* magics in every Python notebook kernel the lab starts or
 * restarts, when the user enables `loadMagicsInKernels` in the settings.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Kernel } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { SETTINGS_PLUGIN_ID } from '../settings';
import { AUTOLOAD_CODE, newNotebookKernels } from './sessions';

function loadMagics(kernel: Kernel.IKernelConnection): void {
  kernel.requestExecute({ code: AUTOLOAD_CODE, silent: true, store_history: false });
}

/** Runs the snippet now and again after each restart of the kernel. */
function follow(kernel: Kernel.IKernelConnection, enabled: () => boolean): void {
  let restarting = false;
  kernel.statusChanged.connect((_, status) => {
    if (status === 'restarting' || status === 'autorestarting') {
      restarting = true;
    } else if (status === 'idle' && restarting) {
      restarting = false;
      if (enabled()) {
        loadMagics(kernel);
      }
    }
  });
  if (enabled()) {
    loadMagics(kernel);
  }
}

export const autoloadPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-hpcml:autoload-magics',
  description: 'Loads the %hpc_* magics in Python notebook kernels when enabled in the settings.',
  autoStart: true,
  requires: [ISettingRegistry],
  activate: async (app: JupyterFrontEnd, registry: ISettingRegistry): Promise<void> => {
    const settings = await registry.load(SETTINGS_PLUGIN_ID);
    const enabled = (): boolean => settings.composite.loadMagicsInKernels === true;
    const connections = new Map<string, Kernel.IKernelConnection>();
    const { sessions, kernels } = app.serviceManager;
    const onSessions = (): void => {
      const running = Array.from(sessions.running());
      // Let go of the connections of kernels that ended.
      const alive = new Set(running.map(s => s.kernel?.id));
      for (const [id, connection] of connections) {
        if (!alive.has(id)) {
          connection.dispose();
          connections.delete(id);
        }
      }
      if (!enabled()) {
        return;
      }
      for (const model of newNotebookKernels(running, new Set(connections.keys()))) {
        // handleComms: false, or this extra connection may become the kernel's comm
        // handler and close every comm the kernel opens (ipywidgets: "model not found").
        const connection = kernels.connectTo({ model, handleComms: false });
        connections.set(model.id, connection);
        follow(connection, enabled);
      }
    };
    sessions.runningChanged.connect(onSessions);
    onSessions();
  }
};
