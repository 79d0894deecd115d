/**
 * The selected model: its description and aliases, the metric comparison
 * across its versions, and its versions newest first.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { IModelActions } from './actions';
import { metricComparison } from './comparison';
import { MetricComparison } from './MetricComparison';
import { ModelsModel } from './modelsModel';
import { VersionCard } from './VersionCard';

export function ModelView(props: {
  model: ModelsModel;
  actions: IModelActions;
  trans: TranslationBundle;
}): JSX.Element {
  const { model, actions, trans } = props;
  const registered = model.model;
  if (!registered) {
    return <p className="jp-hpcml-muted">{trans.__('Loading…')}</p>;
  }
  const shown = model.shownVersions;
  const hidden = registered.versions.length - shown.length;
  return (
    <div className="jp-hpcml-ModelView" data-model={registered.name}>
      <h3 className="jp-hpcml-ModelView-name">{registered.name}</h3>
      {registered.description && <p>{registered.description}</p>}
      {model.deploymentsError && (
        <p className="jp-hpcml-Note">
          {trans.__('Deployments unavailable: %1', model.deploymentsError)}
        </p>
      )}
      <MetricComparison comparison={metricComparison(shown, model.details)} trans={trans} />
      {registered.versions.slice(0, shown.length).map(v => (
        <VersionCard
          key={v.version}
          version={v}
          detail={model.details.get(v.version)}
          deployments={model.deploymentsOf(v.version)}
          actions={actions}
          trans={trans}
        />
      ))}
      {hidden > 0 && (
        <p className="jp-hpcml-muted">
          {trans._n('%1 older version not shown.', '%1 older versions not shown.', hidden)}
        </p>
      )}
    </div>
  );
}
