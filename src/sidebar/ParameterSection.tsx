/**
 * Entry point picker and its parameter form (generated from the MLproject),
 * each parameter either one value or sweep values.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { SchemaForm } from '../forms/SchemaForm';
import { SweepSettings } from '../sweeps/SweepSettings';
import { sweepableWidget, withSweepWidget } from '../sweeps/SweepWidget';
import { SubmitModel } from './model';
import { Picker } from './Picker';

export function ParameterSection(props: {
  model: SubmitModel;
  trans: TranslationBundle;
}): JSX.Element | null {
  const { model, trans } = props;
  const project = model.project;
  const ep = model.entryPoint;
  const onReset = React.useCallback((path: string[]) => model.resetParam(path), [model]);
  const sweeps = model.sweeps;
  const widget = React.useMemo(() => sweepableWidget(sweeps, trans), [sweeps, trans]);
  const names = ep?.parameters.map(p => p.name) ?? [];
  const uiSchema = model.paramForm
    ? withSweepWidget(model.paramForm.uiSchema, names, widget, sweeps.specs)
    : {};
  if (!project) {
    return null;
  }
  return (
    <section className="jp-hpcml-Section" aria-label={trans.__('Entry point and parameters')}>
      <h3 className="jp-hpcml-Section-title">{trans.__('Entry point')}</h3>
      <Picker
        id="hpcml-entry-point"
        label={trans.__('Entry point')}
        value={ep?.name ?? ''}
        options={project.entry_points.map(e => ({ value: e.name, label: e.name }))}
        onChange={value => model.setEntryPoint(value)}
        errors={model.errors.fields.entry_point}
        hint={ep?.command}
        disabled={model.submitting}
      />
      {ep && model.paramForm && (
        <>
          <h3 className="jp-hpcml-Section-title">{trans.__('Parameters')}</h3>
          {ep.parameters.length === 0 ? (
            <p className="jp-hpcml-Muted">{trans.__('This entry point has no parameters.')}</p>
          ) : (
            <SchemaForm
              idPrefix="hpcml-param"
              schema={model.paramForm.schema}
              uiSchema={uiSchema}
              formData={model.params}
              defaults={model.paramForm.defaults}
              errors={model.paramErrors}
              liveValidate={false}
              disabled={model.submitting}
              onChange={data => model.setParams(data)}
              onReset={onReset}
              trans={trans}
            />
          )}
          <SweepSettings sweeps={sweeps} disabled={model.submitting} trans={trans} />
        </>
      )}
    </section>
  );
}
