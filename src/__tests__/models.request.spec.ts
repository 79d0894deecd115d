/**
 * What the Models tab sends: the register and deploy requests from their
 * dialogs' drafts, what is refused before sending, and Try it's body and
 * Content-Type.
 */
import {
  defaultDeployDraft,
  defaultRegisterDraft,
  deploymentName,
  deployProblems,
  deployRequest,
  invocation,
  registerProblems,
  registerRequest
} from '../models/request';

describe('register request', () => {
  it("defaults to the run's project name and the path model; sends only what is given", () => {
    const draft = defaultRegisterDraft('digits');
    expect(registerRequest('r1', draft)).toEqual({ run_id: 'r1', name: 'digits', path: 'model' });
    expect(
      registerRequest('r1', {
        name: ' digits ',
        path: ' ',
        alias: ' champion ',
        description: 'first try'
      })
    ).toEqual({
      run_id: 'r1',
      name: 'digits',
      path: 'model',
      alias: 'champion',
      description: 'first try'
    });
  });

  it('needs a name', () => {
    expect(registerProblems(defaultRegisterDraft('digits'))).toEqual({});
    expect(registerProblems({ ...defaultRegisterDraft('digits'), name: '  ' })).toHaveProperty(
      'name'
    );
  });
});

describe('deploy request', () => {
  it('names a deployment after its model as the server accepts it', () => {
    expect(deploymentName('digits')).toBe('digits');
    expect(deploymentName('Digits Classifier_v2!')).toBe('digits-classifier-v2');
    expect(deploymentName('--Ünïcode--')).toBe('n-code');
    expect(deploymentName('___')).toBe('model');
    expect(deploymentName('a'.repeat(70) + '-b')).toBe('a'.repeat(63));
  });

  it('deploys the exact version, on the local backend unless a config is chosen', () => {
    const draft = defaultDeployDraft('digits', 'digits');
    expect(deployProblems(draft)).toEqual({});
    expect(deployRequest('digits', '3', draft)).toEqual({
      model_uri: 'models:/digits/3',
      name: 'digits',
      project: 'digits',
      replicas: 1
    });
    expect(
      deployRequest('digits', '3', { ...draft, config: 'slurm.yaml', replicas: '2', name: '' })
    ).toEqual({
      model_uri: 'models:/digits/3',
      project: 'digits',
      backend_config: 'slurm.yaml',
      replicas: 2
    });
    // A config means nothing without its project.
    expect(deployRequest('digits', '3', { ...draft, project: ' ', config: 'slurm.yaml' })).toEqual({
      model_uri: 'models:/digits/3',
      name: 'digits',
      replicas: 1
    });
  });

  it('refuses a name the server would refuse and replicas out of 1..8', () => {
    const draft = defaultDeployDraft('digits', '');
    expect(deployProblems({ ...draft, name: 'Digits' })).toHaveProperty('name');
    expect(deployProblems({ ...draft, name: '-digits' })).toHaveProperty('name');
    expect(deployProblems({ ...draft, name: 'd'.repeat(64) })).toHaveProperty('name');
    expect(deployProblems({ ...draft, name: 'd'.repeat(63) })).toEqual({});
    for (const replicas of ['0', '9', '1.5', '', 'two']) {
      expect(deployProblems({ ...draft, replicas })).toHaveProperty('replicas');
    }
    expect(deployProblems({ ...draft, replicas: '8' })).toEqual({});
  });
});

describe('invocation', () => {
  it('sends JSON as application/json, CSV as text/csv', () => {
    const json = '{"dataframe_split": {"columns": ["a"], "data": [[1]]}}';
    expect(invocation('json', `  ${json}\n`)).toEqual({
      contentType: 'application/json',
      body: json
    });
    expect(invocation('csv', 'a,b\n1,2\n\n')).toEqual({
      contentType: 'text/csv',
      body: 'a,b\n1,2\n'
    });
  });

  it('says so before sending JSON that does not parse, or nothing', () => {
    expect(() => invocation('json', '{"inputs": [1, 2')).toThrow(/^Not valid JSON: /);
    expect(() => invocation('csv', '  \n')).toThrow('Nothing to send');
  });
});
