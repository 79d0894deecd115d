/**
 * The Models tab: the registered models on the left, the selected one on
 * the right. It refreshes on a timer only while shown.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import { UseSignal } from '@jupyterlab/ui-components';
import React from 'react';

import { RefreshButton, RefreshStatus } from '../components/refreshControls';
import { RefreshingPanel } from '../components/refreshingPanel';
import { IModelActions } from './actions';
import { ModelsModel } from './modelsModel';
import { ModelView } from './ModelView';

function ModelList(props: { model: ModelsModel; trans: TranslationBundle }): JSX.Element {
  const { model, trans } = props;
  return (
    <ul className="jp-hpcml-ModelList" aria-label={trans.__('Registered models')}>
      {model.models.map(m => {
        const aliases = Object.keys(m.aliases).length;
        return (
          <li key={m.name}>
            <button
              type="button"
              className="jp-hpcml-ModelList-item"
              data-model={m.name}
              aria-pressed={m.name === model.selectedName}
              onClick={() => model.select(m.name)}
            >
              {m.name}
              {aliases > 0 && (
                <span className="jp-hpcml-muted">
                  {' '}
                  {Object.keys(m.aliases)
                    .map(a => `@${a}`)
                    .join(' ')}
                </span>
              )}
            </button>
          </li>
        );
      })}
    </ul>
  );
}

export class ModelsPanel extends RefreshingPanel<ModelsModel> {
  constructor(
    model: ModelsModel,
    private readonly actions: IModelActions,
    private readonly trans: TranslationBundle
  ) {
    super(model, 'jp-hpcml-Models', trans.__('Models'));
  }

  protected render(): JSX.Element {
    const { model, actions, trans } = this;
    return (
      <UseSignal signal={model.changed}>
        {() => (
          <div className="jp-hpcml-Models-content">
            <div className="jp-hpcml-TabPanel-controls">
              <RefreshButton model={model} trans={trans} />
              <RefreshStatus
                model={model}
                text={trans._n('%1 model', '%1 models', model.models.length)}
                trans={trans}
              />
            </div>
            {model.loaded && model.models.length === 0 && !model.error ? (
              <p className="jp-hpcml-TabPanel-empty">
                {trans.__(
                  'No registered models. Register one from a finished run’s detail view (“Register model…”).'
                )}
              </p>
            ) : (
              <div className="jp-hpcml-Models-body">
                <ModelList model={model} trans={trans} />
                {model.selectedName ? (
                  <ModelView model={model} actions={actions} trans={trans} />
                ) : (
                  <p className="jp-hpcml-muted">{trans.__('Choose a model.')}</p>
                )}
              </div>
            )}
          </div>
        )}
      </UseSignal>
    );
  }
}
