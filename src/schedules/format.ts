/**
 * How schedules read: when they fire (cron or one time, with the zone), fire
 * times in the user's zone and in the schedule's, last firing, status.
 */
import { TranslationBundle } from '@jupyterlab/translation';

import { RunState } from '../types';
import { IFiring, ISchedule } from './types';

/** The browser's IANA zone (the default zone of a new schedule). */
export function browserZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

let zones: string[] | null = null;

/** Every IANA zone the browser knows (empty when it cannot list them); asked once. */
export function knownZones(): string[] {
  if (zones === null) {
    const intl = Intl as typeof Intl & { supportedValuesOf?: (key: string) => string[] };
    try {
      zones = intl.supportedValuesOf?.('timeZone') ?? [];
    } catch {
      zones = [];
    }
  }
  return zones;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string | undefined): Intl.DateTimeFormat {
  const key = zone ?? '';
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', {
      timeZone: zone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23'
    });
    formatters.set(key, f);
  }
  return f;
}

/** `YYYY-MM-DD HH:MM` of epoch seconds in `zone` (the browser's when omitted). */
export function formatInZone(epochSeconds: number, zone?: string): string {
  const parts: Record<string, string> = {};
  for (const part of formatter(zone).formatToParts(new Date(epochSeconds * 1000))) {
    parts[part.type] = part.value;
  }
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
}

/**
 * A fire time in the schedule's zone, and in the user's when that differs:
 * `2026-12-24 18:00 Europe/Zurich (12:00 your time)`.
 */
export function zonedTimeText(
  epochSeconds: number,
  zone: string,
  trans: TranslationBundle,
  userZone: string = browserZone()
): string {
  const there = formatInZone(epochSeconds, zone);
  const here = formatInZone(epochSeconds, userZone);
  if (zone === userZone || there === here) {
    return `${there} ${zone}`;
  }
  const sameDay = here.slice(0, 10) === there.slice(0, 10);
  return trans.__('%1 %2 (%3 your time)', there, zone, sameDay ? here.slice(11) : here);
}

/** When it fires: `0 3 * * * (Europe/Zurich)`, or `once, 2026-12-24 18:00 (Europe/Zurich)`. */
export function whenText(
  schedule: Pick<ISchedule, 'cron' | 'cron_text' | 'at' | 'timezone'>,
  trans: TranslationBundle
): string {
  const cron = schedule.cron_text || schedule.cron;
  if (cron) {
    return `${cron} (${schedule.timezone})`;
  }
  if (schedule.at !== null && schedule.at !== undefined) {
    return trans.__(
      'once, %1 (%2)',
      formatInZone(schedule.at, schedule.timezone),
      schedule.timezone
    );
  }
  return '';
}

/** `in 5 min`, `in 3 h`, `in 2 d`, `now`, `4 min ago`. */
export function relativeText(epochSeconds: number, now: number, trans: TranslationBundle): string {
  const delta = Math.round(epochSeconds - now);
  const size = Math.abs(delta);
  if (size < 60) {
    return trans.__('now');
  }
  const amount =
    size < 3600
      ? trans.__('%1 min', Math.round(size / 60))
      : size < 86400
        ? trans.__('%1 h', Math.round(size / 3600))
        : trans.__('%1 d', Math.round(size / 86400));
  return delta > 0 ? trans.__('in %1', amount) : trans.__('%1 ago', amount);
}

/** The next fire time in the user's zone and how far off it is; why there is none otherwise. */
export function nextText(schedule: ISchedule, now: number, trans: TranslationBundle): string {
  if (schedule.status === 'paused') {
    return trans.__('paused');
  }
  if (schedule.status === 'ended') {
    return trans.__('ended');
  }
  const next = schedule.next_times[0] ?? schedule.next_at;
  if (next === null || next === undefined) {
    return '—';
  }
  return `${formatInZone(next)} (${relativeText(next, now, trans)})`;
}

/** The schedule's latest firing, if it fired yet. */
export function lastFiring(schedule: Pick<ISchedule, 'firings'>): IFiring | null {
  return schedule.firings[0] ?? null;
}

/** What a firing's badge shows: its run's state once it has a run, else the firing's state. */
export function firingBadge(firing: IFiring): { text: string; state: RunState | null } {
  if (firing.run_state) {
    return { text: firing.run_state, state: firing.run_state };
  }
  return { text: firing.state.toUpperCase(), state: null };
}

/** `active`, `paused`, `ended: max runs reached`. */
export function statusText(schedule: ISchedule, trans: TranslationBundle): string {
  switch (schedule.status) {
    case 'active':
      return trans.__('active');
    case 'paused':
      return trans.__('paused');
    case 'ended':
      return schedule.ended ? trans.__('ended: %1', schedule.ended) : trans.__('ended');
  }
}
