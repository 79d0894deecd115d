/**
 * The "Schedule…" request: what Submit would send (the sidebar's project,
 * entry point, typed parameters, config and overrides), the when, the
 * policies; what is refused before sending.
 */
import {
  defaultDraft,
  draftProblems,
  scheduleRequest,
  sidebarSubmission,
  whenOf
} from '../schedules/request';
import { IEntryPoint, IProject } from '../types';
import digits from './forms.digits.json';

const [train] = digits as unknown as IEntryPoint[];

const project: IProject = {
  name: 'digits',
  path: 'examples/digits',
  mlproject_file: 'examples/digits/MLproject',
  entry_points: [train],
  env_note: null,
  backend_configs: []
};

const state = {
  project,
  entryPoint: train,
  params: { epochs: 2, learning_rate: 0.05, run_label: '' },
  configPath: 'slurm.yaml',
  configOriginal: { Resources: { Nodes: 1 } },
  configData: { Resources: { Nodes: 2 } },
  experiment: '  nightly  '
};

describe('schedule request', () => {
  it('carries what Submit sends for the sidebar', () => {
    expect(sidebarSubmission(state)).toEqual({
      project: 'examples/digits',
      entry_point: 'train',
      parameters: { epochs: 2, learning_rate: 0.05, run_label: '' },
      backend_config: 'slurm.yaml',
      overrides: { Resources: { Nodes: 2 } },
      experiment_name: 'nightly'
    });
    expect(
      sidebarSubmission({ ...state, configPath: '', configData: state.configOriginal })
    ).toMatchObject({
      backend_config: null,
      overrides: []
    });
    expect(sidebarSubmission({ ...state, entryPoint: null })).toBeNull();
  });

  it('adds the cron, its zone and the policies', () => {
    const base = sidebarSubmission(state)!;
    const draft = { ...defaultDraft('Europe/Zurich'), cron: ' 0 3 * * * ', name: 'nightly' };
    expect(draftProblems(draft)).toEqual({});
    expect(scheduleRequest(base, draft)).toEqual({
      ...base,
      cron: '0 3 * * *',
      timezone: 'Europe/Zurich',
      name: 'nightly',
      overlap: 'skip',
      catch_up: 'latest',
      code: 'fresh'
    });
  });

  it('sends a one-off time, the catch-up limit, run names, end and max runs only when given', () => {
    const base = sidebarSubmission(state)!;
    const draft = {
      ...defaultDraft('UTC'),
      kind: 'once' as const,
      cron: '0 3 * * *',
      at: '2026-12-24T18:00',
      catchUp: 'all' as const,
      catchUpLimit: '3',
      code: 'pinned' as const,
      overlap: 'cancel-previous' as const,
      runName: 'xmas-{n}',
      end: '2027-01-01T00:00',
      maxRuns: '5'
    };
    const request = scheduleRequest(base, draft);
    expect(request).toMatchObject({
      at: '2026-12-24T18:00',
      timezone: 'UTC',
      catch_up: 'all',
      catch_up_limit: 3,
      code: 'pinned',
      overlap: 'cancel-previous',
      run_name: 'xmas-{n}',
      end: '2027-01-01T00:00',
      max_runs: 5
    });
    expect(request).not.toHaveProperty('cron');
    expect(request).not.toHaveProperty('name');
  });

  it('refuses an empty when and bad numbers before sending', () => {
    expect(draftProblems(defaultDraft('UTC'))).toHaveProperty('cron');
    expect(draftProblems({ ...defaultDraft('UTC'), kind: 'once' })).toHaveProperty('at');
    expect(
      draftProblems({ ...defaultDraft('UTC'), cron: '@daily', catchUp: 'all', catchUpLimit: '0' })
    ).toEqual({ catch_up_limit: 'the catch-up limit must be a whole number above 0' });
    expect(draftProblems({ ...defaultDraft('UTC'), cron: '@daily', maxRuns: 'ten' })).toEqual({
      max_runs: 'max runs must be a whole number above 0'
    });
  });

  it('asks the preview only about a non-empty when', () => {
    expect(whenOf(defaultDraft('UTC'))).toBeNull();
    expect(whenOf({ ...defaultDraft('UTC'), cron: '*/5 * * * *' })).toEqual({
      cron: '*/5 * * * *',
      timezone: 'UTC'
    });
    expect(whenOf({ ...defaultDraft(' '), kind: 'once', at: '2026-12-24T18:00' })).toEqual({
      at: '2026-12-24T18:00',
      timezone: null
    });
  });
});
