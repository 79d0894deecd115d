/**
 * The runs tab filtered by a schedule: the rows request names it, updates of
 * other runs stay out, and a run record's schedule reaches its row.
 */
import { PAGE_SIZE, RowCache } from '../runs/rowCache';
import { DEFAULT_QUERY, IRunRow, matchesQuery, rowFromRun } from '../runs/rows';
import { listRunRows } from '../runs/viewApi';
import { IRun } from '../types';

const requested: string[] = [];

jest.mock('@jupyterlab/services', () => ({
  ServerConnection: {
    makeSettings: () => ({ baseUrl: 'http://lab/' }),
    makeRequest: async (url: string) => {
      requested.push(url);
      return new Response(JSON.stringify({ rows: [], total: 0, cursor: 0 }), { status: 200 });
    }
  }
}));

function row(id: string, schedule: string | null): IRunRow {
  return {
    id,
    name: `run-${id}`,
    project_name: 'digits',
    entry_point: 'train',
    backend: 'local',
    connection: null,
    backend_job_id: null,
    state: 'FINISHED',
    created_at: Number(id.slice(1)),
    updated_at: 0,
    started_at: null,
    ended_at: null,
    exit_code: null,
    mlflow_run_id: null,
    mlflow_experiment_id: null,
    mlflow_experiment_name: null,
    archived: false,
    schedule_id: schedule
  };
}

describe('runs of one schedule', () => {
  it('are asked for by the rows request', async () => {
    await listRunRows({ ...DEFAULT_QUERY, schedule: 't0123456789a' }, 0, 50);
    await listRunRows({ ...DEFAULT_QUERY }, 0, 50);
    expect(new URL(requested[0]).searchParams.get('schedule')).toBe('t0123456789a');
    expect(new URL(requested[1]).searchParams.has('schedule')).toBe(false);
  });

  it('keep other runs out of the table when updates arrive', () => {
    const query = { ...DEFAULT_QUERY, schedule: 'tA' };
    expect(matchesQuery(row('r1', 'tA'), query)).toBe(true);
    expect(matchesQuery(row('r2', 'tB'), query)).toBe(false);
    expect(matchesQuery(row('r3', null), query)).toBe(false);
    expect(matchesQuery(row('r3', null), DEFAULT_QUERY)).toBe(true);

    const cache = new RowCache(query);
    cache.setPage(0, [row('r1', 'tA')], 1);
    expect(PAGE_SIZE).toBeGreaterThan(1);
    cache.merge([row('r5', 'tB'), row('r6', 'tA')], 10);
    expect([0, 1].map(i => cache.at(i)?.id)).toEqual(['r6', 'r1']);
    expect(cache.total).toBe(2);
  });

  it("carry the run record's schedule", () => {
    const run = {
      id: 'x',
      name: 'nightly-1',
      state: 'RUNNING',
      state_history: [],
      schedule_id: 'tA',
      parameters: {}
    } as unknown as IRun;
    expect(rowFromRun(run).schedule_id).toBe('tA');
    expect(rowFromRun({ ...run, schedule_id: undefined }).schedule_id).toBeNull();
  });
});
