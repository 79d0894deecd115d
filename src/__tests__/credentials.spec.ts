/**
 * Credentials asked in the UI: the server's `credentials_missing` answer is
 * recognised, the dialog's values go to PUT credentials, and the submission
 * is sent once more. Only the network layer (ServerConnection.makeRequest)
 * is fake: a tiny router answering like the server extension's contract.
 */
import type { TranslationBundle } from '@jupyterlab/translation';

import { forgetCredentials, listCredentials, setCredentials, submitRun } from '../api';
import { errorFromResponse, HpcmlApiError } from '../errors';
import {
  AskCredentials,
  credentialsNeeded,
  destinationText,
  fieldLabel,
  fieldSetLabel,
  ICredentialsEntry,
  ICredentialsNeeded,
  isSecretField,
  problemField,
  secretDestination
} from '../sidebar/credentials';
import { SubmitModel } from '../sidebar/model';
import { IProblem, IProject, IRun } from '../types';

interface ICall {
  method: string;
  path: string;
  body: any;
}
type Answer = [number, unknown];
type Route = (call: ICall) => Answer;

let routes: Record<string, Route[]> = {};
let calls: ICall[] = [];

/** Answer `METHOD path` (path without the query) with each route in turn, the last one then on. */
function route(key: string, ...answers: Route[]): void {
  routes[key] = answers;
}

jest.mock('@jupyterlab/services', () => ({
  ServerConnection: {
    makeSettings: () => ({ baseUrl: 'http://lab/' }),
    makeRequest: async (url: string, init: RequestInit) => {
      const { pathname } = new URL(url);
      const path = pathname.replace('/hpcml/api/', '');
      const method = init.method ?? 'GET';
      const call = {
        method,
        path: url.replace('http://lab/hpcml/api/', ''),
        body: undefined as any
      };
      call.body = typeof init.body === 'string' ? JSON.parse(init.body) : undefined;
      calls.push(call);
      const queue = routes[`${method} ${path}`];
      if (!queue) {
        return new Response(JSON.stringify({ message: 'Not Found' }), { status: 404 });
      }
      const [status, body] = (queue.length > 1 ? queue.shift()! : queue[0])(call);
      return new Response(status === 204 ? null : JSON.stringify(body), { status });
    }
  }
}));

// The model polls the new run with window.setTimeout.
(globalThis as any).window = globalThis;

const trans = {
  __: (text: string, ...args: unknown[]) =>
    args.reduce<string>((out, arg, i) => out.replace(`%${i + 1}`, String(arg)), text)
} as unknown as TranslationBundle;

const API_URL = 'https://127.0.0.1:9/rest/core';
const CONNECTION = `unicore:${API_URL}`;
const MISSING = {
  message: 'no UNICORE credentials: set MANTIK_UNICORE_USERNAME and MANTIK_UNICORE_PASSWORD',
  problems: [],
  reason: 'credentials_missing',
  kind: 'unicore',
  connection: CONNECTION,
  fields: [['username', 'password'], ['token']],
  api_url: API_URL
};
const FC_API = 'https://firecrest.example.org';
const FC_TOKEN = 'https://auth.example.org/realms/x/token';
const FC_MISSING = {
  message: 'no FirecREST credentials',
  problems: [],
  reason: 'credentials_missing',
  kind: 'firecrest',
  connection: `firecrest:${FC_API}#daint token=${FC_TOKEN}`,
  fields: [['client_id', 'client_secret'], ['api_key']],
  api_url: FC_API,
  token_url: FC_TOKEN
};
const STORED = {
  connection: CONNECTION,
  kind: 'unicore',
  fields: ['password', 'username'],
  api_url: API_URL,
  secret_sent_to: API_URL
};
const SECRET = 's3cret-v@lue';

const project: IProject = {
  name: 'digits',
  path: 'digits',
  mlproject_file: 'digits/MLproject',
  env_note: null,
  entry_points: [{ name: 'main', command: 'python train.py', parameters: [], json_schema: {} }],
  backend_configs: [
    {
      path: 'backend-configs/unicore.yaml',
      kind: 'unicore',
      connection: CONNECTION,
      config: { Name: 'JUWELS' },
      problems: []
    }
  ]
};

const run = { id: 'r1', name: 'main-1', state: 'UNKNOWN', state_history: [] } as unknown as IRun;

