/**
 * Backend config picker and the resources/environment form (generated from
 * the backend-config JSON Schema), with "Save to config file".
 */
import { TranslationBundle } from '@jupyterlab/translation';
import { RJSFValidationError } from '@rjsf/utils';
import React from 'react';

import { configErrorMessage, errorPath } from '../forms/configMessages';
import { getPath } from '../forms/jsonSchema';
import { SchemaForm } from '../forms/SchemaForm';
import { configChoices } from './configChoices';
import { SubmitModel } from './model';
import { Picker } from './Picker';

export function ConfigSection(props: {
  model: SubmitModel;
  trans: TranslationBundle;
}): JSX.Element | null {
  const { model, trans } = props;
  const project = model.project;
  const form = model.configForm;
  const onReset = React.useCallback((path: string[]) => model.resetConfig(path), [model]);
  const data = model.configData;
  const transformErrors = React.useCallback(
    (errors: RJSFValidationError[]) =>
      errors
        .filter(e => e.name !== 'if')
        .map(e => ({
          ...e,
          message: configErrorMessage(e, getPath(data, errorPath(e.property)))
        })),
    [data]
  );
  if (!project || !form) {
    return null;
  }
  const chosen = project.backend_configs.find(c => c.path === model.configPath);
  const hint = chosen
    ? `${chosen.path} · ${chosen.connection ?? chosen.kind ?? ''}`
    : trans.__('Runs on the Jupyter server machine, tracking directly.');
  return (
    <section className="jp-hpcml-Section" aria-label={trans.__('Backend and resources')}>
      <h3 className="jp-hpcml-Section-title">{trans.__('Backend')}</h3>
      <Picker
        id="hpcml-backend-config"
        label={trans.__('Backend config')}
        value={model.configPath}
        options={configChoices(project.backend_configs, trans)}
        onChange={value => model.setConfigPath(value)}
        errors={model.errors.fields.backend_config}
        hint={hint}
        disabled={model.submitting}
      />
      {project.backend_configs
        .filter(c => c.problems.length > 0)
        .map(c => (
          <details key={c.path} className="jp-hpcml-Note">
            <summary>{trans.__('%1 has problems', c.path)}</summary>
            <ul>
              {c.problems.map((p, i) => (
                <li key={i}>
                  {[p.line ? `${p.line}` : '', p.key, p.message].filter(x => x).join(': ')}
                </li>
              ))}
            </ul>
          </details>
        ))}
      <h3 className="jp-hpcml-Section-title">{trans.__('Resources and environment')}</h3>
      <p className="jp-hpcml-Muted">
        {model.configPath
          ? trans.__('Changes apply to this run only, unless saved to the config file.')
          : trans.__('Changes apply to this run only.')}
      </p>
      <SchemaForm
        idPrefix="hpcml-config"
        schema={form.schema}
        uiSchema={form.uiSchema}
        formData={model.configData}
        defaults={model.configOriginal}
        errors={model.errors.config}
        liveValidate={true}
        transformErrors={transformErrors}
        disabled={model.submitting}
        onChange={value => model.setConfigData(value)}
        onReset={onReset}
        trans={trans}
      />
      {model.configPath && (
        <div className="jp-hpcml-Row">
          <button
            type="button"
            className="jp-mod-styled jp-mod-reject"
            disabled={!model.configEdited || model.saving || model.submitting}
            onClick={() => void model.saveConfig()}
          >
            {model.saving ? trans.__('Saving…') : trans.__('Save to config file')}
          </button>
          {model.notice && (
            <span className="jp-hpcml-Muted" role="status">
              {trans.__('Saved to %1', model.notice)}
            </span>
          )}
        </div>
      )}
    </section>
  );
}
