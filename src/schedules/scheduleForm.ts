/**
 * State of the "Schedule…" dialog: the draft, the live preview of its next
 * times, and the problems of the last attempt by request key. No DOM.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { previewSchedule } from './api';
import { CronPreview, PreviewFetch } from './cronPreview';
import { defaultDraft, IScheduleDraft, whenOf } from './request';

/** The request key each draft field is sent as (problems come back by it). */
export const REQUEST_KEYS: Record<keyof IScheduleDraft, string> = {
  name: 'name',
  kind: 'kind',
  cron: 'cron',
  at: 'at',
  timezone: 'timezone',
  overlap: 'overlap',
  catchUp: 'catch_up',
  catchUpLimit: 'catch_up_limit',
  code: 'code',
  runName: 'run_name',
  end: 'end',
  maxRuns: 'max_runs'
};

const WHEN_FIELDS: (keyof IScheduleDraft)[] = ['kind', 'cron', 'at', 'timezone'];

export class ScheduleForm {
  constructor(draft: IScheduleDraft = defaultDraft(), fetch: PreviewFetch = previewSchedule) {
    this.draft = draft;
    this.preview = new CronPreview(fetch, () => this._changed.emit());
  }

  draft: IScheduleDraft;
  readonly preview: CronPreview;
  /** Problems of the last attempt (client checks or the server's 400), by request key. */
  errors: Record<string, string[]> = {};

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Errors shown at a field: the attempt's, else the preview's (cron, at, timezone). */
  errorsOf(field: keyof IScheduleDraft): string[] {
    const key = REQUEST_KEYS[field];
    return this.errors[key] ?? this.preview.errors[key] ?? [];
  }

  /** Problems no field of the dialog shows (parameters, config, project, ...). */
  get generalErrors(): string[] {
    const shown = new Set(Object.values(REQUEST_KEYS));
    return Object.entries(this.errors)
      .filter(([key]) => !shown.has(key))
      .flatMap(([key, messages]) => messages.map(m => (key ? `${key}: ${m}` : m)));
  }

  set(patch: Partial<IScheduleDraft>): void {
    this.draft = { ...this.draft, ...patch };
    for (const field of Object.keys(patch) as (keyof IScheduleDraft)[]) {
      delete this.errors[REQUEST_KEYS[field]];
    }
    if (WHEN_FIELDS.some(f => f in patch)) {
      this.preview.update(whenOf(this.draft));
    }
    this._changed.emit();
  }

  dispose(): void {
    this.preview.dispose();
    Signal.clearData(this);
  }

  private readonly _changed = new Signal<this, void>(this);
}
