import { keyMetricsText, shownColumns } from '../runs/columns';
import {
  overrideStrings,
  rerunCommand,
  shellQuote,
  submitCommand,
  mlflowRunUrl
} from '../runs/reproduce';
import { PAGE_SIZE, RowCache } from '../runs/rowCache';
import {
  compareRows,
  DEFAULT_QUERY,
  formatDuration,
  IRowQuery,
  IRunRow,
  matchesQuery,
  rowFromRun
} from '../runs/rows';
import { IRun } from '../types';
import type { TranslationBundle } from '@jupyterlab/translation';

function row(id: string, extra: Partial<IRunRow> = {}): IRunRow {
  return {
    id,
    name: `run-${id}`,
    project_name: 'digits',
    entry_point: 'train',
    backend: 'local',
    connection: null,
    backend_job_id: null,
    state: 'FINISHED',
    created_at: 0,
    updated_at: 0,
    started_at: null,
    ended_at: null,
    exit_code: null,
    mlflow_run_id: null,
    mlflow_experiment_id: null,
    mlflow_experiment_name: null,
    archived: false,
    ...extra
  };
}

const q = (extra: Partial<IRowQuery> = {}): IRowQuery => ({ ...DEFAULT_QUERY, ...extra });

describe('rows', () => {
  it('derive start and end from the state history', () => {
    const run = {
      id: 'x',
      name: 'n',
      project_name: 'p',
      entry_point: 'e',
      backend: 'local',
      state: 'FINISHED',
      created_at: 1,
      updated_at: 9,
      state_history: [
        { state: 'SUBMITTING', at: 1 },
        { state: 'RUNNING', at: 2 },
        { state: 'FINISHED', at: 7 }
      ]
    } as unknown as IRun;
    const r = rowFromRun(run);
    expect([r.started_at, r.ended_at, r.connection, r.backend_job_id]).toEqual([2, 7, null, null]);
  });

  it('format durations', () => {
    expect(formatDuration(null)).toBe('');
    expect(formatDuration(12.4)).toBe('12s');
    expect(formatDuration(187)).toBe('3m 07s');
    expect(formatDuration(3720)).toBe('1h 02m');
  });

  it('sort like the server: key, nulls last either way, then newest first, then id', () => {
    const rows = [
      row('a', { name: 'Bravo', created_at: 1, backend_job_id: '2' }),
      row('b', { name: 'alpha', created_at: 2 }),
      row('c', { name: 'charlie', created_at: 3, backend_job_id: '1' }),
      row('d', { name: 'alpha', created_at: 4 })
    ];
    const ids = (query: IRowQuery): string[] =>
      rows
        .slice()
        .sort((x, y) => compareRows(x, y, query, 10))
        .map(r => r.id);
    expect(ids(q())).toEqual(['d', 'c', 'b', 'a']);
    expect(ids(q({ sort: 'name', descending: false }))).toEqual(['d', 'b', 'a', 'c']);
    expect(ids(q({ sort: 'job_id', descending: false }))).toEqual(['c', 'a', 'd', 'b']);
    expect(ids(q({ sort: 'job_id', descending: true }))).toEqual(['a', 'c', 'd', 'b']);
  });

  it('sort by duration, running rows measured until now', () => {
    const rows = [
      row('done', { started_at: 0, ended_at: 50 }),
      row('live', { state: 'RUNNING', started_at: 80 }),
      row('never', { state: 'QUEUED' })
    ];
    const sorted = rows.slice().sort((x, y) => compareRows(x, y, q({ sort: 'duration' }), 100));
    expect(sorted.map(r => r.id)).toEqual(['done', 'live', 'never']);
  });

  it('filter by state and by text in name, id, entry point, project, job id', () => {
    const r = row('abc123', { state: 'RUNNING', backend_job_id: '4242' });
    expect(matchesQuery(r, q({ states: ['RUNNING'] }))).toBe(true);
    expect(matchesQuery(r, q({ states: ['FAILED'] }))).toBe(false);
    expect(matchesQuery(r, q({ text: 'ABC' }))).toBe(true);
    expect(matchesQuery(r, q({ text: '4242' }))).toBe(true);
    expect(matchesQuery(r, q({ text: 'zzz' }))).toBe(false);
  });
});

