/**
 * The "Schedule…" form's values (as typed), what it sends, and what is wrong
 * with it before anything is sent. No DOM.
 */
import { configOverrides } from '../forms/configForm';
import { JSONObject } from '../forms/jsonSchema';
import { parametersToSubmit } from '../forms/parameterForm';
import { IEntryPoint, IProject, ISubmitRequest } from '../types';
import { browserZone } from './format';
import { CatchUp, CodeMode, IScheduleRequest, IWhen, Overlap } from './types';

/** The form's fields, as typed. */
export interface IScheduleDraft {
  name: string;
  /** Recurring (cron) or one time (at). */
  kind: 'cron' | 'once';
  cron: string;
  /** `YYYY-MM-DDTHH:MM` (a datetime-local input), read in `timezone`. */
  at: string;
  timezone: string;
  overlap: Overlap;
  catchUp: CatchUp;
  catchUpLimit: string;
  code: CodeMode;
  /** Run-name template; empty: the server's `{schedule}-{time:%Y%m%d-%H%M}`. */
  runName: string;
  /** No firing after this time (`YYYY-MM-DDTHH:MM`); empty: none. */
  end: string;
  /** At most this many firings; empty: no limit. */
  maxRuns: string;
}

export const DEFAULT_RUN_NAME = '{schedule}-{time:%Y%m%d-%H%M}';

export function defaultDraft(zone: string = browserZone()): IScheduleDraft {
  return {
    name: '',
    kind: 'cron',
    cron: '',
    at: '',
    timezone: zone,
    overlap: 'skip',
    catchUp: 'latest',
    catchUpLimit: '10',
    code: 'fresh',
    runName: '',
    end: '',
    maxRuns: ''
  };
}

/** What the sidebar's state holds that a submission needs (see SubmitModel). */
export interface ISidebarState {
  project: IProject | null;
  entryPoint: IEntryPoint | null;
  params: JSONObject;
  configPath: string;
  configOriginal: JSONObject;
  configData: JSONObject;
  experiment: string;
}

/** What Submit sends for the sidebar's state (without the run name); null without a project. */
export function sidebarSubmission(state: ISidebarState): ISubmitRequest | null {
  const { project, entryPoint } = state;
  if (!project || !entryPoint) {
    return null;
  }
  return {
    project: project.path,
    entry_point: entryPoint.name,
    parameters: parametersToSubmit(entryPoint, state.params),
    backend_config: state.configPath || null,
    overrides: configOverrides(state.configOriginal, state.configData) ?? [],
    experiment_name: state.experiment.trim() || null
  };
}

/** The `when` part of the draft (what the preview is asked about); null while empty. */
export function whenOf(draft: IScheduleDraft): IWhen | null {
  const timezone = draft.timezone.trim() || null;
  if (draft.kind === 'cron') {
    const cron = draft.cron.trim();
    return cron ? { cron, timezone } : null;
  }
  return draft.at ? { at: draft.at, timezone } : null;
}

function whole(text: string): number | null {
  const t = text.trim();
  return /^\d+$/.test(t) && Number(t) > 0 ? Number(t) : null;
}

/** Problems seen before sending, by request key (`cron`, `at`, `max_runs`, ...). */
export function draftProblems(draft: IScheduleDraft): Record<string, string> {
  const out: Record<string, string> = {};
  if (draft.kind === 'cron' && !draft.cron.trim()) {
    out.cron = 'give a cron expression, e.g. 0 3 * * * or @daily';
  }
  if (draft.kind === 'once' && !draft.at) {
    out.at = 'give the time to run at';
  }
  if (draft.catchUp === 'all' && !whole(draft.catchUpLimit)) {
    out.catch_up_limit = 'the catch-up limit must be a whole number above 0';
  }
  if (draft.maxRuns.trim() && !whole(draft.maxRuns)) {
    out.max_runs = 'max runs must be a whole number above 0';
  }
  return out;
}

/** The body of POST schedules: the sidebar's submission, when, and the policies. */
export function scheduleRequest(base: ISubmitRequest, draft: IScheduleDraft): IScheduleRequest {
  const when = whenOf(draft) ?? {};
  const request: IScheduleRequest = {
    ...base,
    ...when,
    overlap: draft.overlap,
    catch_up: draft.catchUp,
    code: draft.code
  };
  const limit = whole(draft.catchUpLimit);
  if (draft.catchUp === 'all' && limit) {
    request.catch_up_limit = limit;
  }
  const name = draft.name.trim();
  if (name) {
    request.name = name;
  }
  const runName = draft.runName.trim();
  if (runName) {
    request.run_name = runName;
  }
  if (draft.end) {
    request.end = draft.end;
  }
  const maxRuns = whole(draft.maxRuns);
  if (maxRuns) {
    request.max_runs = maxRuns;
  }
  return request;
}
