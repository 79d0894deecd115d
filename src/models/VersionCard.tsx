/**
 * One version of a model: its aliases, when it was registered, Set alias…
 * and Deploy, its lineage and its deployments.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { formatTime } from '../runs/rows';
import { IModelActions } from './actions';
import { Deployments } from './Deployments';
import { exampleText, sortedAliases } from './format';
import { Lineage } from './Lineage';
import { IDeployment, IModelVersion, IModelVersionDetail } from './types';

export function VersionCard(props: {
  version: IModelVersion;
  detail: IModelVersionDetail | undefined;
  deployments: IDeployment[];
  actions: IModelActions;
  trans: TranslationBundle;
}): JSX.Element {
  const { version: v, detail, actions, trans } = props;
  const servable = detail?.servable ?? false;
  return (
    <section
      className="jp-hpcml-ModelVersion"
      data-version={v.version}
      aria-label={trans.__('%1 version %2', v.name, v.version)}
    >
      <div className="jp-hpcml-ModelVersion-head">
        <h4>{trans.__('Version %1', v.version)}</h4>
        {sortedAliases(v.aliases).map(alias => (
          <span key={alias} className="jp-hpcml-badge jp-hpcml-Alias" data-alias={alias}>
            @{alias}
          </span>
        ))}
        <span className="jp-hpcml-muted">{formatTime(v.created_at)}</span>
        <button
          type="button"
          className="jp-mod-styled jp-hpcml-button jp-hpcml-ModelVersion-alias"
          onClick={() => void actions.setAlias(v)}
        >
          {trans.__('Set alias…')}
        </button>
        <button
          type="button"
          className="jp-mod-styled jp-mod-accept jp-hpcml-ModelVersion-deploy"
          disabled={!servable}
          title={
            detail && !servable
              ? trans.__('Not servable: the model has no python_function flavor.')
              : trans.__('Start a scoring server for this version')
          }
          onClick={() => detail && void actions.deploy(v, detail)}
        >
          {trans.__('Deploy…')}
        </button>
      </div>
      {v.description && <p className="jp-hpcml-muted">{v.description}</p>}
      {detail ? (
        <Lineage detail={detail} openRun={actions.openRun} trans={trans} />
      ) : (
        <p className="jp-hpcml-muted">{trans.__('Loading its lineage…')}</p>
      )}
      <Deployments
        deployments={props.deployments}
        example={exampleText(detail?.input_example)}
        actions={actions}
        trans={trans}
      />
    </section>
  );
}
