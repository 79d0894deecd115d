/**
 * Which runs are selected for comparison, and which row holds the keyboard focus
 * (the roving tabindex). Kept by run id, so both survive scrolling and re-sorting.
 */
export class RunSelection {
  /** The focused row's run; null: the first row. */
  activeId: string | null = null;

  get size(): number {
    return this._selected.size;
  }

  /** The selected run ids, in the order they were selected. */
  get ids(): string[] {
    return [...this._selected];
  }

  has(id: string): boolean {
    return this._selected.has(id);
  }

  toggle(id: string): void {
    if (!this._selected.delete(id)) {
      this._selected.add(id);
    }
  }

  /** Forget a run (deleted); whether it was selected. */
  delete(id: string): boolean {
    return this._selected.delete(id);
  }

  /** Whether the row of `id` at `position` takes the focus. */
  isActive(id: string, position: number): boolean {
    return this.activeId === id || (this.activeId === null && position === 0);
  }

  private _selected = new Set<string>();
}
