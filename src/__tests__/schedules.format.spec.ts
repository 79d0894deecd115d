/**
 * How schedules read: times in a zone (DST included), the user's time beside
 * the schedule's, cron or one time, relative times, badges and status.
 */
import type { TranslationBundle } from '@jupyterlab/translation';

import {
  firingBadge,
  formatInZone,
  nextText,
  relativeText,
  statusText,
  whenText,
  zonedTimeText
} from '../schedules/format';
import { IFiring, ISchedule } from '../schedules/types';

const trans = {
  __: (text: string, ...args: unknown[]) =>
    args.reduce<string>((out, arg, i) => out.replace(`%${i + 1}`, String(arg)), text)
} as unknown as TranslationBundle;

// 2026-03-29 01:00 UTC: the hour Zurich springs forward (02:00 CET -> 03:00 CEST).
const SPRING = Date.UTC(2026, 2, 29, 1, 0) / 1000;

function schedule(extra: Partial<ISchedule> = {}): ISchedule {
  return {
    id: 't0123456789a',
    name: 'nightly',
    project_relpath: 'digits',
    project_name: 'digits',
    entry_point: 'train',
    parameters: {},
    backend: 'local',
    run_name: '{schedule}-{n}',
    cron: '0 3 * * *',
    cron_text: '@daily',
    timezone: 'Europe/Zurich',
    overlap: 'skip',
    catch_up: 'latest',
    catch_up_limit: 10,
    fired: 0,
    code: 'fresh',
    paused: false,
    status: 'active',
    next_times: [],
    runs: 0,
    missed: 0,
    created_at: 0,
    updated_at: 0,
    firings: [],
    ...extra
  };
}

describe('schedule times', () => {
  it('are written in the given zone, across a DST change', () => {
    expect(formatInZone(SPRING, 'UTC')).toBe('2026-03-29 01:00');
    expect(formatInZone(SPRING, 'Europe/Zurich')).toBe('2026-03-29 03:00');
    expect(formatInZone(SPRING - 3600, 'Europe/Zurich')).toBe('2026-03-29 01:00');
    expect(formatInZone(SPRING, 'Asia/Tokyo')).toBe('2026-03-29 10:00');
  });

  it("show the user's time when the schedule's zone differs", () => {
    expect(zonedTimeText(SPRING, 'Europe/Zurich', trans, 'Europe/Zurich')).toBe(
      '2026-03-29 03:00 Europe/Zurich'
    );
    expect(zonedTimeText(SPRING, 'Europe/Zurich', trans, 'UTC')).toBe(
      '2026-03-29 03:00 Europe/Zurich (01:00 your time)'
    );
    // Another day there: the user's date is written too.
    expect(zonedTimeText(SPRING, 'Europe/Zurich', trans, 'America/New_York')).toBe(
      '2026-03-29 03:00 Europe/Zurich (2026-03-28 21:00 your time)'
    );
  });

  it('say when a schedule fires: the cron as given with its zone, or the one time', () => {
    expect(whenText(schedule(), trans)).toBe('@daily (Europe/Zurich)');
    expect(whenText(schedule({ cron_text: null }), trans)).toBe('0 3 * * * (Europe/Zurich)');
    expect(whenText(schedule({ cron: null, cron_text: null, at: SPRING }), trans)).toBe(
      'once, 2026-03-29 03:00 (Europe/Zurich)'
    );
  });

  it('count relative time in minutes, hours, days', () => {
    expect(relativeText(1000, 1000 + 20, trans)).toBe('now');
    expect(relativeText(1000 + 300, 1000, trans)).toBe('in 5 min');
    expect(relativeText(1000 + 3 * 3600, 1000, trans)).toBe('in 3 h');
    expect(relativeText(1000, 1000 + 2 * 86400, trans)).toBe('2 d ago');
  });

  it('give the next time in the user zone, or why there is none', () => {
    const next = SPRING;
    const text = nextText(schedule({ next_times: [next] }), next - 600, trans);
    expect(text).toBe(`${formatInZone(next)} (in 10 min)`);
    expect(nextText(schedule({ status: 'paused', paused: true }), 0, trans)).toBe('paused');
    expect(nextText(schedule({ status: 'ended', ended: 'max runs' }), 0, trans)).toBe('ended');
    expect(nextText(schedule({ next_times: [], next_at: null }), 0, trans)).toBe('—');
  });
});

describe('schedule badges', () => {
  const firing = (extra: Partial<IFiring>): IFiring => ({
    schedule_id: 't1',
    scheduled_at: SPRING,
    run_id: 'abc',
    state: 'submitted',
    manual: false,
    ...extra
  });

  it("show the run's state once there is a run, else the firing's", () => {
    expect(firingBadge(firing({ run_state: 'RUNNING' }))).toEqual({
      text: 'RUNNING',
      state: 'RUNNING'
    });
    expect(firingBadge(firing({ state: 'skipped', message: 'previous run active' }))).toEqual({
      text: 'SKIPPED',
      state: null
    });
  });

  it('name why a schedule ended', () => {
    expect(statusText(schedule(), trans)).toBe('active');
    expect(statusText(schedule({ status: 'ended', ended: 'one-off done' }), trans)).toBe(
      'ended: one-off done'
    );
  });
});
