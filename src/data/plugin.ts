/**
 * The Data plugin: the `hpcml:open-data` command (palette, the submit
 * sidebar's "Open the Data tab" opens it on its project and config) and its
 * tab, restored on reload.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { CommandIDs, IOpenDataArgs } from '../commands';
import { DEFAULT_SETTINGS, normalizeSettings, SETTINGS_PLUGIN_ID } from '../settings';
import { DataModel } from './dataModel';
import { DataPanel } from './DataPanel';

const TRANSLATION_DOMAIN = 'jupyterlab_hpcml';
const TAB_ID = 'hpcml-data';

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
    let pollSeconds = DEFAULT_SETTINGS.pollInterval;
    settingRegistry
      ?.load(SETTINGS_PLUGIN_ID)
      .then(setting => {
        const update = (): void => {
          pollSeconds = normalizeSettings(setting.composite).pollInterval;
        };
        update();
        setting.changed.connect(update);
      })
      .catch(reason => console.error('jupyterlab-hpcml: cannot load settings.', reason));

    const openRun = (runId: string): void =>
      void app.commands.execute(CommandIDs.openRun, { runId });
    const tracker = new WidgetTracker<MainAreaWidget<DataPanel>>({ namespace: TAB_ID });
    const create = (): MainAreaWidget<DataPanel> => {
      // Data changes slowly: no need to ask as often as for runs.
      const model = new DataModel(() => Math.max(3000, pollSeconds * 1000));
      const content = new DataPanel(model, openRun, trans);
      const widget = new MainAreaWidget({ content });
      widget.id = TAB_ID;
      widget.title.label = trans.__('HPC ML Data');
      widget.title.caption = trans.__('Datasets: versions, where staged, runs that read them');
      void tracker.add(widget);
      app.shell.add(widget, 'main');
      return widget;
    };

    app.commands.addCommand(CommandIDs.openData, {
      label: trans.__('Open HPC ML Data'),
      caption: trans.__("A project's datasets: versions, where staged, Stage"),
      execute: async args => {
        const { project, config } = args as IOpenDataArgs;
        const widget = tracker.find(w => w.id === TAB_ID) ?? create();
        app.shell.activateById(widget.id);
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
        void tracker.save(widget); // the restorer reopens it on this project
        return widget;
      }
    });
    palette?.addItem({ command: CommandIDs.openData, category: trans.__('HPC ML') });

    if (restorer) {
      void restorer.restore(tracker, {
        command: CommandIDs.openData,
        args: widget => {
          const model = widget.content.model;
          return model.project ? { project: model.project.path, config: model.config } : {};
        },
        name: () => 'data'
      });
    }
  }
};
