/**
 * Deleting and archiving runs from the lab: the REST client calls (method,
 * path, query) and how archived rows leave and join the runs table. Only the
 * network layer (ServerConnection.makeRequest) is fake: it answers like the
 * server extension (see docs/openapi.yaml).
 */
import { deleteRun, setArchived } from '../api';
import { HpcmlApiError } from '../errors';
import { RowCache } from '../runs/rowCache';
import { DEFAULT_QUERY, IRowQuery, IRunRow, matchesQuery, rowFromRun } from '../runs/rows';
import { listRunRows } from '../runs/viewApi';
import { IRun } from '../types';

interface ICall {
  method: string;
  url: string;
}
let calls: ICall[] = [];
let answer: [number, unknown] = [200, {}];

jest.mock('@jupyterlab/services', () => ({
  ServerConnection: {
    makeSettings: () => ({ baseUrl: 'http://lab/' }),
    makeRequest: async (url: string, init: RequestInit) => {
      calls.push({ method: init.method ?? 'GET', url: url.replace('http://lab/hpcml/api/', '') });
      return new Response(JSON.stringify(answer[1]), { status: answer[0] });
    }
  }
}));

beforeEach(() => {
  calls = [];
  answer = [200, {}];
});

function row(id: string, extra: Partial<IRunRow> = {}): IRunRow {
  return {
    ...rowFromRun({ id, name: id, state: 'FINISHED', created_at: 0, updated_at: 0 } as IRun),
    ...extra
  };
}

const q = (extra: Partial<IRowQuery> = {}): IRowQuery => ({ ...DEFAULT_QUERY, ...extra });

describe('REST client', () => {
  it('deletes with DELETE, asking for the MLflow run only when told', async () => {
    const result = {
      id: 'abc123',
      run_dir_removed: true,
      mlflow_run_deleted: false,
      snapshot_removed: false,
      kept: ['MLflow run kept: m1']
    };
    answer = [200, result];
    await expect(deleteRun('abc123')).resolves.toEqual(result);
    await deleteRun('a/b', true);
    expect(calls).toEqual([
      { method: 'DELETE', url: 'runs/abc123' },
      { method: 'DELETE', url: 'runs/a%2Fb?delete_mlflow=true' }
    ]);
  });

  it('reports an active run (409) as an error with the server message', async () => {
    answer = [
      409,
      { message: 'run abc is RUNNING: cancel it first, then delete it', problems: [] }
    ];
    const error = await deleteRun('abc').catch(e => e);
    expect(error).toBeInstanceOf(HpcmlApiError);
    expect(error.status).toBe(409);
    expect(error.message).toContain('cancel it first');
  });

  it('archives and unarchives with POST', async () => {
    answer = [200, { id: 'abc', archived: true }];
    expect((await setArchived('abc', true)).archived).toBe(true);
    await setArchived('abc', false);
    expect(calls).toEqual([
      { method: 'POST', url: 'runs/abc/archive' },
      { method: 'POST', url: 'runs/abc/unarchive' }
    ]);
  });

  it('asks for archived rows only when they are shown', async () => {
    answer = [200, { rows: [], total: 0, cursor: 0 }];
    await listRunRows(q(), 0, 10);
    await listRunRows(q({ archived: true }), 0, 10);
    expect(calls[0].url).not.toContain('archived');
    expect(new URLSearchParams(calls[1].url.split('?')[1]).get('archived')).toBe('true');
  });
});

describe('archived rows in the table', () => {
  it('rows carry the flag; the default query leaves archived rows out', () => {
    const archived = rowFromRun({ id: 'x', state: 'FINISHED', archived: true } as IRun);
    expect(archived.archived).toBe(true);
    expect(rowFromRun({ id: 'y', state: 'FINISHED' } as IRun).archived).toBe(false);
    expect(matchesQuery(archived, q())).toBe(false);
    expect(matchesQuery(archived, q({ archived: true }))).toBe(true);
    expect(matchesQuery(row('z'), q())).toBe(true);
  });

  it('a run archived elsewhere leaves the list, and comes back when unarchived', () => {
    const c = new RowCache(q());
    c.setPage(0, [row('b', { created_at: 2 }), row('a', { created_at: 1 })], 2);
    c.merge([row('b', { created_at: 2, archived: true })], 10);
    expect(c.total).toBe(1);
    expect(c.byId('b')).toBeUndefined();
    c.merge([row('b', { created_at: 2, archived: false })], 10);
    expect([c.at(0)!.id, c.at(1)!.id]).toEqual(['b', 'a']);

    const all = new RowCache(q({ archived: true }));
    all.setPage(0, [row('a', { created_at: 1 })], 1);
    all.merge([row('a', { created_at: 1, archived: true })], 10);
    expect(all.byId('a')!.archived).toBe(true);
  });
});
