/**
 * "Schedule…" in the submit sidebar: ask for a schedule of what Submit would
 * send, create it, and show it in the Schedules tab.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';

import { CommandIDs } from '../commands';
import { sidebarSubmission, ISidebarState } from './request';
import { scheduleDialog } from './ScheduleDialog';

export async function scheduleFromSidebar(
  app: JupyterFrontEnd,
  state: ISidebarState,
  trans: TranslationBundle
): Promise<void> {
  const base = sidebarSubmission(state);
  if (!base) {
    return;
  }
  const schedule = await scheduleDialog(base, trans);
  if (!schedule) {
    return;
  }
  Notification.success(trans.__('Schedule %1 created.', schedule.name), { autoClose: 4000 });
  await app.commands.execute(CommandIDs.openSchedules, { scheduleId: schedule.id });
}
