/**
 * When a schedule fires: repeating (cron) or once (a time), in a time zone,
 * and the next times that gives.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { Field, FIELD_ID } from '../components/fields';
import { knownZones } from './format';
import { NextTimes } from './NextTimes';
import { ScheduleForm } from './scheduleForm';

export function WhenFields(props: { form: ScheduleForm; trans: TranslationBundle }): JSX.Element {
  const { form, trans } = props;
  const { draft } = form;
  const zones = knownZones();
  return (
    <fieldset className="jp-hpcml-Schedule-when">
      <legend>{trans.__('When')}</legend>
      <div role="radiogroup" aria-label={trans.__('Repeat')} className="jp-hpcml-Row">
        {(
          [
            ['cron', trans.__('Repeat (cron)')],
            ['once', trans.__('Once')]
          ] as const
        ).map(([kind, label]) => (
          <label key={kind}>
            <input
              type="radio"
              name={`${FIELD_ID}kind`}
              checked={draft.kind === kind}
              onChange={() => form.set({ kind })}
            />{' '}
            {label}
          </label>
        ))}
      </div>
      {draft.kind === 'cron' ? (
        <Field
          name="cron"
          label={trans.__('Cron expression')}
          description={trans.__(
            'minute hour day-of-month month day-of-week, e.g. 0 3 * * 1-5; or @hourly, @daily, @weekly'
          )}
          errors={form.errorsOf('cron')}
        >
          {(id, describedBy) => (
            <input
              id={id}
              className="jp-mod-styled jp-hpcml-Schedule-cron"
              value={draft.cron}
              placeholder="0 3 * * *"
              spellCheck={false}
              autoComplete="off"
              aria-describedby={describedBy}
              onChange={event => form.set({ cron: event.target.value })}
            />
          )}
        </Field>
      ) : (
        <Field name="at" label={trans.__('Run at')} errors={form.errorsOf('at')}>
          {(id, describedBy) => (
            <input
              id={id}
              type="datetime-local"
              className="jp-mod-styled"
              value={draft.at}
              aria-describedby={describedBy}
              onChange={event => form.set({ at: event.target.value })}
            />
          )}
        </Field>
      )}
      <Field
        name="timezone"
        label={trans.__('Time zone')}
        description={trans.__('The times above are read in this zone (DST included).')}
        errors={form.errorsOf('timezone')}
      >
        {(id, describedBy) => (
          <>
            <input
              id={id}
              className="jp-mod-styled"
              list={`${id}__zones`}
              value={draft.timezone}
              spellCheck={false}
              aria-describedby={describedBy}
              onChange={event => form.set({ timezone: event.target.value })}
            />
            <datalist id={`${id}__zones`}>
              {zones.map(zone => (
                <option key={zone} value={zone} />
              ))}
            </datalist>
          </>
        )}
      </Field>
      <NextTimes form={form} trans={trans} />
    </fieldset>
  );
}
