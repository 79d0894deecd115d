/**
 * How a schedule behaves: overlap, catch-up, code identity, run names, end.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { Choice, Field } from '../components/fields';
import { DEFAULT_RUN_NAME } from './request';
import { ScheduleForm } from './scheduleForm';
import { CatchUp, CodeMode, Overlap } from './types';

export function PolicyFields(props: { form: ScheduleForm; trans: TranslationBundle }): JSX.Element {
  const { form, trans } = props;
  const { draft } = form;
  return (
    <fieldset className="jp-hpcml-Schedule-policies">
      <legend>{trans.__('Policies')}</legend>
      <Field
        name="overlap"
        label={trans.__('While the previous run is active')}
        errors={form.errorsOf('overlap')}
      >
        {(id, describedBy) => (
          <Choice<Overlap>
            id={id}
            describedBy={describedBy}
            value={draft.overlap}
            choices={[
              ['skip', trans.__('Skip this time')],
              ['allow', trans.__('Run anyway')],
              ['cancel-previous', trans.__('Cancel the previous run')]
            ]}
            onChange={overlap => form.set({ overlap })}
          />
        )}
      </Field>
      <Field
        name="catchUp"
        label={trans.__('Times missed while no server ran')}
        errors={form.errorsOf('catchUp')}
      >
        {(id, describedBy) => (
          <Choice<CatchUp>
            id={id}
            describedBy={describedBy}
            value={draft.catchUp}
            choices={[
              ['latest', trans.__('Run once for the latest')],
              ['none', trans.__('Skip them')],
              ['all', trans.__('Run each (up to a limit)')]
            ]}
            onChange={catchUp => form.set({ catchUp })}
          />
        )}
      </Field>
      {draft.catchUp === 'all' && (
        <Field
          name="catchUpLimit"
          label={trans.__('Catch-up limit')}
          errors={form.errorsOf('catchUpLimit')}
        >
          {(id, describedBy) => (
            <input
              id={id}
              className="jp-mod-styled"
              inputMode="numeric"
              value={draft.catchUpLimit}
              aria-describedby={describedBy}
              onChange={event => form.set({ catchUpLimit: event.target.value })}
            />
          )}
        </Field>
      )}
      <Field
        name="code"
        label={trans.__('Code')}
        description={
          draft.code === 'fresh'
            ? trans.__('Each run takes the project folder as it is then (edits are picked up).')
            : trans.__('Every run uses the snapshot taken now.')
        }
        errors={form.errorsOf('code')}
      >
        {(id, describedBy) => (
          <Choice<CodeMode>
            id={id}
            describedBy={describedBy}
            value={draft.code}
            choices={[
              ['fresh', trans.__('Fresh snapshot at each run')],
              ['pinned', trans.__('Pinned to the code as it is now')]
            ]}
            onChange={code => form.set({ code })}
          />
        )}
      </Field>
      <Field
        name="runName"
        label={trans.__('Run names')}
        description={trans.__('Fields: {schedule}, {n}, {time:%Y%m%d-%H%M}')}
        errors={form.errorsOf('runName')}
      >
        {(id, describedBy) => (
          <input
            id={id}
            className="jp-mod-styled"
            value={draft.runName}
            placeholder={DEFAULT_RUN_NAME}
            spellCheck={false}
            aria-describedby={describedBy}
            onChange={event => form.set({ runName: event.target.value })}
          />
        )}
      </Field>
      <div className="jp-hpcml-Row">
        <Field name="end" label={trans.__('End after (optional)')} errors={form.errorsOf('end')}>
          {(id, describedBy) => (
            <input
              id={id}
              type="datetime-local"
              className="jp-mod-styled"
              value={draft.end}
              aria-describedby={describedBy}
              onChange={event => form.set({ end: event.target.value })}
            />
          )}
        </Field>
        <Field
          name="maxRuns"
          label={trans.__('Max runs (optional)')}
          errors={form.errorsOf('maxRuns')}
        >
          {(id, describedBy) => (
            <input
              id={id}
              className="jp-mod-styled"
              inputMode="numeric"
              value={draft.maxRuns}
              aria-describedby={describedBy}
              onChange={event => form.set({ maxRuns: event.target.value })}
            />
          )}
        </Field>
      </div>
    </fieldset>
  );
}
