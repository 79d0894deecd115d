/**
 * The Schedules tab's data: every schedule (with its latest firing), and the
 * selected one's history; fetched again on a timer while the tab is shown.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { getSchedule, listSchedules } from './api';
import { ISchedule } from './types';

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class SchedulesModel {
  /** @param pollMs - milliseconds between refreshes (the pollInterval setting) */
  constructor(private readonly pollMs: () => number) {}

  schedules: ISchedule[] = [];
  selectedId: string | null = null;
  /** The selected schedule with up to 50 firings, newest first. */
  detail: ISchedule | null = null;
  error: string | null = null;
  loaded = false;

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get selected(): ISchedule | null {
    return this.detail ?? this.schedules.find(s => s.id === this.selectedId) ?? null;
  }

  select(id: string | null): void {
    if (id === this.selectedId) {
      return;
    }
    this.selectedId = id;
    this.detail = null;
    this._changed.emit();
    void this.refresh();
  }

  /** A schedule was deleted here: out of the list and the selection at once. */
  removed(id: string): void {
    this.schedules = this.schedules.filter(s => s.id !== id);
    if (this.selectedId === id) {
      this.selectedId = null;
      this.detail = null;
    }
    this._changed.emit();
  }

  /** Fetch the list (and the selected schedule's history) now. */
  async refresh(): Promise<void> {
    const generation = ++this.generation;
    try {
      const [schedules, detail] = await Promise.all([
        listSchedules(),
        this.selectedId ? getSchedule(this.selectedId).catch(() => null) : null
      ]);
      if (generation !== this.generation || this.disposed) {
        return;
      }
      this.schedules = schedules;
      this.detail = detail && detail.id === this.selectedId ? detail : null;
      if (this.selectedId && !schedules.some(s => s.id === this.selectedId)) {
        this.selectedId = null;
      }
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

  private readonly _changed = new Signal<this, void>(this);
  private generation = 0;
  private running = false;
  private loops = 0;
  private disposed = false;
  private timer: ReturnType<typeof setTimeout> | undefined = undefined;
}
