/**
 * The runs table's data: pages of rows fetched as they are shown, kept current
 * with one `runs?since=` request per poll, and the key metrics of shown rows.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { getSweep, listRuns } from '../api';
import { DisplayItem, SweepGroups } from '../sweeps/groups';
import { IRun } from '../types';
import { PAGE_SIZE, RowCache } from './rowCache';
import { DEFAULT_QUERY, IRowQuery, IRunRow, isActive, rowFromRun } from './rows';
import { latestMetrics, listRunRows } from './viewApi';

export type MetricValues = Record<string, number | null>;

export class RunsModel {
  readonly cache = new RowCache({ ...DEFAULT_QUERY });
  /** Expanded sweeps: their children are shown under their row. */
  readonly groups = new SweepGroups();

  constructor(private _pollMs: () => number) {}

  /** Something to repaint. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** A run changed on the server (any run, shown or not). */
  get runChanged(): ISignal<this, IRunRow> {
    return this._runChanged;
  }

  get query(): IRowQuery {
    return this.cache.query;
  }

  get error(): string | null {
    return this._error;
  }

  get loading(): boolean {
    return this._inflight.size > 0;
  }

  /** Rows plus the shown children of expanded sweeps. */
  get displayTotal(): number {
    return this.groups.total(this.cache);
  }

  itemAt(position: number): DisplayItem {
    return this.groups.at(position, this.cache);
  }

  /** The row (or sweep child) shown at a display position; undefined while loading. */
  displayAt(position: number): IRunRow | undefined {
    const item = this.itemAt(position);
    return item.kind === 'row'
      ? this.cache.at(item.position)
      : this.groups.childrenOf(item.sweepId)[item.index];
  }

  /** Expand (fetching its children) or collapse a sweep's group. */
  toggleSweep(id: string): void {
    if (this.groups.toggle(id)) {
      void this._fetchChildren(id);
    }
    this._changed.emit();
  }

  /** The display positions in view; pages and metrics are fetched for them. */
  setWindow(start: number, end: number): void {
    this._window = [start, end];
    void this._fetchMissing();
    this._scheduleMetrics();
  }

  setQuery(query: IRowQuery): void {
    this._generation++;
    this.cache.reset({ ...query });
    this._changed.emit();
    void this._fetchMissing();
  }

  /** Fetch the shown pages again (keeps showing the old rows meanwhile). */
  reload(): void {
    this._generation++;
    this.cache.invalidate();
    void this._fetchMissing();
  }

  metricsOf(id: string): MetricValues | undefined {
    return this._metrics.get(id);
  }

  start(): void {
    if (!this._timer && !this._disposed) {
      this._timer = window.setTimeout(() => void this._poll(), this._pollMs());
    }
  }

  dispose(): void {
    this._disposed = true;
    window.clearTimeout(this._timer);
    this._timer = 0;
    Signal.clearData(this);
  }

  private async _fetchChildren(id: string): Promise<void> {
    try {
      const sweep = await getSweep(id);
      this.groups.setChildren(id, sweep.children.map(rowFromRun));
      this._error = null;
    } catch (reason) {
      this._error = String((reason as Error).message ?? reason);
    }
    this._scheduleMetrics();
    this._changed.emit();
  }

  private async _fetchMissing(): Promise<void> {
    const [start, end] = this.groups.rowRange(...this._window, this.cache);
    const generation = this._generation;
    const pages = this.cache.missingPages(start, Math.max(end, start + 1));
    await Promise.all(
      pages
        .filter(p => !this._inflight.has(`${generation}:${p}`))
        .map(async page => {
          const key = `${generation}:${page}`;
          this._inflight.add(key);
          try {
            const answer = await listRunRows(this.query, page * PAGE_SIZE, PAGE_SIZE);
            if (generation !== this._generation || this._disposed) {
              return;
            }
            this._error = null;
            if (this._cursor === null) {
              this._cursor = answer.cursor;
            }
            this.cache.setPage(page, answer.rows, answer.total);
            this._scheduleMetrics();
          } catch (reason) {
            this._error = String((reason as Error).message ?? reason);
          } finally {
            this._inflight.delete(key);
            this._changed.emit();
          }
        })
    );
    this.start();
  }

  private async _poll(): Promise<void> {
    this._timer = 0;
    if (this._disposed) {
      return;
    }
    try {
      if (this._cursor !== null) {
        let more = true;
        while (more) {
          const answer = await listRuns({ since: this._cursor });
          more = answer.runs.length >= 500;
          this._apply(answer.runs);
        }
      }
      this._error = null;
    } catch (reason) {
      this._error = String((reason as Error).message ?? reason);
    }
    // Durations of running rows tick, their metrics grow.
    this._scheduleMetrics();
    this._changed.emit();
    this.start();
  }

  private _apply(runs: IRun[]): void {
    if (!runs.length) {
      return;
    }
    this._cursor = Math.max(this._cursor ?? 0, ...runs.map(r => r.updated_at));
    const all = runs.map(rowFromRun);
    all.forEach(row => {
      this._metrics.delete(row.id);
      this._runChanged.emit(row);
    });
    // Sweep children are not top-level rows: their group row's counts changed (fetch the
    // shown pages again) and an expanded group shows them (fetched again when new).
    const children = all.filter(row => row.sweep_id);
    const rows = all.filter(row => !row.sweep_id);
    const stale = new Set(children.filter(c => !this.groups.updateChild(c)).map(c => c.sweep_id));
    for (const id of stale) {
      if (id && this.groups.isExpanded(id)) {
        void this._fetchChildren(id);
      }
    }
    if (children.length) {
      this.reload();
      this._changed.emit();
    }
    const result = this.cache.merge(rows, Date.now() / 1000);
    if (result.reload) {
      this.reload();
    }
    if (result.changed || result.reload) {
      this._scheduleMetrics();
      this._changed.emit();
    }
  }

  /** Fetch (debounced) the key metrics of shown rows not known yet, or still running. */
  private _scheduleMetrics(): void {
    if (!this.wantMetrics || this._metricsTimer) {
      return;
    }
    this._metricsTimer = window.setTimeout(() => {
      this._metricsTimer = 0;
      void this._fetchMetrics();
    }, 250);
  }

  private async _fetchMetrics(): Promise<void> {
    const [start, end] = this._window;
    const ids: string[] = [];
    for (let i = start; i < end && ids.length < 100; i++) {
      const row = this.displayAt(i);
      if (
        row &&
        row.kind !== 'sweep' &&
        row.mlflow_run_id &&
        (!this._metrics.has(row.id) || isActive(row.state))
      ) {
        ids.push(row.id);
      }
    }
    if (!ids.length) {
      return;
    }
    try {
      const values = await latestMetrics(ids);
      for (const id of ids) {
        this._metrics.set(id, values[id] ?? {});
      }
      this._changed.emit();
    } catch {
      // The column stays empty; the next window change asks again.
    }
  }

  /** Whether the metrics column is shown (no metric requests otherwise). */
  wantMetrics = false;

  private _changed = new Signal<this, void>(this);
  private _runChanged = new Signal<this, IRunRow>(this);
  private _window: [number, number] = [0, 50];
  private _generation = 0;
  private _inflight = new Set<string>();
  private _cursor: number | null = null;
  private _timer = 0;
  private _metricsTimer = 0;
  private _metrics = new Map<string, MetricValues>();
  private _error: string | null = null;
  private _disposed = false;
}
