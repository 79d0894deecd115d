/**
 * The jupyterlab-hpcml frontend plugins.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, showErrorMessage } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { getFeatures } from './api';
import { CommandIDs } from './commands';
import { DEFAULT_SETTINGS, IHpcmlSettings, SETTINGS_PLUGIN_ID, watchSettings } from './settings';
import { autoloadPlugin } from './kernels/autoload';
import { runsPlugins } from './runs/plugin';
import { dataPlugin } from './data/plugin';
import { modelsPlugin } from './models/plugin';
import { schedulesPlugin } from './schedules/plugin';
import { sidebarPlugin } from './sidebar/plugin';
import { showStatusDialog } from './statusDialog';

/** Translation domain of the extension's strings. */
export const TRANSLATION_DOMAIN = 'jupyterlab_hpcml';

export { CommandIDs } from './commands';

const plugin: JupyterFrontEndPlugin<void> = {
  id: SETTINGS_PLUGIN_ID,
  description:
    'Train ML models on HPC clusters: MLflow projects on local, Slurm, FirecREST and UNICORE backends.',
  autoStart: true,
  optional: [ICommandPalette, ISettingRegistry, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null
  ): void => {
    const trans = (translator ?? nullTranslator).load(TRANSLATION_DOMAIN);
    let settings: IHpcmlSettings = { ...DEFAULT_SETTINGS };
    watchSettings(settingRegistry, latest => {
      settings = latest;
    });

    app.commands.addCommand(CommandIDs.showStatus, {
      label: trans.__('Show HPC ML Server Status'),
      caption: trans.__('Show the server extension version and what each backend can do'),
      execute: async () => {
        try {
          const status = await getFeatures();
          await showStatusDialog(status, settings.defaultBackend, trans);
        } catch (error) {
          await showErrorMessage(trans.__('HPC ML server extension unavailable'), error as Error);
        }
      }
    });

    palette?.addItem({
      command: CommandIDs.showStatus,
      category: trans.__('HPC ML')
    });
  }
};

export default [
  plugin,
  sidebarPlugin,
  autoloadPlugin,
  ...runsPlugins,
  schedulesPlugin,
  dataPlugin,
  modelsPlugin
];
