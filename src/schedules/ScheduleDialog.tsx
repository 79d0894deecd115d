/**
 * The "Schedule…" dialog of the submit sidebar: name, when (with the next
 * times as you type) and policies; what runs is the sidebar's current
 * submission. A refused attempt opens the dialog again with its problems.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import { UseSignal } from '@jupyterlab/ui-components';
import React from 'react';

import { ISubmitRequest } from '../types';
import { createSchedule } from './api';
import { errorsByKey } from './cronPreview';
import { Field, FieldErrors } from '../components/fields';
import { PolicyFields } from './PolicyFields';
import { draftProblems, IScheduleDraft, scheduleRequest, whenOf } from './request';
import { ScheduleForm } from './scheduleForm';
import { ISchedule } from './types';
import { WhenFields } from './WhenFields';
import { DialogBody } from '../components/dialogBody';

class ScheduleBody extends DialogBody implements Dialog.IBodyWidget<IScheduleDraft> {
  constructor(
    private readonly form: ScheduleForm,
    private readonly base: ISubmitRequest,
    private readonly trans: TranslationBundle
  ) {
    super();
    this.addClass('jp-hpcml-ScheduleDialog');
  }

  getValue(): IScheduleDraft {
    return this.form.draft;
  }

  protected render(): JSX.Element {
    const { form, base, trans } = this;
    return (
      <UseSignal signal={form.changed}>
        {() => (
          <>
            <p className="jp-hpcml-Muted">
              {trans.__(
                'Runs %1 (entry point %2) with the sidebar’s parameters and backend config.',
                base.project || '.',
                base.entry_point ?? 'main'
              )}
            </p>
            <FieldErrors id="hpcml-schedule__general" errors={form.generalErrors} />
            <Field name="name" label={trans.__('Name')} errors={form.errorsOf('name')}>
              {(id, describedBy) => (
                <input
                  id={id}
                  className="jp-mod-styled"
                  value={form.draft.name}
                  placeholder={trans.__('default: project and entry point')}
                  aria-describedby={describedBy}
                  onChange={event => form.set({ name: event.target.value })}
                />
              )}
            </Field>
            <WhenFields form={form} trans={trans} />
            <PolicyFields form={form} trans={trans} />
          </>
        )}
      </UseSignal>
    );
  }
}

/**
 * Ask for a schedule of `base` (the sidebar's submission) and create it;
 * the new schedule, or null on Cancel.
 */
export async function scheduleDialog(
  base: ISubmitRequest,
  trans: TranslationBundle,
  form: ScheduleForm = new ScheduleForm()
): Promise<ISchedule | null> {
  form.preview.update(whenOf(form.draft));
  try {
    for (;;) {
      const result = await showDialog<IScheduleDraft>({
        title: trans.__('Schedule runs'),
        body: new ScheduleBody(form, base, trans),
        buttons: [
          Dialog.cancelButton({ label: trans.__('Cancel') }),
          Dialog.okButton({ label: trans.__('Create schedule') })
        ],
        focusNodeSelector: '.jp-hpcml-Schedule-cron, input[type="datetime-local"]'
      });
      if (!result.button.accept) {
        return null;
      }
      const problems = draftProblems(form.draft);
      if (Object.keys(problems).length) {
        form.errors = Object.fromEntries(Object.entries(problems).map(([k, m]) => [k, [m]]));
        continue;
      }
      try {
        return await createSchedule(scheduleRequest(base, form.draft));
      } catch (error) {
        form.errors = errorsByKey(error);
      }
    }
  } finally {
    form.dispose();
  }
}
