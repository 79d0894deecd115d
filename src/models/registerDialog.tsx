/**
 * "Register model…" of a finished run: the model's name (default: the run's
 * project), the artifact path of the logged model, an alias and a
 * description; registers it as a new version.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { Field, FIELD_ID } from '../components/fields';
import { IRun } from '../types';
import { registerModel } from './api';
import { DraftForm, formDialog } from './formDialog';
import { defaultRegisterDraft, IRegisterDraft, registerProblems, registerRequest } from './request';
import { IModelVersion } from './types';

const KEYS: Record<keyof IRegisterDraft, string> = {
  name: 'name',
  path: 'path',
  alias: 'alias',
  description: 'description'
};

function TextField(props: {
  form: DraftForm<IRegisterDraft>;
  field: keyof IRegisterDraft;
  label: string;
  placeholder?: string;
}): JSX.Element {
  const { form, field } = props;
  return (
    <Field name={`model-${field}`} label={props.label} errors={form.errorsOf(field)}>
      {(id, describedBy) => (
        <input
          id={id}
          className="jp-mod-styled"
          value={form.draft[field]}
          placeholder={props.placeholder}
          aria-describedby={describedBy}
          onChange={event => form.set({ [field]: event.target.value })}
        />
      )}
    </Field>
  );
}

/** Ask and register; the new version, or null on Cancel. */
export function registerDialog(run: IRun, trans: TranslationBundle): Promise<IModelVersion | null> {
  return formDialog({
    title: trans.__('Register the model of %1', run.name),
    acceptLabel: trans.__('Register'),
    className: 'jp-hpcml-RegisterDialog',
    form: new DraftForm(defaultRegisterDraft(run.project_name), KEYS),
    fields: form => (
      <>
        <TextField form={form} field="name" label={trans.__('Model name')} />
        <TextField
          form={form}
          field="path"
          label={trans.__('Artifact path of the logged model')}
          placeholder="model"
        />
        <TextField
          form={form}
          field="alias"
          label={trans.__('Alias (optional)')}
          placeholder="champion"
        />
        <TextField form={form} field="description" label={trans.__('Description (optional)')} />
      </>
    ),
    problems: registerProblems,
    submit: draft => registerModel(registerRequest(run.id, draft)),
    focus: `#${FIELD_ID}model-name`
  });
}
