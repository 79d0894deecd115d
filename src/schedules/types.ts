/**
 * Shapes of the schedules API (/hpcml/api/schedules, see docs/openapi.yaml).
 */
import { ISubmitRequest, RunState } from '../types';

export type Overlap = 'skip' | 'allow' | 'cancel-previous';
export type CatchUp = 'latest' | 'none' | 'all';
export type CodeMode = 'fresh' | 'pinned';
export type ScheduleStatus = 'active' | 'paused' | 'ended';
export type FiringState = 'pending' | 'submitted' | 'skipped' | 'failed';

/** One time a schedule fired (keyed by schedule id and scheduled time). */
export interface IFiring {
  schedule_id: string;
  /** Epoch seconds: the time it fired for ("run now": when it was asked). */
  scheduled_at: number;
  /** The run it created (or would have: skipped and failed firings have none). */
  run_id: string;
  state: FiringState;
  /** Fired by "run now". */
  manual: boolean;
  /** Why it was skipped or failed. */
  message?: string | null;
  /** State of the run it created; null when there is no run. */
  run_state?: RunState | null;
}

/** A schedule as the server shows it. */
export interface ISchedule {
  id: string;
  name: string;
  project_relpath?: string | null;
  project_name: string;
  entry_point: string;
  parameters: Record<string, string>;
  backend: string;
  connection?: string | null;
  /** Run-name template ({schedule}, {n}, {time:%Y%m%d}). */
  run_name: string;
  /** Five fields (aliases expanded); null for a one-off. */
  cron?: string | null;
  /** The cron as given, e.g. `@daily`. */
  cron_text?: string | null;
  /** One-off: epoch seconds. */
  at?: number | null;
  /** IANA zone the cron (or the one time) is read in. */
  timezone: string;
  overlap: Overlap;
  catch_up: CatchUp;
  catch_up_limit: number;
  end_at?: number | null;
  max_runs?: number | null;
  fired: number;
  code: CodeMode;
  paused: boolean;
  /** Why it fires no more, else null. */
  ended?: string | null;
  status: ScheduleStatus;
  next_at?: number | null;
  /** The next (up to five) fire times, epoch seconds. */
  next_times: number[];
  /** Runs it created. */
  runs: number;
  /** Times not fired because of the catch-up policy. */
  missed: number;
  created_at: number;
  updated_at: number;
  /** Newest first: the latest only in a listing, up to 50 for one schedule. */
  firings: IFiring[];
}

/** Body of POST /hpcml/api/schedules: a submission (its `run_name` a template, by default
 * `{schedule}-{time:%Y%m%d-%H%M}`) and when it fires. */
export interface IScheduleRequest extends ISubmitRequest, IWhen {
  name?: string | null;
  overlap?: Overlap;
  catch_up?: CatchUp;
  catch_up_limit?: number;
  end?: string | null;
  max_runs?: number | null;
  code?: CodeMode;
}

/** Body of POST /hpcml/api/schedules/preview: a cron expression or one time (ISO 8601
 * without zone, read in `timezone`, e.g. 2026-12-24T18:00). */
export interface IWhen {
  cron?: string | null;
  at?: string | null;
  timezone?: string | null;
}

/** Answer of POST /hpcml/api/schedules/preview. */
export interface ICronPreview {
  cron?: string | null;
  timezone: string;
  /** Epoch seconds. */
  next_times: number[];
}
