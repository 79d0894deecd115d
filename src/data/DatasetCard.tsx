/**
 * One dataset: where it comes from, where the job sees it, its Stage button,
 * and its versions (digest, size, files, current/staged, where staged, the
 * runs that read each).
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { formatTime } from '../runs/rows';
import { shortDigest, sizeText, versionBadges } from './format';
import { IDataset, IDataVersion } from './types';

export interface IDatasetActions {
  stage(names?: string[]): void;
  /** Free a staged version (after asking). */
  free(version: IDataVersion): void;
  openRun(runId: string): void;
}

function VersionRow(props: {
  version: IDataVersion;
  /** Staged by the store (not a path the config maps): it can be freed. */
  canFree: boolean;
  actions: IDatasetActions;
  trans: TranslationBundle;
}): JSX.Element {
  const { version: v, actions, trans } = props;
  return (
    <tr
      className="jp-hpcml-DataVersion"
      data-digest={v.digest}
      data-current={v.current ? 'true' : 'false'}
      data-staged={v.staged ? 'true' : 'false'}
    >
      <td>
        <code title={v.digest}>{shortDigest(v.digest)}</code>{' '}
        {versionBadges(v, trans).map(badge => (
          <span key={badge} className="jp-hpcml-badge jp-hpcml-DataBadge" data-badge={badge}>
            {badge}
          </span>
        ))}
      </td>
      <td>{sizeText(v.size)}</td>
      <td>{v.files ?? ''}</td>
      <td className="jp-hpcml-DataVersion-where" title={v.location ?? ''}>
        {v.staged ? `${v.location ?? ''} (${formatTime(v.staged_at)})` : ''}
      </td>
      <td className="jp-hpcml-DataVersion-runs">
        {v.runs.map(run => (
          <button
            key={run.id}
            type="button"
            className="jp-hpcml-Link"
            data-run-id={run.id}
            data-state={run.state}
            title={trans.__('Open run %1 (%2)', run.id, run.state)}
            onClick={() => actions.openRun(run.id)}
          >
            {run.name}
          </button>
        ))}
      </td>
      <td className="jp-hpcml-DataVersion-actions">
        {v.staged && props.canFree && (
          <button
            type="button"
            className="jp-hpcml-Link jp-hpcml-DataVersion-free"
            aria-label={trans.__('Free version %1', shortDigest(v.digest))}
            onClick={() => actions.free(v)}
          >
            {trans.__('Free')}
          </button>
        )}
      </td>
    </tr>
  );
}

export function DatasetCard(props: {
  dataset: IDataset;
  canStage: boolean;
  busy: boolean;
  actions: IDatasetActions;
  trans: TranslationBundle;
}): JSX.Element {
  const { dataset: ds, canStage, busy, actions, trans } = props;
  const facts: [string, string][] = [
    [trans.__('Source'), `${ds.source} (${ds.kind})`],
    [trans.__('Path in the job'), ds.path],
    [trans.__('Variable'), ds.env]
  ];
  if (ds.mapped_to) {
    facts.push([trans.__('On the target'), ds.mapped_to]);
  }
  return (
    <section className="jp-hpcml-Dataset" data-dataset={ds.name} aria-label={ds.name}>
      <div className="jp-hpcml-Dataset-head">
        <h3 className="jp-hpcml-Dataset-name">{ds.name}</h3>
        {canStage && !ds.mapped_to && (
          <button
            type="button"
            className="jp-mod-styled jp-hpcml-button jp-hpcml-Dataset-stage"
            disabled={busy}
            aria-label={trans.__('Stage %1', ds.name)}
            onClick={() => actions.stage([ds.name])}
          >
            {trans.__('Stage')}
          </button>
        )}
      </div>
      {ds.description && <p className="jp-hpcml-Muted">{ds.description}</p>}
      <table className="jp-hpcml-table jp-hpcml-pairs">
        <tbody>
          {facts.map(([k, v]) => (
            <tr key={k}>
              <th scope="row">{k}</th>
              <td>{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {ds.note && <p className="jp-hpcml-Note">{ds.note}</p>}
      {ds.versions.length === 0 ? (
        <p className="jp-hpcml-muted">{trans.__('No version known yet.')}</p>
      ) : (
        <table className="jp-hpcml-table jp-hpcml-DataVersions">
          <thead>
            <tr>
              <th scope="col">{trans.__('Version')}</th>
              <th scope="col">{trans.__('Size')}</th>
              <th scope="col">{trans.__('Files')}</th>
              <th scope="col">{trans.__('Staged on the target')}</th>
              <th scope="col">{trans.__('Runs')}</th>
              <th scope="col" aria-label={trans.__('Actions')}></th>
            </tr>
          </thead>
          <tbody>
            {ds.versions.map(v => (
              <VersionRow
                key={v.digest}
                version={v}
                canFree={canStage && !ds.mapped_to}
                actions={actions}
                trans={trans}
              />
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