const ok =
  (body: unknown): Route =>
  () => [200, body];
const missing: Route = () => [400, MISSING];
const created: Route = () => [201, run];

beforeEach(() => {
  routes = {};
  calls = [];
  route('GET project', ok(project));
  route('GET experiments', ok({ experiments: [] }));
  route('GET runs', ok({ runs: [], total: 0 }));
  route('GET runs/r1', ok(run));
});

/** A fake dialog answering `answers` in turn, and what it was shown. */
function asking(...answers: (ICredentialsEntry | null)[]) {
  const seen: { needed: ICredentialsNeeded; problems: IProblem[]; choice: number }[] = [];
  const ask: AskCredentials = async (needed, problems, choice) => {
    seen.push({ needed, problems, choice });
    return answers.shift() ?? null;
  };
  return { ask, seen };
}

async function modelWith(ask?: AskCredentials): Promise<SubmitModel> {
  const model = new SubmitModel({
    defaultBackend: () => 'unicore',
    pollInterval: () => 60,
    askCredentials: ask
  });
  expect(await model.loadProject('digits')).toBe(true);
  expect(model.configPath).toBe('backend-configs/unicore.yaml');
  return model;
}

/** Whether `text` is anywhere in the object graph (the model's state). */
function holds(value: unknown, text: string, seen = new Set<unknown>()): boolean {
  if (typeof value === 'string') {
    return value.includes(text);
  }
  if (typeof value !== 'object' || value === null || seen.has(value)) {
    return false;
  }
  seen.add(value);
  return Object.values(value).some(v => holds(v, text, seen));
}

const posts = (path: string) => calls.filter(c => c.method !== 'GET' && c.path === path);

describe('the credentials_missing answer', () => {
  it('is an HpcmlApiError with reason, kind, connection and fields', () => {
    const error = errorFromResponse(400, 'Bad Request', JSON.stringify(MISSING));
    expect(error.status).toBe(400);
    expect(error.reason).toBe('credentials_missing');
    expect(error.kind).toBe('unicore');
    expect(error.connection).toBe(CONNECTION);
    expect(error.fields).toEqual([['username', 'password'], ['token']]);
    expect(credentialsNeeded(error)).toEqual({
      kind: 'unicore',
      connection: CONNECTION,
      fields: [['username', 'password'], ['token']],
      message: MISSING.message,
      apiUrl: API_URL
    });
  });

  it('says where the secret of each set of fields is sent, and nowhere else', () => {
    const fc = credentialsNeeded(errorFromResponse(400, '', JSON.stringify(FC_MISSING)))!;
    expect(fc).toMatchObject({ apiUrl: FC_API, tokenUrl: FC_TOKEN });
    expect(secretDestination(fc, ['client_id', 'client_secret'])).toBe(FC_TOKEN);
    expect(secretDestination(fc, ['api_key'])).toBe(FC_API);
    expect(destinationText(fc, ['client_id', 'client_secret'], trans)).toBe(
      `The client secret is sent only to the token endpoint ${FC_TOKEN}; ` +
        `the access token it yields, only to the API ${FC_API}.`
    );
    expect(destinationText(fc, ['api_key'], trans)).toBe(`The API key is sent only to ${FC_API}.`);

    const uc = credentialsNeeded(errorFromResponse(400, '', JSON.stringify(MISSING)))!;
    expect(destinationText(uc, ['username', 'password'], trans)).toBe(
      `The password is sent only to ${API_URL}.`
    );
    expect(destinationText(uc, ['token'], trans)).toBe(
      `The bearer token is sent only to ${API_URL}.`
    );
    // An older server that does not say where: no sentence rather than a wrong one.
    const silent = credentialsNeeded(
      errorFromResponse(
        400,
        '',
        JSON.stringify({ ...FC_MISSING, api_url: undefined, token_url: undefined })
      )
    )!;
    expect(secretDestination(silent, ['client_id', 'client_secret'])).toBeNull();
    expect(destinationText(silent, ['client_id', 'client_secret'], trans)).toBe('');
  });

  it('is thrown by requestAPI on a submission', async () => {
    route('POST runs', missing);
    const error = await submitRun({ project: 'digits' }).catch(e => e);
    expect(error).toBeInstanceOf(HpcmlApiError);
    expect(credentialsNeeded(error)?.connection).toBe(CONNECTION);
  });

  it('is not mistaken for other errors', () => {
    const answer = (status: number, body: unknown) =>
      credentialsNeeded(errorFromResponse(status, '', JSON.stringify(body)));
    expect(
      answer(400, { message: 'invalid', problems: [{ message: 'x', key: 'Resources.Nodes' }] })
    ).toBeNull();
    expect(answer(404, { message: '', reason: 'Not Found' })).toBeNull();
    expect(answer(500, MISSING)).toBeNull();
    expect(answer(400, { ...MISSING, connection: undefined })).toBeNull();
    expect(answer(400, { ...MISSING, fields: 'username' })).toBeNull();
    expect(answer(400, { ...MISSING, fields: [['username', 3]] })).toBeNull();
    expect(credentialsNeeded(new Error('credentials_missing'))).toBeNull();
    expect(errorFromResponse(400, '', '<html>').reason).toBeUndefined();
  });

  it('has fields in plain words, secrets in password inputs', () => {
    expect(fieldSetLabel(['username', 'password'], trans)).toBe('User name and password');
    expect(fieldSetLabel(['token'], trans)).toBe('Bearer token');
    expect(fieldSetLabel(['client_id', 'client_secret'], trans)).toBe('Client ID and secret');
    expect(fieldSetLabel(['api_key'], trans)).toBe('API key');
    expect(fieldLabel('client_secret', trans)).toBe('Client secret');
    expect(['password', 'client_secret', 'token', 'api_key', 'new'].every(isSecretField)).toBe(
      true
    );
    expect(['username', 'client_id'].some(isSecretField)).toBe(false);
    expect(problemField({ message: 'must be a non-empty string', key: 'values.password' })).toBe(
      'password'
    );
    expect(problemField({ message: 'give exactly one', key: 'values' })).toBeNull();
  });
});

