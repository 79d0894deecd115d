/**
 * State badges of the Schedules tab, styled like the runs tab's.
 */
import React from 'react';

import { firingBadge } from './format';
import { IFiring, ScheduleStatus } from './types';

/** A firing's run state (or, without a run, the firing's own state). */
export function FiringBadge(props: { firing: IFiring }): JSX.Element {
  const { text, state } = firingBadge(props.firing);
  const kind = state ? `jp-hpcml-state-${state}` : `jp-hpcml-firing-${props.firing.state}`;
  return (
    <span className={`jp-hpcml-badge ${kind}`} data-state={text}>
      {text}
    </span>
  );
}

export function StatusBadge(props: { status: ScheduleStatus; text: string }): JSX.Element {
  return (
    <span
      className={`jp-hpcml-badge jp-hpcml-Schedule-status jp-hpcml-Schedule-${props.status}`}
      data-status={props.status}
      title={props.text}
    >
      {props.text}
    </span>
  );
}
