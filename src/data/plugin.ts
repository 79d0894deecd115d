/**
 * The Data plugin: the `hpcml:open-data` command (palette, the submit
 * sidebar's "Open the Data tab" opens it on its project and config) and its
 * tab, restored on reload.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { CommandIDs, IOpenDataArgs } from '../commands';
import { addMainAreaTab } from '../components/mainAreaTab';
import { pollIntervalSetting } from '../settings';
import { DataModel } from './dataModel';
import { DataPanel } from './DataPanel';

const TRANSLATION_DOMAIN = 'jupyterlab_hpcml';

export const dataPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-hpcml:data',
  description: "HPC ML Data tab: a project's datasets, their versions, staging.",
  autoStart: true,
  optional: [ICommandPalette, ISettingRegistry, ITranslator, ILayoutRestorer, IDefaultFileBrowser],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null,
    restorer: ILayoutRestorer | null,
    browser: IDefaultFileBrowser | null
  ): void => {
    const trans = (translator ?? nullTranslator).load(TRANSLATION_DOMAIN);
    const pollSeconds = pollIntervalSetting(settingRegistry);

    const openRun = (runId: string): void =>
      void app.commands.execute(CommandIDs.openRun, { runId });
    addMainAreaTab(app, palette, restorer, {
      id: 'hpcml-data',
      label: trans.__('HPC ML Data'),
      caption: trans.__('Datasets: versions, where staged, runs that read them'),
      createContent: () => {
        // Data changes slowly: no need to ask as often as for runs.
        const model = new DataModel(() => Math.max(3000, pollSeconds() * 1000));
        return new DataPanel(model, openRun, trans);
      },
      command: {
        id: CommandIDs.openData,
        label: trans.__('Open HPC ML Data'),
        caption: trans.__("A project's datasets: versions, where staged, Stage"),
        category: trans.__('HPC ML')
      },
      onOpen: async (widget, args) => {
        const { project, config } = args as IOpenDataArgs;
        const model = widget.content.model;
        // Without a project: the file browser's folder (the project at or above it).
        const path = project ?? (model.project ? undefined : (browser?.model.path ?? ''));
        if (path !== undefined) {
          await model.setProject(path, config);
        } else {
          if (config !== undefined) {
            model.setConfig(config);
          }
          await model.refresh();
        }
      },
      // The restorer reopens the tab on this project and config.
      restoreArgs: widget => {
        const model = widget.content.model;
        return model.project ? { project: model.project.path, config: model.config } : {};
      },
      restoreName: 'data'
    });
  }
};