describe('the credentials REST calls', () => {
  it('PUT, GET and DELETE credentials as the contract says', async () => {
    route('PUT credentials', ok(STORED));
    route('GET credentials', ok({ connections: [STORED] }));
    route('DELETE credentials', () => [204, null]);
    const values = { username: 'alice', password: SECRET };
    const req = { project: 'digits', backend_config: 'backend-configs/unicore.yaml', values };
    expect(await setCredentials(req)).toEqual(STORED);
    expect(await listCredentials()).toEqual([STORED]);
    expect(await forgetCredentials(CONNECTION)).toBeUndefined();
    expect(calls.map(c => [c.method, c.path, c.body])).toEqual([
      ['PUT', 'credentials', req],
      ['GET', 'credentials', undefined],
      ['DELETE', `credentials?connection=${encodeURIComponent(CONNECTION)}`, undefined]
    ]);
  });
});

describe('submitting without credentials', () => {
  let model: SubmitModel | null = null;
  const log = jest.spyOn(console, 'log');
  const warn = jest.spyOn(console, 'warn');
  const error = jest.spyOn(console, 'error');

  afterEach(() => {
    model?.dispose();
    model = null;
    for (const spy of [log, warn, error]) {
      expect(JSON.stringify(spy.mock.calls)).not.toContain(SECRET);
      spy.mockClear();
    }
  });

  it('asks, stores them on the server and submits once more', async () => {
    route('POST runs', missing, created);
    route(
      'PUT credentials',
      ok({ connection: CONNECTION, kind: 'unicore', fields: ['password', 'username'] })
    );
    const { ask, seen } = asking({ choice: 0, values: { username: 'alice', password: SECRET } });
    model = await modelWith(ask);

    expect(await model.submit()).toEqual(run);

    expect(seen).toHaveLength(1);
    expect(seen[0].needed).toMatchObject({ kind: 'unicore', connection: CONNECTION });
    expect(seen[0].needed.fields).toEqual([['username', 'password'], ['token']]);
    expect(seen[0].problems).toEqual([]);
    const [first, retry] = posts('runs');
    expect(retry.body).toEqual(first.body);
    expect(first.body).toMatchObject({
      project: 'digits',
      backend_config: 'backend-configs/unicore.yaml'
    });
    expect(posts('credentials').map(c => c.body)).toEqual([
      {
        project: 'digits',
        backend_config: 'backend-configs/unicore.yaml',
        values: { username: 'alice', password: SECRET }
      }
    ]);
    expect(calls.map(c => `${c.method} ${c.path}`).filter(c => !c.startsWith('GET'))).toEqual([
      'POST runs',
      'PUT credentials',
      'POST runs'
    ]);
    expect(model.lastRun?.id).toBe('r1');
    expect(model.errors.general).toEqual([]);
    expect(model.submitting).toBe(false);
    expect(model.awaitingCredentials).toBeNull();
    // Nothing of the values stays in the sidebar's state.
    expect(holds(model, SECRET)).toBe(false);
  });

  it('says it waits for credentials while the dialog is open', async () => {
    route('POST runs', missing, created);
    route('PUT credentials', ok({ connection: CONNECTION, kind: 'unicore', fields: ['token'] }));
    let during: [boolean, string | null] | null = null;
    model = await modelWith(async () => {
      during = [model!.submitting, model!.awaitingCredentials];
      return { choice: 1, values: { token: SECRET } };
    });
    await model.submit();
    expect(during).toEqual([true, CONNECTION]);
    expect(posts('credentials')[0].body.values).toEqual({ token: SECRET });
  });

  it('shows the original error on Cancel, and stores nothing', async () => {
    route('POST runs', missing);
    const { ask, seen } = asking(null);
    model = await modelWith(ask);

    expect(await model.submit()).toBeNull();

    expect(seen).toHaveLength(1);
    expect(posts('credentials')).toEqual([]);
    expect(posts('runs')).toHaveLength(1);
    expect(model.errors.general).toEqual([MISSING.message]);
    expect(model.lastRun).toBeNull();
    expect(model.submitting).toBe(false);
  });

  it('re-opens the dialog with the problems of a refused PUT', async () => {
    route('POST runs', missing, created);
    route(
      'PUT credentials',
      () => [
        400,
        {
          message: 'invalid',
          problems: [{ message: 'must be a non-empty string', key: 'values.password' }]
        }
      ],
      ok({ connection: CONNECTION, kind: 'unicore', fields: ['token'] })
    );
    const { ask, seen } = asking(
      { choice: 0, values: { username: 'alice', password: ' ' } },
      { choice: 1, values: { token: SECRET } }
    );
    model = await modelWith(ask);

    expect(await model.submit()).toEqual(run);

    expect(seen.map(s => [s.choice, s.problems])).toEqual([
      [0, []],
      [
        0,
        [{ message: 'must be a non-empty string', key: 'values.password', file: null, line: null }]
      ]
    ]);
    expect(posts('credentials')).toHaveLength(2);
    expect(posts('runs')).toHaveLength(2);
  });

  it('retries only once', async () => {
    route('POST runs', missing);
    route('PUT credentials', ok({ connection: 'another', kind: 'unicore', fields: ['token'] }));
    const { ask, seen } = asking(
      { choice: 1, values: { token: SECRET } },
      { choice: 1, values: { token: SECRET } }
    );
    model = await modelWith(ask);

    expect(await model.submit()).toBeNull();

    expect(seen).toHaveLength(1);
    expect(posts('runs')).toHaveLength(2);
    expect(model.errors.general).toEqual([MISSING.message]);
  });

  it('shows a failing PUT as the error', async () => {
    route('POST runs', missing);
    route('PUT credentials', () => [500, { message: 'server exploded' }]);
    const { ask } = asking({ choice: 1, values: { token: SECRET } });
    model = await modelWith(ask);

    expect(await model.submit()).toBeNull();

    expect(posts('runs')).toHaveLength(1);
    expect(model.errors.general).toEqual(['server exploded']);
  });

  it('asks nothing for other errors, or without a dialog', async () => {
    route('POST runs', () => [
      400,
      { message: 'invalid', problems: [{ message: 'the server is unhappy' }] }
    ]);
    const { ask, seen } = asking({ choice: 1, values: { token: SECRET } });
    model = await modelWith(ask);
    expect(await model.submit()).toBeNull();
    expect(seen).toHaveLength(0);
    expect(model.errors.general).toEqual(['the server is unhappy']);
    model.dispose();

    route('POST runs', missing);
    model = await modelWith(undefined);
    expect(await model.submit()).toBeNull();
    expect(posts('credentials')).toEqual([]);
    expect(model.errors.general).toEqual([MISSING.message]);
  });
});
