/**
 * Compact run rows of the runs table, their formatting and ordering.
 */
import { IRun, RunState, TERMINAL_STATES } from '../types';

/** One row of GET runs-view/rows (see docs/openapi.yaml). */
export interface IRunRow {
  id: string;
  name: string;
  project_name: string;
  entry_point: string;
  backend: string;
  connection: string | null;
  backend_job_id: string | null;
  state: RunState;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  ended_at: number | null;
  exit_code: number | null;
  mlflow_run_id: string | null;
  mlflow_experiment_id: string | null;
  mlflow_experiment_name: string | null;
  /** Hidden from default listings. */
  archived: boolean;
  /** `sweep`: a sweep's group row (its id is the sweep's); a run otherwise. */
  kind?: 'run' | 'sweep';
  /** A sweep's children by state. */
  counts?: Partial<Record<RunState, number>> | null;
  /** A sweep child's sweep and point index. */
  sweep_id?: string | null;
  sweep_index?: number | null;
  /** A sweep child's point (shown in its row). */
  parameters?: Record<string, string>;
  /** The schedule that created the run. */
  schedule_id?: string | null;
}

/** Answer of GET runs-view/rows. */
export interface IRowPage {
  rows: IRunRow[];
  total: number;
  /** Newest `updated_at` in the store: poll `runs?since=` from here. */
  cursor: number;
}

/** Server-side sort keys (handlers/runs_view.py SORTS). */
export type SortKey =
  | 'name'
  | 'entry_point'
  | 'backend'
  | 'project'
  | 'job_id'
  | 'state'
  | 'submitted'
  | 'updated'
  | 'duration';

/** What the table shows: sort, order and filters. */
export interface IRowQuery {
  sort: SortKey;
  descending: boolean;
  /** Empty: every state. */
  states: RunState[];
  text: string;
  /** Show archived runs too (left out by default). */
  archived: boolean;
  /** Only the runs this schedule created ('' for every run). */
  schedule: string;
}

export const DEFAULT_QUERY: Readonly<IRowQuery> = Object.freeze({
  sort: 'submitted',
  descending: true,
  states: [] as RunState[],
  text: '',
  archived: false,
  schedule: ''
});

export const ACTIVE_STATES: RunState[] = ['STAGING', 'SUBMITTING', 'QUEUED', 'RUNNING', 'UNKNOWN'];

export function isActive(state: RunState): boolean {
  return !TERMINAL_STATES.has(state);
}

/** The row of a full run record (a `runs?since=` update). */
export function rowFromRun(run: IRun): IRunRow {
  const history = run.state_history ?? [];
  const started = history.find(c => c.state === 'RUNNING');
  const ended = history.find(c => TERMINAL_STATES.has(c.state));
  return {
    id: run.id,
    name: run.name,
    project_name: run.project_name,
    entry_point: run.entry_point,
    backend: run.backend,
    connection: run.connection ?? null,
    backend_job_id: run.backend_job_id ?? null,
    state: run.state,
    created_at: run.created_at,
    updated_at: run.updated_at,
    started_at: run.started_at ?? started?.at ?? null,
    ended_at: run.ended_at ?? ended?.at ?? null,
    exit_code: run.exit_code ?? null,
    mlflow_run_id: run.mlflow_run_id ?? null,
    mlflow_experiment_id: run.mlflow_experiment_id ?? null,
    mlflow_experiment_name: run.mlflow_experiment_name ?? null,
    archived: run.archived ?? false,
    kind: 'run',
    sweep_id: run.sweep_id ?? null,
    sweep_index: run.sweep_index ?? null,
    schedule_id: run.schedule_id ?? null,
    ...(run.sweep_id ? { parameters: run.parameters } : {})
  };
}

/** Seconds the run has been running (until now if still running), null if it never ran. */
export function durationOf(row: IRunRow, now: number): number | null {
  if (row.started_at === null) {
    return null;
  }
  return Math.max(0, (row.ended_at ?? now) - row.started_at);
}

/** `1h 02m`, `3m 07s`, `12s`; empty for null. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) {
    return '';
  }
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const pad = (n: number): string => String(n).padStart(2, '0');
  if (h > 0) {
    return `${h}h ${pad(m)}m`;
  }
  if (m > 0) {
    return `${m}m ${pad(sec)}s`;
  }
  return `${sec}s`;
}

/** Local date and time of an epoch-seconds timestamp, `YYYY-MM-DD HH:MM:SS`. */
export function formatTime(epochSeconds: number | null | undefined): string {
  if (epochSeconds === null || epochSeconds === undefined) {
    return '';
  }
  const d = new Date(epochSeconds * 1000);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** The value a row is sorted by (null sorts last in either order, as on the server). */
export function sortValue(row: IRunRow, key: SortKey, now: number): string | number | null {
  switch (key) {
    case 'name':
      return row.name.toLowerCase();
    case 'entry_point':
      return row.entry_point;
    case 'backend':
      return row.backend;
    case 'project':
      return row.project_name;
    case 'job_id':
      return row.backend_job_id;
    case 'state':
      return row.state;
    case 'submitted':
      return row.created_at;
    case 'updated':
      return row.updated_at;
    case 'duration':
      return durationOf(row, now);
  }
}

/** The server's order: by the key (nulls last), then newest first, then id. */
export function compareRows(
  a: IRunRow,
  b: IRunRow,
  query: Pick<IRowQuery, 'sort' | 'descending'>,
  now: number
): number {
  const va = sortValue(a, query.sort, now);
  const vb = sortValue(b, query.sort, now);
  if (va === null || vb === null) {
    if (va !== vb) {
      return va === null ? 1 : -1;
    }
  } else if (va !== vb) {
    const c = va < vb ? -1 : 1;
    return query.descending ? -c : c;
  }
  if (a.created_at !== b.created_at) {
    return b.created_at - a.created_at;
  }
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

const TEXT_FIELDS: (keyof IRunRow)[] = [
  'name',
  'id',
  'entry_point',
  'project_name',
  'backend_job_id'
];

/** Whether a row passes the filters, as the server decides it. */
export function matchesQuery(
  row: IRunRow,
  query: Pick<IRowQuery, 'states' | 'text'> & Partial<Pick<IRowQuery, 'archived' | 'schedule'>>
): boolean {
  if (row.archived && !query.archived) {
    return false;
  }
  if (query.schedule && row.schedule_id !== query.schedule) {
    return false;
  }
  if (query.states.length && !query.states.includes(row.state)) {
    return false;
  }
  const text = query.text.trim().toLowerCase();
  if (!text) {
    return true;
  }
  return TEXT_FIELDS.some(field => {
    const value = row[field];
    return typeof value === 'string' && value.toLowerCase().includes(text);
  });
}
