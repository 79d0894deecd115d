/**
 * A version's deployments: state badge, message, model URI, Stop, and Try it
 * for a READY one.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React, { useState } from 'react';

import { formatTime } from '../runs/rows';
import { IModelActions } from './actions';
import { TryIt } from './TryIt';
import { DeploymentState, IDeployment } from './types';

export function DeploymentBadge(props: { state: DeploymentState }): JSX.Element {
  return (
    <span className={`jp-hpcml-badge jp-hpcml-deploy-${props.state}`} data-state={props.state}>
      {props.state}
    </span>
  );
}

function DeploymentRow(props: {
  deployment: IDeployment;
  example: string;
  actions: IModelActions;
  trans: TranslationBundle;
}): JSX.Element {
  const { deployment: d, actions, trans } = props;
  const [trying, setTrying] = useState(false);
  const active = d.state === 'STARTING' || d.state === 'READY';
  const where =
    d.connection && d.connection !== d.backend ? `${d.backend}: ${d.connection}` : d.backend;
  return (
    <li className="jp-hpcml-Deployment" data-deployment={d.name} data-state={d.state}>
      <div className="jp-hpcml-Deployment-head">
        <strong className="jp-hpcml-Deployment-name">{d.name}</strong>
        <DeploymentBadge state={d.state} />
        <code className="jp-hpcml-Deployment-uri">{d.model_uri}</code>
        <span className="jp-hpcml-muted">
          {trans._n('%2 · %1 replica', '%2 · %1 replicas', d.replicas, where)} ·{' '}
          {formatTime(d.created_at)}
        </span>
        {d.state === 'READY' && (
          <button
            type="button"
            className="jp-mod-styled jp-hpcml-button jp-hpcml-Deployment-try"
            aria-expanded={trying}
            onClick={() => setTrying(!trying)}
          >
            {trans.__('Try it')}
          </button>
        )}
        {active && (
          <button
            type="button"
            className="jp-mod-styled jp-mod-warn jp-hpcml-Deployment-stop"
            aria-label={trans.__('Stop %1', d.name)}
            onClick={() => void actions.stop(d)}
          >
            {trans.__('Stop')}
          </button>
        )}
      </div>
      {d.message && <div className="jp-hpcml-Deployment-message">{d.message}</div>}
      {trying && d.state === 'READY' && (
        <TryIt deployment={d} example={props.example} send={actions.invoke} trans={trans} />
      )}
    </li>
  );
}

export function Deployments(props: {
  deployments: IDeployment[];
  example: string;
  actions: IModelActions;
  trans: TranslationBundle;
}): JSX.Element | null {
  if (!props.deployments.length) {
    return null;
  }
  return (
    <ul className="jp-hpcml-Deployments" aria-label={props.trans.__('Deployments')}>
      {props.deployments.map(d => (
        <DeploymentRow
          key={d.name + d.created_at}
          deployment={d}
          example={props.example}
          actions={props.actions}
          trans={props.trans}
        />
      ))}
    </ul>
  );
}
