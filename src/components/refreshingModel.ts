/**
 * The model of a tab that fetches its data again on a timer while the tab is
 * shown (its RefreshingPanel starts and stops the loop), keeping only the
 * answer of the latest fetch.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { errorText } from '../errors';

export abstract class RefreshingModel {
  /** @param pollMs - milliseconds between refreshes (read at each one: settings change) */
  constructor(private readonly pollMs: () => number) {}

  /** What the last fetch (or action) failed with; null when it went well. */
  error: string | null = null;
  /** Whether a fetch has answered yet (to tell "empty" from "not known yet"). */
  loaded = false;

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Fetch the tab's data now. */
  abstract refresh(): Promise<void>;

  /** Refresh now and then every poll interval, until `stop`. */
  start(): void {
    if (this.running || this.disposed) {
      return;
    }
    this.running = true;
    // A loop stopped while its request was on the way must not go on beside a new one.
    const loop = ++this.loops;
    const tick = async (): Promise<void> => {
      await this.refresh();
      if (this.loops === loop && !this.disposed) {
        this.timer = setTimeout(() => void tick(), this.pollMs());
      }
    };
    void tick();
  }

  stop(): void {
    this.running = false;
    this.loops++;
    clearTimeout(this.timer);
  }

  dispose(): void {
    this.disposed = true;
    this.stop();
    Signal.clearData(this);
  }

  protected emitChanged(): void {
    this._changed.emit();
  }

  /**
   * Fetch, then `apply` the answer unless a later fetch began meanwhile (or the
   * model is gone): an older answer arriving last must not win. A failure goes
   * to `error`; either way `loaded`, and listeners hear of it.
   */
  protected async fetchLatest<T>(
    fetch: () => Promise<T>,
    apply: (answer: T) => void
  ): Promise<void> {
    const generation = ++this.generation;
    try {
      const answer = await fetch();
      if (generation !== this.generation || this.disposed) {
        return;
      }
      apply(answer);
      this.error = null;
    } catch (error) {
      if (generation !== this.generation) {
        return;
      }
      this.error = errorText(error);
    }
    this.loaded = true;
    this._changed.emit();
  }

  private readonly _changed = new Signal<this, void>(this);
  private generation = 0;
  private running = false;
  private loops = 0;
  private disposed = false;
  private timer: ReturnType<typeof setTimeout> | undefined = undefined;
}