describe('RowCache', () => {
  it('knows which pages a window needs and places fetched rows', () => {
    const c = new RowCache(q());
    expect(c.missingPages(0, 50)).toEqual([0]);
    c.setPage(
      0,
      Array.from({ length: PAGE_SIZE }, (_, i) => row(`r${i}`)),
      1000
    );
    expect(c.total).toBe(1000);
    expect(c.complete).toBe(false);
    expect(c.missingPages(150, 450)).toEqual([1, 2]);
    expect(c.at(5)!.id).toBe('r5');
    expect(c.positionOf('r7')).toBe(7);
    expect(c.at(300)).toBeUndefined();
  });

  it('merges `since` updates into a complete list without the server: update, insert, drop, re-sort', () => {
    const c = new RowCache(q({ states: ['RUNNING', 'QUEUED'] }));
    c.setPage(
      0,
      [row('b', { state: 'RUNNING', created_at: 2 }), row('a', { state: 'QUEUED', created_at: 1 })],
      2
    );
    expect(c.complete).toBe(true);
    const r = c.merge(
      [
        row('a', { state: 'RUNNING', created_at: 1 }), // changed, still matches
        row('b', { state: 'FINISHED', created_at: 2 }), // no longer matches the filter
        row('c', { state: 'QUEUED', created_at: 3 }), // new run
        row('d', { state: 'FAILED', created_at: 4 }) // new, filtered out
      ],
      10
    );
    expect(r).toEqual({ changed: true, reload: false });
    expect(c.total).toBe(2);
    expect([c.at(0)!.id, c.at(1)!.id]).toEqual(['c', 'a']);
    expect(c.byId('a')!.state).toBe('RUNNING');
    expect(c.byId('b')).toBeUndefined();
  });

  it('updates loaded rows in place in a partial list, asking for a reload only when positions may move', () => {
    const c = new RowCache(q());
    const page = Array.from({ length: PAGE_SIZE }, (_, i) =>
      row(`r${i}`, { created_at: 1000 - i, state: 'RUNNING' })
    );
    c.setPage(0, page, 5000);
    // A state change keeps the position under the default (submitted) sort.
    let r = c.merge([row('r3', { created_at: 997, state: 'FINISHED' })], 2000);
    expect(r).toEqual({ changed: true, reload: false });
    expect(c.at(3)!.state).toBe('FINISHED');
    // A new run must be placed by the server.
    r = c.merge([row('new', { created_at: 2000 })], 2000);
    expect(r.reload).toBe(true);
    // Under a state filter, a run leaving the filter moves rows.
    const f = new RowCache(q({ states: ['RUNNING'] }));
    f.setPage(0, page, 5000);
    expect(f.merge([row('r1', { state: 'FINISHED', created_at: 999 })], 2000).reload).toBe(true);
    // An unknown run that does not match the filter changes nothing.
    expect(f.merge([row('zz', { state: 'FAILED' })], 2000)).toEqual({
      changed: false,
      reload: false
    });
  });

  it('a new total drops the other pages; invalidate keeps rows but refetches', () => {
    const c = new RowCache(q());
    c.setPage(
      0,
      Array.from({ length: PAGE_SIZE }, (_, i) => row(`r${i}`)),
      1000
    );
    c.setPage(
      1,
      Array.from({ length: PAGE_SIZE }, (_, i) => row(`s${i}`)),
      1001
    );
    expect(c.at(0)).toBeUndefined();
    expect(c.at(PAGE_SIZE)!.id).toBe('s0');
    c.invalidate();
    expect(c.missingPages(PAGE_SIZE, PAGE_SIZE + 10)).toEqual([1]);
    expect(c.at(PAGE_SIZE)!.id).toBe('s0');
  });
});

describe('reproduce commands and columns', () => {
  it('quotes for the shell and builds rerun / submit commands', () => {
    expect(shellQuote('a=b')).toBe('a=b');
    expect(shellQuote("it's")).toBe(`'it'"'"'s'`);
    expect(shellQuote('')).toBe("''");
    expect(rerunCommand({ id: 'abc' })).toBe('hpcml rerun abc');
    expect(
      submitCommand({
        project_relpath: 'examples/digits',
        project_path: '/x/examples/digits',
        entry_point: 'train',
        parameters: { epochs: '5', run_label: 'a b' },
        config_path: 'backend-configs/local.yaml',
        config_overrides: { Resources: { Nodes: 2 } },
        mlflow_experiment_name: 'digits'
      })
    ).toBe(
      "hpcml submit examples/digits -e train -P epochs=5 -P 'run_label=a b' " +
        '-c backend-configs/local.yaml --set Resources.Nodes=2 --experiment-name digits'
    );
    expect(overrideStrings(['A.B=1'])).toEqual(['A.B=1']);
    expect(overrideStrings(null)).toEqual([]);
  });

  it('links to the MLflow UI only with a URL and an MLflow run', () => {
    expect(mlflowRunUrl('http://m:5000/', '1', 'r')).toBe('http://m:5000/#/experiments/1/runs/r');
    expect(mlflowRunUrl('', '1', 'r')).toBeNull();
    expect(mlflowRunUrl('http://m', '1', null)).toBeNull();
  });

  it('shows the configured columns in order and the key metrics, validation first', () => {
    const trans = { __: (text: string) => text } as unknown as TranslationBundle;
    expect(shownColumns(['state', 'name', 'bogus'], trans).map(c => c.id)).toEqual([
      'state',
      'name'
    ]);
    expect(shownColumns([], trans).length).toBeGreaterThan(3);
    expect(
      keyMetricsText({ train_loss: 0.1234567, val_accuracy: 0.95, zeta: 3, epoch_time: 1e-5 })
    ).toBe('val_accuracy=0.95  train_loss=0.1235  epoch_time=1.00e-5');
    expect(keyMetricsText(undefined)).toBe('');
  });
});
