/**
 * The Models tab's client against a fake server: names are URL-encoded path
 * segments, an alias moves with PUT {version}, Try it posts its body as is
 * with its Content-Type, and a refusal comes back with the server's message.
 */
import { deploy, getModelVersion, invoke, setAlias, stopDeployment } from '../models/api';
import { invocation } from '../models/request';

interface ICall {
  method: string;
  path: string;
  contentType: string | null;
  body: unknown;
}

const calls: ICall[] = [];
let reply: [number, unknown] = [200, {}];

jest.mock('@jupyterlab/services', () => ({
  ServerConnection: {
    makeSettings: () => ({ baseUrl: 'http://lab/' }),
    makeRequest: async (url: string, init: RequestInit) => {
      calls.push({
        method: init.method ?? 'GET',
        path: new URL(url).pathname.replace('/hpcml/api/', ''),
        contentType: new Headers(init.headers).get('Content-Type'),
        body: init.body
      });
      return new Response(JSON.stringify(reply[1]), { status: reply[0] });
    }
  }
}));

beforeEach(() => {
  calls.length = 0;
  reply = [200, {}];
});

describe('models api', () => {
  it('encodes names and aliases as path segments', async () => {
    await getModelVersion('team/digits v2', '3');
    await setAlias('digits', 'prod #1', '2');
    await stopDeployment('digits');
    expect(calls.map(c => `${c.method} ${c.path}`)).toEqual([
      'GET models/team%2Fdigits%20v2/versions/3',
      'PUT models/digits/aliases/prod%20%231',
      'POST deployments/digits/stop'
    ]);
    expect(JSON.parse(calls[1].body as string)).toEqual({ version: '2' });
  });

  it('posts the payload as is with its Content-Type and returns the answer', async () => {
    reply = [200, { predictions: [4, 2] }];
    expect(await invoke('digits', invocation('csv', 'a,b\n1,2'))).toEqual({ predictions: [4, 2] });
    expect(calls[0]).toEqual({
      method: 'POST',
      path: 'deployments/digits/invocations',
      contentType: 'text/csv',
      body: 'a,b\n1,2\n'
    });
    await invoke('digits', invocation('json', '{"inputs": [[1]]}'));
    expect(calls[1].contentType).toBe('application/json');
    expect(calls[1].body).toBe('{"inputs": [[1]]}');
  });

  it("throws with the server's message", async () => {
    reply = [
      400,
      { error_code: 'BAD_REQUEST', message: 'Incompatible input types for column nope' }
    ];
    await expect(invoke('digits', invocation('json', '{}'))).rejects.toThrow(
      'Incompatible input types for column nope'
    );
    reply = [409, { message: "an active deployment is named 'digits'" }];
    await expect(deploy({ model_uri: 'models:/digits/1' })).rejects.toMatchObject({
      status: 409,
      message: "an active deployment is named 'digits'"
    });
  });
});
