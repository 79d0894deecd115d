/**
 * Client of the schedules endpoints (handlers/schedules.py).
 */
import { requestAPI } from '../api';
import { ICronPreview, IFiring, ISchedule, IScheduleRequest, IWhen } from './types';

const enc = encodeURIComponent;

function post<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  return requestAPI<T>(path, { method: 'POST', body: JSON.stringify(body), signal });
}

/** Every schedule, each with its latest firing. */
export async function listSchedules(): Promise<ISchedule[]> {
  return (await requestAPI<{ schedules: ISchedule[] }>('schedules')).schedules;
}

/** One schedule with its recent firings, newest first. */
export function getSchedule(id: string): Promise<ISchedule> {
  return requestAPI<ISchedule>(`schedules/${enc(id)}`);
}

/**
 * Create a schedule: checked like a submission (project, parameters, config).
 *
 * @throws {HpcmlApiError} 400 with `problems` keyed `cron`, `timezone`, `at`,
 *   `parameters.<name>`, ...
 */
export function createSchedule(req: IScheduleRequest): Promise<ISchedule> {
  return post<ISchedule>('schedules', req);
}

/**
 * The next fire times of a cron expression or one time.
 *
 * @throws {HpcmlApiError} 400 with `problems` keyed `cron`, `timezone` or `at`
 */
export function previewSchedule(when: IWhen, signal?: AbortSignal): Promise<ICronPreview> {
  return post<ICronPreview>('schedules/preview', when, signal);
}

export async function deleteSchedule(id: string): Promise<void> {
  await requestAPI<void>(`schedules/${enc(id)}`, { method: 'DELETE' });
}

export function pauseSchedule(id: string): Promise<ISchedule> {
  return post<ISchedule>(`schedules/${enc(id)}/pause`, {});
}

export function resumeSchedule(id: string): Promise<ISchedule> {
  return post<ISchedule>(`schedules/${enc(id)}/resume`, {});
}

/** Fire now, outside the schedule's times (its run is created at once). */
export function runScheduleNow(id: string): Promise<IFiring> {
  return post<IFiring>(`schedules/${enc(id)}/run`, {});
}
