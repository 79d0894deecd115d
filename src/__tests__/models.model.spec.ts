/**
 * The Models tab's state against a fake server: the models listed; selecting
 * one fetches it and the details of its newest versions (each once, however
 * often it refreshes); deployments are filtered by version; deployments the
 * server cannot list leave the registry shown with why; a selection changed
 * while a refresh was on its way keeps the newer one.
 */
import { ModelsModel, VERSIONS_SHOWN } from '../models/modelsModel';

const calls: string[] = [];
let deploymentsStatus = 200;
let versionCount = 2;
/** Answers held back until released (to reorder them). */
const held = new Map<string, () => void>();
let holdPath: string | null = null;

function version(name: string, v: number): Record<string, unknown> {
  return {
    name,
    version: String(v),
    source: `models:/m-${v}`,
    mlflow_run_id: `run${v}`,
    model_id: `m-${v}`,
    aliases: v === 1 ? ['champion'] : [],
    description: null,
    created_at: v,
    status: 'READY'
  };
}

function deployment(
  name: string,
  model: string,
  v: string,
  state: string
): Record<string, unknown> {
  return { name, model_uri: `models:/${model}/${v}`, model_name: model, model_version: v, state };
}

function answer(path: string): [number, unknown] {
  if (path === 'models') {
    return [200, { models: ['digits', 'iris'].map(name => ({ name, aliases: {}, versions: [] })) }];
  }
  if (path === 'deployments') {
    return deploymentsStatus === 200
      ? [
          200,
          {
            deployments: [
              deployment('digits', 'digits', '1', 'READY'),
              deployment('digits-old', 'digits', '2', 'STOPPED'),
              deployment('iris', 'iris', '1', 'READY')
            ]
          }
        ]
      : [404, { message: 'Not Found' }];
  }
  const m = /^models\/([^/]+)(?:\/versions\/(\d+))?$/.exec(path);
  if (!m) {
    return [404, { message: `no route ${path}` }];
  }
  const name = decodeURIComponent(m[1]);
  if (m[2]) {
    return [200, { version: version(name, Number(m[2])), metrics: { acc: Number(m[2]) / 10 } }];
  }
  const versions = Array.from({ length: versionCount }, (_, i) => version(name, versionCount - i));
  return [200, { name, aliases: { champion: '1' }, versions }];
}

jest.mock('@jupyterlab/services', () => ({
  ServerConnection: {
    makeSettings: () => ({ baseUrl: 'http://lab/' }),
    makeRequest: async (url: string) => {
      const path = new URL(url).pathname.replace('/hpcml/api/', '');
      calls.push(path);
      if (path === holdPath) {
        await new Promise<void>(resolve => held.set(path, resolve));
      }
      const [status, body] = answer(path);
      return new Response(JSON.stringify(body), { status });
    }
  }
}));

beforeEach(() => {
  calls.length = 0;
  deploymentsStatus = 200;
  versionCount = 2;
  holdPath = null;
  held.clear();
});

const tick = (): Promise<void> => new Promise(resolve => setTimeout(resolve, 0));

describe('models model', () => {
  it('lists the models; a selected one shows its versions, their details and deployments', async () => {
    const model = new ModelsModel(() => 60_000);
    await model.refresh();
    expect(model.models.map(m => m.name)).toEqual(['digits', 'iris']);
    expect(model.model).toBeNull();
    expect(calls.sort()).toEqual(['deployments', 'models']);

    calls.length = 0;
    model.select('digits');
    await model.refresh();
    expect(model.model?.versions.map(v => v.version)).toEqual(['2', '1']);
    expect(calls).toContain('models/digits/versions/2');
    expect(calls).toContain('models/digits/versions/1');
    expect(model.details.get('2')?.metrics).toEqual({ acc: 0.2 });
    expect(model.deploymentsOf('1').map(d => d.name)).toEqual(['digits']);
    expect(model.deploymentsOf('2').map(d => d.name)).toEqual(['digits-old']);

    // Refreshed: a new version's details are fetched, the known ones not again.
    calls.length = 0;
    versionCount = 3;
    await model.refresh();
    expect(calls.filter(c => c.includes('/versions/'))).toEqual(['models/digits/versions/3']);
    expect(model.shownVersions).toEqual(['3', '2', '1']);
    model.dispose();
  });

  it('fetches the details of the newest versions only', async () => {
    versionCount = VERSIONS_SHOWN + 3;
    const model = new ModelsModel(() => 60_000);
    model.select('digits');
    await model.refresh();
    expect(calls.filter(c => c.includes('/versions/')).length).toBe(VERSIONS_SHOWN);
    expect(model.shownVersions[0]).toBe(String(VERSIONS_SHOWN + 3));
    expect(model.details.has('1')).toBe(false);
    model.dispose();
  });

  it('shows the registry with why the deployments are missing', async () => {
    deploymentsStatus = 404;
    const model = new ModelsModel(() => 60_000);
    model.select('digits');
    await model.refresh();
    expect(model.error).toBeNull();
    expect(model.model?.name).toBe('digits');
    expect(model.deploymentsError).toBe('Not Found');
    expect(model.deployments).toEqual([]);
    model.dispose();
  });

  it('keeps the newer selection when an older answer arrives last', async () => {
    const model = new ModelsModel(() => 60_000);
    holdPath = 'models/digits';
    model.select('digits');
    await tick();
    holdPath = null;
    model.select('iris');
    await model.refresh();
    held.get('models/digits')?.();
    await tick();
    await tick();
    expect(model.selectedName).toBe('iris');
    expect(model.model?.name).toBe('iris');
    expect([...model.details.values()].every(d => d.version.name === 'iris')).toBe(true);
    model.dispose();
  });

  it('shows a deployment changed here at once', async () => {
    const model = new ModelsModel(() => 60_000);
    model.select('digits');
    await model.refresh();
    const stopped = { ...model.deploymentsOf('1')[0], state: 'STOPPED' as const };
    model.updated(stopped);
    expect(model.deploymentsOf('1')).toEqual([stopped]);
    expect(model.deployments.length).toBe(3);
    model.dispose();
  });
});
