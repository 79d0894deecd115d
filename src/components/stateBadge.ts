/** The run state as a coloured badge (runs table, detail view, charts legend). */
import { RunState } from '../types';

/** Every run state, in lifecycle order (the runs tab's state filter lists them so). */
export const RUN_STATES: readonly RunState[] = [
  'STAGING',
  'SUBMITTING',
  'QUEUED',
  'RUNNING',
  'FINISHED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'UNKNOWN'
];

/** A coloured state badge. */
export function stateBadge(state: RunState): HTMLSpanElement {
  const badge = document.createElement('span');
  badge.className = `jp-hpcml-badge jp-hpcml-state-${state}`;
  badge.textContent = state;
  return badge;
}
