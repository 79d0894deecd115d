/**
 * What the Schedules tab's buttons do: pause/resume, run now, delete (after
 * asking), show a schedule's runs in the runs tab, open a run.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';

import { CommandIDs } from '../commands';
import { deleteSchedule, pauseSchedule, resumeSchedule, runScheduleNow } from './api';
import { SchedulesModel } from './schedulesModel';
import { ISchedule } from './types';

export interface IScheduleActions {
  togglePause(schedule: ISchedule): Promise<void>;
  runNow(schedule: ISchedule): Promise<void>;
  remove(schedule: ISchedule): Promise<void>;
  showRuns(schedule: ISchedule): void;
  openRun(runId: string): void;
}

function failure(what: string, reason: unknown): void {
  Notification.error(`${what}: ${reason instanceof Error ? reason.message : String(reason)}`, {
    autoClose: 8000
  });
}

export function scheduleActions(
  app: JupyterFrontEnd,
  model: SchedulesModel,
  trans: TranslationBundle
): IScheduleActions {
  /** Do `action`, then show the result (or say why it failed). */
  const act = async (what: string, action: () => Promise<unknown>): Promise<void> => {
    try {
      await action();
    } catch (reason) {
      failure(what, reason);
    }
    await model.refresh();
  };
  return {
    togglePause: schedule =>
      schedule.paused
        ? act(trans.__('Cannot resume %1', schedule.name), () => resumeSchedule(schedule.id))
        : act(trans.__('Cannot pause %1', schedule.name), () => pauseSchedule(schedule.id)),
    runNow: schedule =>
      act(trans.__('Cannot run %1', schedule.name), async () => {
        const firing = await runScheduleNow(schedule.id);
        if (firing.state === 'failed' || firing.state === 'skipped') {
          throw new Error(firing.message ?? firing.state);
        }
        Notification.success(trans.__('%1: run started.', schedule.name), { autoClose: 4000 });
      }),
    remove: async schedule => {
      const answer = await showDialog({
        title: trans.__('Delete schedule'),
        body: trans.__(
          'Delete the schedule %1 and its history? The runs it created stay.',
          schedule.name
        ),
        buttons: [
          Dialog.cancelButton({ label: trans.__('Keep') }),
          Dialog.warnButton({ label: trans.__('Delete') })
        ]
      });
      if (answer.button.accept) {
        await act(trans.__('Cannot delete %1', schedule.name), async () => {
          await deleteSchedule(schedule.id);
          model.removed(schedule.id);
        });
      }
    },
    showRuns: schedule =>
      void app.commands.execute(CommandIDs.openRuns, {
        schedule: schedule.id,
        scheduleName: schedule.name
      }),
    openRun: runId => void app.commands.execute(CommandIDs.openRun, { runId })
  };
}
