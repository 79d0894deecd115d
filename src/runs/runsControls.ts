/**
 * The runs tab's control bar: text and state filters, the archived toggle,
 * the schedule filter (when set), "Compare selected", Refresh and the live
 * status line.
 */
import { TranslationBundle } from '@jupyterlab/translation';

import { el } from '../components/dom';
import { RUN_STATES } from '../components/stateBadge';
import { RunState } from '../types';
import { ACTIVE_STATES, IRowQuery } from './rows';

/** What the controls ask of the panel. */
export interface IControlsHandlers {
  /** The user changed a filter. */
  query(change: Partial<IRowQuery>): void;
  compare(): void;
  refresh(): void;
}

/** Typing pauses this long before the text filter is sent. */
const FILTER_DELAY_MS = 250;

export class RunsControls {
  readonly node = el('div', 'jp-hpcml-Runs-controls');

  constructor(
    private _trans: TranslationBundle,
    handlers: IControlsHandlers
  ) {
    const trans = _trans;
    this._filter = el('input', 'jp-mod-styled jp-hpcml-Runs-filter');
    this._filter.type = 'search';
    this._filter.placeholder = trans.__('Filter by name, id, entry point, job id…');
    this._filter.setAttribute('aria-label', trans.__('Filter runs by text'));
    this._filter.addEventListener('input', () => {
      window.clearTimeout(this._filterTimer);
      this._filterTimer = window.setTimeout(
        () => handlers.query({ text: this._filter.value }),
        FILTER_DELAY_MS
      );
    });

    const stateSelect = el('select', 'jp-mod-styled jp-hpcml-Runs-stateFilter');
    stateSelect.setAttribute('aria-label', trans.__('Filter runs by state'));
    const options: [string, string][] = [
      ['', trans.__('All states')],
      ['active', trans.__('Active')],
      ...RUN_STATES.map((s): [string, string] => [s, s])
    ];
    for (const [value, label] of options) {
      const o = el('option', '', label);
      o.value = value;
      stateSelect.appendChild(o);
    }
    stateSelect.addEventListener('change', () => {
      const v = stateSelect.value;
      handlers.query({ states: v === '' ? [] : v === 'active' ? ACTIVE_STATES : [v as RunState] });
    });

    const archived = el('label', 'jp-hpcml-Runs-archivedToggle');
    const archivedBox = el('input');
    archivedBox.type = 'checkbox';
    archivedBox.addEventListener('change', () => handlers.query({ archived: archivedBox.checked }));
    archived.title = trans.__('List archived runs too');
    archived.append(archivedBox, document.createTextNode(trans.__('Show archived')));

    this._compare = el('button', 'jp-mod-styled jp-hpcml-button');
    this._compare.addEventListener('click', () => handlers.compare());
    const refresh = el('button', 'jp-mod-styled jp-hpcml-button', trans.__('Refresh'));
    refresh.title = trans.__('Fetch the shown rows again');
    refresh.addEventListener('click', () => handlers.refresh());
    this._status = el('span', 'jp-hpcml-Runs-status');
    this._status.setAttribute('aria-live', 'polite');
    // Set by a schedule's "Show runs"; its ✕ clears it.
    this._schedule = el('span', 'jp-hpcml-Runs-scheduleFilter');
    this._schedule.hidden = true;
    this._scheduleLabel = el('span');
    const clear = el('button', 'jp-hpcml-iconButton', '✕');
    clear.title = trans.__('Show the runs of every schedule');
    clear.setAttribute('aria-label', trans.__('Clear the schedule filter'));
    clear.addEventListener('click', () => {
      this.showSchedule('');
      handlers.query({ schedule: '' });
    });
    this._schedule.append(this._scheduleLabel, clear);
    this.node.append(
      this._filter,
      stateSelect,
      archived,
      this._schedule,
      this._compare,
      refresh,
      this._status
    );
  }

  /** Show the schedule the table is filtered by ('' hides the filter). */
  showSchedule(id: string, name = ''): void {
    this._schedule.hidden = !id;
    this._schedule.dataset.schedule = id;
    this._scheduleLabel.textContent = id ? this._trans.__('Schedule: %1', name || id) : '';
  }

  /** Focus the filter box. */
  focusFilter(): void {
    this._filter.focus();
  }

  /** The run count, or the error of the last fetch. */
  showStatus(total: number, error: string | null): void {
    const trans = this._trans;
    this._status.textContent = error
      ? trans.__('Error: %1', error)
      : trans._n('%1 run', '%1 runs', total);
    this._status.classList.toggle('jp-mod-error', !!error);
  }

  /** How many runs are selected for comparison. */
  showSelected(n: number): void {
    const trans = this._trans;
    this._compare.textContent = trans.__('Compare selected (%1)', n);
    this._compare.disabled = n === 0;
    this._compare.title = trans.__('Charts and parameters of the selected runs');
  }

  private _filter: HTMLInputElement;
  private _filterTimer = 0;
  private _compare: HTMLButtonElement;
  private _status: HTMLSpanElement;
  private _schedule: HTMLSpanElement;
  private _scheduleLabel: HTMLSpanElement;
}
