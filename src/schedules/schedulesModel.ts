/**
 * The Schedules tab's data: every schedule (with its latest firing), and the
 * selected one's history; fetched again on a timer while the tab is shown.
 */
import { RefreshingModel } from '../components/refreshingModel';
import { getSchedule, listSchedules } from './api';
import { ISchedule } from './types';

export class SchedulesModel extends RefreshingModel {
  schedules: ISchedule[] = [];
  selectedId: string | null = null;
  /** The selected schedule with up to 50 firings, newest first. */
  detail: ISchedule | null = null;

  get selected(): ISchedule | null {
    return this.detail ?? this.schedules.find(s => s.id === this.selectedId) ?? null;
  }

  select(id: string | null): void {
    if (id === this.selectedId) {
      return;
    }
    this.selectedId = id;
    this.detail = null;
    this.emitChanged();
    void this.refresh();
  }

  /** A schedule was deleted here: out of the list and the selection at once. */
  removed(id: string): void {
    this.schedules = this.schedules.filter(s => s.id !== id);
    if (this.selectedId === id) {
      this.selectedId = null;
      this.detail = null;
    }
    this.emitChanged();
  }

  /** Fetch the list (and the selected schedule's history) now. */
  refresh(): Promise<void> {
    const selectedId = this.selectedId;
    return this.fetchLatest(
      () =>
        Promise.all([
          listSchedules(),
          selectedId ? getSchedule(selectedId).catch(() => null) : null
        ]),
      ([schedules, detail]) => {
        this.schedules = schedules;
        this.detail = detail && detail.id === this.selectedId ? detail : null;
        if (this.selectedId && !schedules.some(s => s.id === this.selectedId)) {
          this.selectedId = null;
        }
      }
    );
  }
}
