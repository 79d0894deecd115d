/**
 * The Schedules plugin: the `hpcml:open-schedules` command (palette, the
 * sidebar's "Schedule…" opens it on the new schedule) and its tab, restored
 * on reload.
 */
import { CommandIDs } from '../commands';
import { addMainAreaTab } from '../components/mainAreaTab';
import { tabPlugin } from '../components/tabPlugin';
import { scheduleActions } from './actions';
import { SchedulesModel } from './schedulesModel';
import { SchedulesPanel } from './SchedulesPanel';

export const schedulesPlugin = tabPlugin(
  'jupyterlab-hpcml:schedules',
  'HPC ML Schedules tab: recurring and delayed runs.',
  (app, { palette, restorer, trans, pollSeconds }) => {
    addMainAreaTab(app, palette, restorer, {
      id: 'hpcml-schedules',
      label: trans.__('HPC ML Schedules'),
      caption: trans.__('Recurring and delayed runs'),
      createContent: () => {
        // Schedules fire minutes apart: no need to ask as often as for runs.
        const model = new SchedulesModel(() => Math.max(2000, pollSeconds() * 1000));
        return new SchedulesPanel(model, scheduleActions(app, model, trans), trans);
      },
      command: {
        id: CommandIDs.openSchedules,
        label: trans.__('Open HPC ML Schedules'),
        caption: trans.__('Recurring and delayed runs: next times, history, pause, run now'),
        category: trans.__('HPC ML')
      },
      onOpen: (widget, args) => {
        if (typeof args.scheduleId === 'string' && args.scheduleId) {
          widget.content.model.select(args.scheduleId);
        }
        void widget.content.model.refresh();
      },
      restoreArgs: () => ({}),
      restoreName: 'schedules'
    });
  }
);
