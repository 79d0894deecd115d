/**
 * The next fire times of the cron (or one time) being typed: asked of the
 * server once typing pauses, the previous question dropped when a newer one
 * is asked; its problems kept by key (`cron`, `timezone`, `at`). No DOM.
 */
import { HpcmlApiError } from '../errors';
import { ICronPreview, IWhen } from './types';

/** Milliseconds of quiet before asking. */
export const PREVIEW_DELAY = 350;

export type PreviewFetch = (when: IWhen, signal: AbortSignal) => Promise<ICronPreview>;

export class CronPreview {
  /**
   * @param fetch - asks the server (previewSchedule)
   * @param changed - something to repaint
   */
  constructor(
    private readonly fetch: PreviewFetch,
    private readonly changed: () => void,
    private readonly delay = PREVIEW_DELAY
  ) {}

  /** The next fire times (epoch seconds) of the last valid answer. */
  times: number[] = [];
  /** The zone the server read the times in. */
  timezone: string | null = null;
  /** Problems by key (`cron`, `timezone`, `at`); `''` holds those without a key. */
  errors: Record<string, string[]> = {};
  /** A question is waiting or on its way. */
  pending = false;

  get hasErrors(): boolean {
    return Object.keys(this.errors).length > 0;
  }

  /** The form changed: ask about `when` after a pause (nothing to ask: clear). */
  update(when: IWhen | null): void {
    clearTimeout(this.timer);
    this.abort?.abort();
    this.abort = null;
    if (!when) {
      this.times = [];
      this.timezone = null;
      this.errors = {};
      this.pending = false;
      this.changed();
      return;
    }
    this.pending = true;
    this.changed();
    this.timer = setTimeout(() => void this.ask(when), this.delay);
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.abort?.abort();
  }

  private async ask(when: IWhen): Promise<void> {
    const abort = new AbortController();
    this.abort = abort;
    try {
      const answer = await this.fetch(when, abort.signal);
      if (abort.signal.aborted) {
        return;
      }
      this.times = answer.next_times;
      this.timezone = answer.timezone;
      this.errors = {};
    } catch (error) {
      if (abort.signal.aborted) {
        return;
      }
      this.times = [];
      this.errors = errorsByKey(error);
    }
    this.pending = false;
    this.changed();
  }

  private timer: ReturnType<typeof setTimeout> | undefined = undefined;
  private abort: AbortController | null = null;
}

/** An error's problems by key (`''`: no key, or not an API error). */
export function errorsByKey(error: unknown): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const add = (key: string, message: string): void => {
    (out[key] ??= []).push(message);
  };
  if (error instanceof HpcmlApiError && error.problems.length) {
    for (const problem of error.problems) {
      add(problem.key ?? '', problem.message);
    }
  } else {
    add('', error instanceof Error ? error.message : String(error));
  }
  return out;
}
