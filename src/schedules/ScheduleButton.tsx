/**
 * "Schedule…" beside the sidebar's Submit button.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import type { SubmitModel } from '../sidebar/model';

export function ScheduleButton(props: {
  model: SubmitModel;
  trans: TranslationBundle;
  onSchedule: () => void;
}): JSX.Element {
  const { model, trans } = props;
  const sweeping = model.sweeps.active;
  return (
    <button
      type="button"
      className="jp-mod-styled jp-hpcml-button jp-hpcml-ScheduleButton"
      disabled={model.submitting || sweeping}
      title={
        sweeping
          ? trans.__('A sweep cannot be scheduled: give each parameter one value.')
          : trans.__('Run this on a schedule (cron) or once at a later time')
      }
      onClick={props.onSchedule}
    >
      {trans.__('Schedule…')}
    </button>
  );
}
