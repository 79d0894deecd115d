/**
 * Submit button (and "Schedule…" beside it), upload progress, errors no
 * field claims, and the state of the last submitted run.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { errorCount } from '../forms/problems';
import { ScheduleButton } from '../schedules/ScheduleButton';
import { LastSweep, submitLabel } from '../sweeps/LastSweep';
import { formatBytes } from './progress';
import { SubmitModel } from './model';

export function SubmitBar(props: {
  model: SubmitModel;
  trans: TranslationBundle;
  onSubmit: () => void;
  onOpenRun: (id: string) => void;
  /** Open the "Schedule…" dialog for what Submit would send. */
  onSchedule?: () => void;
  /** Open the Schedules tab. */
  onOpenSchedules?: () => void;
  /** Open the Data tab on the project. */
  onOpenData?: () => void;
}): JSX.Element | null {
  const { model, trans } = props;
  if (!model.project || !model.entryPoint) {
    return null;
  }
  const progress = model.progress;
  const fieldErrors = errorCount(model.errors) - model.errors.general.length;
  const last = model.lastRun;
  return (
    <section className="jp-hpcml-Section jp-hpcml-SubmitBar" aria-label={trans.__('Submit')}>
      {model.rerunOf && (
        <p className="jp-hpcml-Note">
          {trans.__(
            'Re-run of %1 (same code snapshot when entry point and config are unchanged).',
            model.rerunOf.name
          )}
        </p>
      )}
      <div className="jp-hpcml-SubmitActions">
        <button
          type="button"
          className="jp-mod-styled jp-mod-accept jp-hpcml-Submit"
          disabled={model.submitting}
          onClick={props.onSubmit}
        >
          {submitLabel(model.submitting, model.sweeps, trans)}
        </button>
        {props.onSchedule && (
          <ScheduleButton model={model} trans={trans} onSchedule={props.onSchedule} />
        )}
      </div>
      {model.submitting && (
        <div className="jp-hpcml-Progress">
          <progress
            max={progress?.total || undefined}
            value={progress ? progress.sent : undefined}
            aria-label={trans.__('Code upload')}
          />
          <span className="jp-hpcml-Muted">
            {model.awaitingCredentials
              ? trans.__('Waiting for the credentials of %1…', model.awaitingCredentials)
              : progress
                ? trans.__('%1 of %2 sent', formatBytes(progress.sent), formatBytes(progress.total))
                : trans.__('Preparing and submitting…')}
          </span>
        </div>
      )}
      {fieldErrors > 0 && (
        <div className="jp-hpcml-Field-error" role="alert">
          {trans._n(
            '%1 problem, shown next to its field.',
            '%1 problems, shown next to their fields.',
            fieldErrors
          )}
        </div>
      )}
      {model.errors.general.length > 0 && (
        <div className="jp-hpcml-Field-error jp-hpcml-General" role="alert">
          {model.errors.general.map((m, i) => (
            <div key={i}>{m}</div>
          ))}
        </div>
      )}
      <LastSweep sweeps={model.sweeps} trans={trans} />
      {last && (
        <div className="jp-hpcml-LastRun" role="status" aria-live="polite">
          <span>{trans.__('Last run:')} </span>
          <button
            type="button"
            className="jp-hpcml-Link"
            onClick={() => props.onOpenRun(last.id)}
            title={trans.__('Open run %1', last.id)}
          >
            {last.name}
          </button>{' '}
          <span className={`jp-hpcml-State jp-hpcml-State-${last.state}`} data-state={last.state}>
            {last.state}
          </span>
        </div>
      )}
      <OpenTabLink
        className="jp-hpcml-OpenSchedules"
        onOpen={props.onOpenSchedules}
        label={trans.__('Open the Schedules tab')}
      />
      <OpenTabLink
        className="jp-hpcml-OpenData"
        onOpen={props.onOpenData}
        label={trans.__('Open the Data tab')}
      />
    </section>
  );
}

/** A link to another tab of the extension; nothing where the lab has no such tab. */
function OpenTabLink(props: {
  className: string;
  onOpen?: () => void;
  label: string;
}): JSX.Element | null {
  if (!props.onOpen) {
    return null;
  }
  return (
    <button type="button" className={`jp-hpcml-Link ${props.className}`} onClick={props.onOpen}>
      {props.label}
    </button>
  );
}
