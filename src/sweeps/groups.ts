/**
 * Expanded sweep groups of the runs table: the children shown under a sweep's
 * row, and the mapping between the table's display positions (rows plus
 * shown children) and the positions of the server's row list. Pure: the
 * runs model feeds it children and asks it where things are.
 */
import { IRunRow } from '../runs/rows';

/** What is at one display position. */
export type DisplayItem =
  { kind: 'row'; position: number } | { kind: 'child'; sweepId: string; index: number };

/** Where the top-level rows are: the row cache's view of them. */
export interface IRowPositions {
  total: number;
  positionOf(id: string): number | undefined;
}

interface IOpenGroup {
  position: number;
  count: number;
  id: string;
}

export class SweepGroups {
  /** Sweeps shown expanded (their children, empty while loading). */
  isExpanded(id: string): boolean {
    return this._children.has(id);
  }

  /** Expand or collapse `id`; true when it is now expanded. */
  toggle(id: string): boolean {
    if (this._children.has(id)) {
      this._children.delete(id);
      return false;
    }
    this._children.set(id, []);
    return true;
  }

  get expandedIds(): string[] {
    return [...this._children.keys()];
  }

  childrenOf(id: string): IRunRow[] {
    return this._children.get(id) ?? [];
  }

  /** The children of an expanded sweep, by point index (ignored once collapsed). */
  setChildren(id: string, rows: IRunRow[]): void {
    if (this._children.has(id)) {
      this._children.set(id, rows);
    }
  }

  /** Replace a shown child with its newer row; false when it is not shown. */
  updateChild(row: IRunRow): boolean {
    const sweepId = row.sweep_id;
    const list = sweepId ? this._children.get(sweepId) : undefined;
    const i = list ? list.findIndex(c => c.id === row.id) : -1;
    if (!list || i < 0) {
      return false;
    }
    list[i] = { ...row, parameters: row.parameters ?? list[i].parameters };
    return true;
  }

  /** Rows plus the children of expanded sweeps that are loaded in `rows`. */
  total(rows: IRowPositions): number {
    return rows.total + this._open(rows).reduce((n, g) => n + g.count, 0);
  }

  /** What the display position `i` shows. */
  at(i: number, rows: IRowPositions): DisplayItem {
    let shift = 0;
    for (const group of this._open(rows)) {
      const groupDisplay = group.position + shift;
      if (i <= groupDisplay) {
        break;
      }
      if (i <= groupDisplay + group.count) {
        return { kind: 'child', sweepId: group.id, index: i - groupDisplay - 1 };
      }
      shift += group.count;
    }
    return { kind: 'row', position: i - shift };
  }

  /** The display position of the top-level row at `position`. */
  displayOf(position: number, rows: IRowPositions): number {
    let shift = 0;
    for (const group of this._open(rows)) {
      if (group.position >= position) {
        break;
      }
      shift += group.count;
    }
    return position + shift;
  }

  /** The row positions [start, end) that display positions [start, end) need. */
  rowRange(start: number, end: number, rows: IRowPositions): [number, number] {
    const first = this.at(start, rows);
    const last = this.at(Math.max(start, end - 1), rows);
    const pos = (item: DisplayItem): number =>
      item.kind === 'row' ? item.position : (rows.positionOf(item.sweepId) ?? 0);
    return [pos(first), pos(last) + 1];
  }

  /** Expanded sweeps whose row is loaded, by position, with their shown child count. */
  private _open(rows: IRowPositions): IOpenGroup[] {
    const out: IOpenGroup[] = [];
    for (const [id, children] of this._children) {
      const position = rows.positionOf(id);
      if (position !== undefined && position < rows.total && children.length) {
        out.push({ id, position, count: children.length });
      }
    }
    return out.sort((a, b) => a.position - b.position);
  }

  private _children = new Map<string, IRunRow[]>();
}
