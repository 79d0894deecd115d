/**
 * Where a version came from: its source run (a link to the run's detail),
 * the run's parameters and metrics, its code identity and the dataset
 * versions it read.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { shortDigest } from '../data/format';
import { IRun } from '../types';
import { metricText, shortId } from './format';
import { Pairs } from './Pairs';
import { IModelVersion, IModelVersionDetail } from './types';

function SourceRun(props: {
  run: IRun | null;
  version: IModelVersion;
  openRun: (runId: string) => void;
  trans: TranslationBundle;
}): JSX.Element {
  const { run, version, trans } = props;
  if (!run) {
    return (
      <span title={version.source}>
        {version.mlflow_run_id
          ? trans.__('MLflow run %1 (not an HPC ML run)', shortId(version.mlflow_run_id))
          : version.source}
      </span>
    );
  }
  return (
    <button
      type="button"
      className="jp-hpcml-Link jp-hpcml-Lineage-run"
      data-run-id={run.id}
      title={trans.__('Open run %1', run.id)}
      onClick={() => props.openRun(run.id)}
    >
      {run.name}
    </button>
  );
}

function codeFacts(run: IRun, trans: TranslationBundle): [string, string][] {
  const code = run.code;
  if (!code) {
    return [];
  }
  return [
    [trans.__('Git commit'), code.git_commit ?? trans.__('(not a git repository)')],
    [trans.__('Uncommitted changes hash'), code.git_dirty_hash ?? trans.__('(clean)')],
    [trans.__('Content hash'), code.content_hash]
  ];
}

export function Lineage(props: {
  detail: IModelVersionDetail;
  openRun: (runId: string) => void;
  trans: TranslationBundle;
}): JSX.Element {
  const { detail, trans } = props;
  const run = detail.run;
  const facts: [string, React.ReactNode][] = [
    [
      trans.__('Source run'),
      <SourceRun run={run} version={detail.version} openRun={props.openRun} trans={trans} />
    ],
    [trans.__('Model source'), detail.version.source],
    [trans.__('Flavors'), detail.flavors.join(', ')]
  ];
  if (run) {
    facts.push([trans.__('Project'), `${run.project_name} · ${run.entry_point}`]);
  }
  const datasets = run?.datasets ?? [];
  return (
    <div className="jp-hpcml-Lineage">
      <Pairs pairs={facts} empty="" />
      {run && (
        <>
          <h5>{trans.__('Parameters')}</h5>
          <Pairs
            className="jp-hpcml-Lineage-parameters"
            pairs={Object.entries(run.parameters)}
            empty={trans.__('No parameters.')}
          />
          <h5>{trans.__('Code identity')}</h5>
          <Pairs
            className="jp-hpcml-Lineage-code"
            pairs={codeFacts(run, trans)}
            empty={trans.__('Unknown.')}
          />
          <h5>{trans.__('Data')}</h5>
          <Pairs
            className="jp-hpcml-Lineage-data"
            pairs={datasets.map(d => [
              d.name,
              <code title={d.digest}>{shortDigest(d.digest)}</code>
            ])}
            empty={trans.__('No datasets.')}
          />
        </>
      )}
      <h5>{trans.__('Metrics')}</h5>
      <Pairs
        className="jp-hpcml-Lineage-metrics"
        pairs={Object.entries(detail.metrics).map(([k, v]) => [k, metricText(v)])}
        empty={trans.__('No metrics.')}
      />
    </div>
  );
}
