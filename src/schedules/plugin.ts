/**
 * The Schedules plugin: the `hpcml:open-schedules` command (palette, the
 * sidebar's "Schedule…" opens it on the new schedule) and its tab, restored
 * on reload.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { CommandIDs } from '../commands';
import { DEFAULT_SETTINGS, normalizeSettings, SETTINGS_PLUGIN_ID } from '../settings';
import { scheduleActions } from './actions';
import { SchedulesModel } from './schedulesModel';
import { SchedulesPanel } from './SchedulesPanel';

const TRANSLATION_DOMAIN = 'jupyterlab_hpcml';
const TAB_ID = 'hpcml-schedules';

export const schedulesPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-hpcml:schedules',
  description: 'HPC ML Schedules tab: recurring and delayed runs.',
  autoStart: true,
  optional: [ICommandPalette, ISettingRegistry, ITranslator, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null,
    restorer: ILayoutRestorer | null
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

    const tracker = new WidgetTracker<MainAreaWidget<SchedulesPanel>>({ namespace: TAB_ID });
    const create = (): MainAreaWidget<SchedulesPanel> => {
      // Schedules fire minutes apart: no need to ask as often as for runs.
      const model = new SchedulesModel(() => Math.max(2000, pollSeconds * 1000));
      const content = new SchedulesPanel(model, scheduleActions(app, model, trans), trans);
      const widget = new MainAreaWidget({ content });
      widget.id = TAB_ID;
      widget.title.label = trans.__('HPC ML Schedules');
      widget.title.caption = trans.__('Recurring and delayed runs');
      void tracker.add(widget);
      app.shell.add(widget, 'main');
      return widget;
    };

    app.commands.addCommand(CommandIDs.openSchedules, {
      label: trans.__('Open HPC ML Schedules'),
      caption: trans.__('Recurring and delayed runs: next times, history, pause, run now'),
      execute: args => {
        const widget = tracker.find(w => w.id === TAB_ID) ?? create();
        app.shell.activateById(widget.id);
        if (typeof args.scheduleId === 'string' && args.scheduleId) {
          widget.content.model.select(args.scheduleId);
        }
        void widget.content.model.refresh();
        return widget;
      }
    });
    palette?.addItem({ command: CommandIDs.openSchedules, category: trans.__('HPC ML') });

    if (restorer) {
      void restorer.restore(tracker, {
        command: CommandIDs.openSchedules,
        args: () => ({}),
        name: () => 'schedules'
      });
    }
  }
};
