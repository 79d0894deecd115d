/**
 * The next five fire times of the cron being typed (in its zone, and in the
 * user's when that differs), or why there are none.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { zonedTimeText } from './format';
import { ScheduleForm } from './scheduleForm';

export function NextTimes(props: { form: ScheduleForm; trans: TranslationBundle }): JSX.Element {
  const { form, trans } = props;
  const { preview } = form;
  let content: JSX.Element;
  if (preview.pending) {
    content = <span className="jp-hpcml-Muted">{trans.__('Checking…')}</span>;
  } else if (preview.hasErrors) {
    // The messages are shown at their fields (cron, time zone, time).
    content = <span className="jp-hpcml-Muted">{trans.__('No times: see the error above.')}</span>;
  } else if (preview.times.length === 0) {
    content = (
      <span className="jp-hpcml-Muted">
        {form.draft.cron || form.draft.at ? trans.__('It would never fire.') : ''}
      </span>
    );
  } else {
    const zone = preview.timezone ?? form.draft.timezone;
    content = (
      <ol className="jp-hpcml-Schedule-times">
        {preview.times.map(t => (
          <li key={t}>{zonedTimeText(t, zone, trans)}</li>
        ))}
      </ol>
    );
  }
  return (
    <div className="jp-hpcml-Schedule-next" aria-live="polite">
      <div className="jp-hpcml-Field-label">{trans.__('Next times')}</div>
      {content}
      {preview.errors[''] && (
        <div className="jp-hpcml-Field-error" role="alert">
          {preview.errors[''].join('\n')}
        </div>
      )}
    </div>
  );
}
