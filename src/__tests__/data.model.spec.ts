/**
 * The Data tab's state against a fake server: the project's datasets fetched
 * for the chosen config; Stage posts what was asked, follows the staging until
 * it is done, then fetches the datasets again; a failed staging and a refused
 * one say why; one staging at a time.
 */
import { ALL, DataModel } from '../data/dataModel';

interface ICall {
  method: string;
  path: string;
  body: unknown;
}

const calls: ICall[] = [];
let stagingPolls = 0;
let stageAnswer: 'ok' | 'failed' | 'refused' = 'ok';
let freed = false;

const PROJECT = { name: 'digits', path: 'examples/digits', backend_configs: [] };

function view(staged: boolean): Record<string, unknown> {
  return {
    project: '/root/examples/digits',
    project_relpath: 'examples/digits',
    backend: 'local',
    connection: 'local',
    can_stage: true,
    datasets: [{ name: 'digits-csv', versions: [{ digest: 'ab'.repeat(32), staged, runs: [] }] }],
    other_staged: [],
    notes: []
  };
}

function staging(state: string): Record<string, unknown> {
  return {
    id: 'abc123',
    state,
    progress: { sent_bytes: stagingPolls, total_bytes: 2, sent_files: 0, total_files: 1 },
    datasets: [],
    error: state === 'failed' ? 'source data/digits-csv is gone' : null
  };
}

function answer(call: ICall): [number, unknown] {
  if (call.path === 'project') {
    return [200, PROJECT];
  }
  if (call.path === 'data') {
    return [200, view(!freed && calls.some(c => c.path === 'data/stage/abc123'))];
  }
  if (call.method === 'DELETE') {
    if (call.path.endsWith('ab'.repeat(32))) {
      freed = true;
      return [200, { digest: 'ab'.repeat(32), deleted: true }];
    }
    return [409, { message: 'an active run reads it', problems: [] }];
  }
  if (call.path === 'data/stage') {
    return stageAnswer === 'refused'
      ? [400, { message: "unknown dataset 'nope'", problems: [] }]
      : [202, staging('running')];
  }
  stagingPolls++;
  const finished = stageAnswer === 'failed' ? 'failed' : 'done';
  return [200, staging(stagingPolls < 2 ? 'running' : finished)];
}

jest.mock('@jupyterlab/services', () => ({
  ServerConnection: {
    makeSettings: () => ({ baseUrl: 'http://lab/' }),
    makeRequest: async (url: string, init: RequestInit) => {
      const parsed = new URL(url);
      const call: ICall = {
        method: init.method ?? 'GET',
        path: parsed.pathname.replace('/hpcml/api/', ''),
        body: typeof init.body === 'string' ? JSON.parse(init.body) : parsed.search
      };
      calls.push(call);
      const [status, body] = answer(call);
      return new Response(JSON.stringify(body), { status });
    }
  }
}));

beforeEach(() => {
  calls.length = 0;
  stagingPolls = 0;
  stageAnswer = 'ok';
  freed = false;
});

async function loaded(): Promise<DataModel> {
  const model = new DataModel(() => 60_000, 1);
  await model.setProject('examples/digits/data', 'slurm.yaml');
  return model;
}

describe('data model', () => {
  it("fetches the project, then its datasets on the config's target", async () => {
    const model = await loaded();
    expect(calls.map(c => [c.path, c.body])).toEqual([
      ['project', '?path=examples%2Fdigits%2Fdata'],
      ['data', '?project=examples%2Fdigits&config=slurm.yaml']
    ]);
    expect(model.view?.datasets.map(d => d.name)).toEqual(['digits-csv']);
    model.setConfig('');
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(calls[2].body).toBe('?project=examples%2Fdigits');
    model.dispose();
  });

  it('stages, follows the staging until done, then shows the datasets again', async () => {
    const model = await loaded();
    const seen: string[] = [];
    model.changed.connect(() => seen.push(model.staging?.state ?? '-'));
    calls.length = 0;
    const done = model.stage(['digits-csv']);
    expect(model.stagingRunning).toBe(true);
    expect(model.stagingOf).toBe('digits-csv');
    await model.stage(); // one at a time: ignored
    await done;
    expect(calls.map(c => `${c.method} ${c.path}`)).toEqual([
      'POST data/stage',
      'GET data/stage/abc123',
      'GET data/stage/abc123',
      'GET data'
    ]);
    expect(calls[0].body).toEqual({
      project: 'examples/digits',
      backend_config: 'slurm.yaml',
      names: ['digits-csv']
    });
    expect(seen).toContain('running');
    expect(model.staging?.state).toBe('done');
    expect(model.stagingRunning).toBe(false);
    expect(model.stageError).toBeNull();
    expect(model.view?.datasets[0].versions[0].staged).toBe(true);
    model.dispose();
  });

  it('says why a staging failed or was refused', async () => {
    const model = await loaded();
    stageAnswer = 'failed';
    await model.stage();
    expect(model.stagingOf).toBe(ALL);
    expect(model.stageError).toBe('source data/digits-csv is gone');
    stageAnswer = 'refused';
    await model.stage(['nope']);
    expect(model.stageError).toBe("unknown dataset 'nope'");
    expect(model.staging).toBeNull();
    expect(model.stagingRunning).toBe(false);
    model.dispose();
  });

  it('frees a staged version on the target, or says why not', async () => {
    const model = await loaded();
    await model.stage(['digits-csv']);
    calls.length = 0;
    await model.freeVersion('cd'.repeat(32));
    expect(model.freeError).toBe('an active run reads it');
    await model.freeVersion('ab'.repeat(32));
    expect(calls.map(c => `${c.method} ${c.path} ${String(c.body)}`)).toEqual([
      `DELETE data/versions/${'cd'.repeat(32)} ?project=examples%2Fdigits&config=slurm.yaml`,
      'GET data ?project=examples%2Fdigits&config=slurm.yaml',
      `DELETE data/versions/${'ab'.repeat(32)} ?project=examples%2Fdigits&config=slurm.yaml`,
      'GET data ?project=examples%2Fdigits&config=slurm.yaml'
    ]);
    expect(model.freeError).toBeNull();
    expect(model.view?.datasets[0].versions[0].staged).toBe(false);
    model.dispose();
  });
});
