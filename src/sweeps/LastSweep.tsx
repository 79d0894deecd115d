/**
 * The submit button's label while a parameter sweeps, and the line naming
 * the last sweep submitted from the sidebar.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { SweepForm } from './sweepForm';

/** `Submit`, `Submit sweep (6 runs)`, `Submit sweep`, `Submitting…`. */
export function submitLabel(
  submitting: boolean,
  sweeps: SweepForm,
  trans: TranslationBundle
): string {
  if (submitting) {
    return trans.__('Submitting…');
  }
  if (!sweeps.active) {
    return trans.__('Submit');
  }
  const points = sweeps.preview?.points;
  return points === undefined
    ? trans.__('Submit sweep')
    : trans._n('Submit sweep (%1 run)', 'Submit sweep (%1 runs)', points);
}

export function LastSweep(props: {
  sweeps: SweepForm;
  trans: TranslationBundle;
}): JSX.Element | null {
  const { sweeps, trans } = props;
  const sweep = sweeps.lastSweep;
  if (!sweep) {
    return null;
  }
  const total = Object.values(sweep.counts ?? {}).reduce((n, c) => n + (c ?? 0), 0);
  return (
    <div className="jp-hpcml-LastSweep" role="status" aria-live="polite" data-sweep-id={sweep.id}>
      {trans.__('Last sweep: %1', sweep.name)}{' '}
      <span className="jp-hpcml-Muted">
        {trans._n('(%1 run, see the Runs tab)', '(%1 runs, see the Runs tab)', total)}
      </span>
    </div>
  );
}
