/**
 * The rows of the runs table that the browser holds: a sparse window over the
 * server's sorted, filtered list, fetched page by page as the user scrolls, and
 * kept current from `runs?since=` updates.
 */
import { compareRows, IRowQuery, IRunRow, matchesQuery } from './rows';

/** Rows fetched per request. */
export const PAGE_SIZE = 200;

/** What merging updates did. */
export interface IMergeResult {
  /** Some loaded row changed: repaint. */
  changed: boolean;
  /** Positions may have moved (new run, sort key or filter membership changed)
   * and not every row is loaded: fetch the visible pages again. */
  reload: boolean;
}

export class RowCache {
  /** Rows by position; undefined where not fetched yet. */
  private _rows: (IRunRow | undefined)[] = [];
  private _index = new Map<string, number>();
  private _pages = new Set<number>();
  private _total = 0;

  constructor(public query: IRowQuery) {}

  get total(): number {
    return this._total;
  }

  /** Every matching row is loaded, so updates can be applied without the server. */
  get complete(): boolean {
    return this._pages.size > 0 && this._pages.size >= Math.ceil(this._total / PAGE_SIZE);
  }

  at(position: number): IRunRow | undefined {
    return this._rows[position];
  }

  byId(id: string): IRunRow | undefined {
    const i = this._index.get(id);
    return i === undefined ? undefined : this._rows[i];
  }

  positionOf(id: string): number | undefined {
    return this._index.get(id);
  }

  /** Drop everything (new query, or a reload). */
  reset(query: IRowQuery = this.query): void {
    this.query = query;
    this._rows = [];
    this._index.clear();
    this._pages.clear();
    this._total = 0;
  }

  /** Mark every page stale (fetched again when shown); rows stay shown meanwhile. */
  invalidate(): void {
    this._pages.clear();
  }

  /** Pages needed to show positions [start, end). */
  missingPages(start: number, end: number): number[] {
    const pages: number[] = [];
    const last = Math.max(start, Math.min(end, this._total || end) - 1);
    for (let p = Math.floor(start / PAGE_SIZE); p <= Math.floor(last / PAGE_SIZE); p++) {
      if (!this._pages.has(p)) {
        pages.push(p);
      }
    }
    return pages;
  }

  /** Store a fetched page. A changed total drops the other pages (positions moved). */
  setPage(page: number, rows: IRunRow[], total: number): void {
    if (total !== this._total && this._pages.size) {
      this._rows = [];
      this._index.clear();
      this._pages.clear();
    }
    this._total = total;
    this._rows.length = total;
    const start = page * PAGE_SIZE;
    // A row seen at another position before belongs here now.
    rows.forEach((row, i) => {
      const old = this._index.get(row.id);
      if (old !== undefined && old !== start + i && this._rows[old]?.id === row.id) {
        this._rows[old] = undefined;
      }
      this._rows[start + i] = row;
      this._index.set(row.id, start + i);
    });
    this._pages.add(page);
  }

  /** Apply rows changed on the server (oldest change first). */
  merge(updates: IRunRow[], now: number): IMergeResult {
    if (!updates.length) {
      return { changed: false, reload: false };
    }
    if (this.complete) {
      return this._mergeComplete(updates, now);
    }
    let changed = false;
    let reload = false;
    for (const row of updates) {
      const pos = this._index.get(row.id);
      const old = pos === undefined ? undefined : this._rows[pos];
      if (old === undefined || pos === undefined) {
        // Unknown here: a new run, or one outside the loaded pages.
        reload = reload || matchesQuery(row, this.query);
        continue;
      }
      this._rows[pos] = row;
      changed = true;
      if (!matchesQuery(row, this.query) || compareRows(old, row, this.query, now) !== 0) {
        reload = true;
      }
    }
    return { changed, reload };
  }

  private _mergeComplete(updates: IRunRow[], now: number): IMergeResult {
    const byId = new Map<string, IRunRow>();
    for (const row of this._rows) {
      if (row) {
        byId.set(row.id, row);
      }
    }
    for (const row of updates) {
      if (matchesQuery(row, this.query)) {
        byId.set(row.id, row);
      } else {
        byId.delete(row.id);
      }
    }
    const rows = [...byId.values()].sort((a, b) => compareRows(a, b, this.query, now));
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    this._rows = rows;
    this._total = rows.length;
    this._index = new Map(rows.map((r, i) => [r.id, i]));
    this._pages = new Set(Array.from({ length: pages }, (_, i) => i));
    return { changed: true, reload: false };
  }
}
