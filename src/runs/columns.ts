/**
 * The columns the runs table can show (setting `columns`), their header,
 * server sort key, width and cell text.
 */
import { TranslationBundle } from '@jupyterlab/translation';

import { durationOf, formatDuration, formatTime, IRunRow, SortKey } from './rows';

export interface IColumn {
  id: string;
  label: string;
  sort: SortKey | null;
  /** CSS grid track. */
  width: string;
  text: (row: IRunRow, now: number, metrics?: Record<string, number | null>) => string;
}

/** Key metrics shown in the `metrics` column (at most this many). */
export const MAX_KEY_METRICS = 3;

export function formatMetric(value: number | null): string {
  if (value === null || !Number.isFinite(value)) {
    return '–';
  }
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e5)) {
    return value.toExponential(2);
  }
  return Number(value.toPrecision(4)).toString();
}

/** `val_accuracy=0.95 train_loss=0.12`: the first few metrics, preferring val/test ones. */
export function keyMetricsText(metrics: Record<string, number | null> | undefined): string {
  if (!metrics) {
    return '';
  }
  const rank = (k: string): number =>
    /^(val|test|eval)/i.test(k) ? 0 : /loss|acc/i.test(k) ? 1 : 2;
  return Object.keys(metrics)
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
    .slice(0, MAX_KEY_METRICS)
    .map(k => `${k}=${formatMetric(metrics[k])}`)
    .join('  ');
}

export function allColumns(trans: TranslationBundle): IColumn[] {
  return [
    {
      id: 'name',
      label: trans.__('Name'),
      sort: 'name',
      width: 'minmax(120px, 2fr)',
      text: r => r.name
    },
    { id: 'state', label: trans.__('State'), sort: 'state', width: '110px', text: r => r.state },
    {
      id: 'backend',
      label: trans.__('Backend'),
      sort: 'backend',
      width: 'minmax(80px, 1fr)',
      text: r =>
        r.connection && r.connection !== r.backend ? `${r.backend}: ${r.connection}` : r.backend
    },
    {
      id: 'entryPoint',
      label: trans.__('Entry point'),
      sort: 'entry_point',
      width: 'minmax(70px, 1fr)',
      text: r => r.entry_point
    },
    {
      id: 'project',
      label: trans.__('Project'),
      sort: 'project',
      width: 'minmax(70px, 1fr)',
      text: r => r.project_name
    },
    {
      id: 'jobId',
      label: trans.__('Job id'),
      sort: 'job_id',
      width: 'minmax(60px, 1fr)',
      text: r => r.backend_job_id ?? ''
    },
    {
      id: 'submitted',
      label: trans.__('Submitted'),
      sort: 'submitted',
      width: '165px',
      text: r => formatTime(r.created_at)
    },
    {
      id: 'duration',
      label: trans.__('Duration'),
      sort: 'duration',
      width: '80px',
      text: (r, now) => formatDuration(durationOf(r, now))
    },
    {
      id: 'metrics',
      label: trans.__('Key metrics'),
      sort: null,
      width: 'minmax(140px, 2fr)',
      text: (_r, _n, m) => keyMetricsText(m)
    },
    {
      id: 'exitCode',
      label: trans.__('Exit'),
      sort: null,
      width: '50px',
      text: r => (r.exit_code === null ? '' : String(r.exit_code))
    },
    {
      id: 'mlflowRunId',
      label: trans.__('MLflow run'),
      sort: null,
      width: 'minmax(80px, 1fr)',
      text: r => r.mlflow_run_id ?? ''
    },
    { id: 'id', label: trans.__('Run id'), sort: null, width: '110px', text: r => r.id }
  ];
}

/** The columns named in the setting, in its order; unknown names are skipped. */
export function shownColumns(names: string[], trans: TranslationBundle): IColumn[] {
  const all = allColumns(trans);
  const chosen = names
    .map(n => all.find(c => c.id === n))
    .filter((c): c is IColumn => c !== undefined);
  return chosen.length ? chosen : all.slice(0, 8);
}
