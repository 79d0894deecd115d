/**
 * Run name (defaulted) and MLflow experiment (picker with free text).
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { SubmitModel } from './model';

function Errors(props: { id: string; errors?: string[] }): JSX.Element | null {
  const errors = props.errors ?? [];
  return errors.length ? (
    <div id={props.id} className="jp-hpcml-Field-error" role="alert">
      {errors.map((m, i) => (
        <div key={i}>{m}</div>
      ))}
    </div>
  ) : null;
}

export function RunOptions(props: {
  model: SubmitModel;
  trans: TranslationBundle;
}): JSX.Element | null {
  const { model, trans } = props;
  if (!model.project || !model.entryPoint) {
    return null;
  }
  const fields = model.errors.fields;
  return (
    <section className="jp-hpcml-Section" aria-label={trans.__('Run')}>
      <h3 className="jp-hpcml-Section-title">{trans.__('Run')}</h3>
      <div className="jp-hpcml-Field">
        <label htmlFor="hpcml-run-name" className="jp-hpcml-Field-label">
          {trans.__('Run name')}
        </label>
        <input
          id="hpcml-run-name"
          className="jp-mod-styled"
          value={model.runName}
          disabled={model.submitting}
          aria-describedby={fields.run_name?.length ? 'hpcml-run-name__error' : undefined}
          onChange={event => model.setRunName(event.target.value)}
        />
        <Errors id="hpcml-run-name__error" errors={fields.run_name} />
      </div>
      <div className="jp-hpcml-Field">
        <label htmlFor="hpcml-experiment" className="jp-hpcml-Field-label">
          {trans.__('Experiment')}
        </label>
        <input
          id="hpcml-experiment"
          className="jp-mod-styled"
          list="hpcml-experiment-list"
          value={model.experiment}
          placeholder={model.project.name}
          disabled={model.submitting}
          aria-describedby="hpcml-experiment__description"
          onFocus={() => void model.refreshExperiments()}
          onChange={event => model.setExperiment(event.target.value)}
        />
        <datalist id="hpcml-experiment-list">
          {model.experiments.map(name => (
            <option key={name} value={name} />
          ))}
        </datalist>
        <div id="hpcml-experiment__description" className="jp-hpcml-Field-description">
          {trans.__(
            'MLflow experiment; empty: the project name (%1). A new name creates it.',
            model.project.name
          )}
        </div>
        <Errors id="hpcml-experiment__error" errors={fields.experiment_name} />
      </div>
    </section>
  );
}
