/**
 * The runs tab: a virtualised table over the server's sorted, filtered run
 * list (only the rows in view are in the DOM; pages are fetched as shown),
 * updated live by the model, with filters, sorting, selection and row actions.
 */
import { Menu, Widget } from '@lumino/widgets';
import { Message } from '@lumino/messaging';

import { CommandIDs } from '../commands';
import { visibleWindow } from '../logs/virtualWindow';
import { RunState } from '../types';
import { ROW_MENU, RunDirectory } from './actions';
import { IColumn, shownColumns } from './columns';
import { RunsContext } from './context';
import { ACTIVE_STATES, IRowQuery, IRunRow, SortKey } from './rows';
import { RunsModel } from './runsModel';

export const ROW_HEIGHT = 28;

const STATES: RunState[] = [
  'SUBMITTING',
  'QUEUED',
  'RUNNING',
  'FINISHED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'UNKNOWN'
];

/** A coloured state badge. */
export function stateBadge(state: RunState): HTMLSpanElement {
  const badge = document.createElement('span');
  badge.className = `jp-hpcml-badge jp-hpcml-state-${state}`;
  badge.textContent = state;
  return badge;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

export class RunsPanel extends Widget {
  constructor(
    private _ctx: RunsContext,
    private _directory: RunDirectory
  ) {
    super();
    const { trans } = _ctx;
    this.id = 'hpcml-runs';
    this.title.label = trans.__('Runs');
    this.title.caption = trans.__('HPC ML runs');
    this.addClass('jp-hpcml-Runs');
    this.model = new RunsModel(() => _ctx.pollMs);

    // Controls
    const controls = el('div', 'jp-hpcml-Runs-controls');
    this._filter = el('input', 'jp-mod-styled jp-hpcml-Runs-filter');
    this._filter.type = 'search';
    this._filter.placeholder = trans.__('Filter by name, id, entry point, job id…');
    this._filter.setAttribute('aria-label', trans.__('Filter runs by text'));
    this._filter.addEventListener('input', () => {
      window.clearTimeout(this._filterTimer);
      this._filterTimer = window.setTimeout(() => this._setQuery({ text: this._filter.value }), 250);
    });
    this._stateSelect = el('select', 'jp-mod-styled jp-hpcml-Runs-stateFilter');
    this._stateSelect.setAttribute('aria-label', trans.__('Filter runs by state'));
    const options: [string, string][] = [
      ['', trans.__('All states')],
      ['active', trans.__('Active')],
      ...STATES.map((s): [string, string] => [s, s])
    ];
    for (const [value, label] of options) {
      const o = el('option', '', label);
      o.value = value;
      this._stateSelect.appendChild(o);
    }
    this._stateSelect.addEventListener('change', () => {
      const v = this._stateSelect.value;
      this._setQuery({ states: v === '' ? [] : v === 'active' ? ACTIVE_STATES : [v as RunState] });
    });
    const archived = el('label', 'jp-hpcml-Runs-archivedToggle');
    this._archived = el('input');
    this._archived.type = 'checkbox';
    this._archived.addEventListener('change', () => this._setQuery({ archived: this._archived.checked }));
    archived.title = trans.__('List archived runs too');
    archived.append(this._archived, document.createTextNode(trans.__('Show archived')));
    this._compare = el('button', 'jp-mod-styled jp-hpcml-button');
    this._compare.addEventListener('click', () => {
      void _ctx.app.commands.execute(CommandIDs.openCharts, { runIds: [...this._selected] });
    });
    const refresh = el('button', 'jp-mod-styled jp-hpcml-button', trans.__('Refresh'));
    refresh.title = trans.__('Fetch the shown rows again');
    refresh.addEventListener('click', () => this.model.reload());
    this._status = el('span', 'jp-hpcml-Runs-status');
    this._status.setAttribute('aria-live', 'polite');
    controls.append(this._filter, this._stateSelect, archived, this._compare, refresh, this._status);

    // Table: one scroll container, a sticky header, a spacer as tall as every row.
    this._scroller = el('div', 'jp-hpcml-Runs-scroller');
    this._scroller.setAttribute('role', 'table');
    this._scroller.setAttribute('aria-label', trans.__('Runs'));
    this._header = el('div', 'jp-hpcml-Runs-header jp-hpcml-Runs-grid');
    this._header.setAttribute('role', 'row');
    this._header.setAttribute('aria-rowindex', '1');
    this._spacer = el('div', 'jp-hpcml-Runs-spacer');
    this._spacer.setAttribute('role', 'rowgroup');
    this._rows = el('div', 'jp-hpcml-Runs-rows');
    this._spacer.appendChild(this._rows);
    this._empty = el('div', 'jp-hpcml-Runs-empty');
    this._scroller.append(this._header, this._spacer, this._empty);
    this._scroller.addEventListener('scroll', () => this._schedulePaint());
    this._rows.addEventListener('keydown', event => this._onKey(event));
    this._rows.addEventListener('click', event => this._onClick(event));
    this._rows.addEventListener('contextmenu', event => {
      _ctx.contextRunId = this._rowIdOf(event.target) ?? '';
    });
    this._rows.addEventListener('dblclick', event => {
      const id = this._rowIdOf(event.target);
      if (id) {
        void _ctx.app.commands.execute(CommandIDs.openRun, { runId: id });
      }
    });
    this.node.append(controls, this._scroller);

    this.model.changed.connect(() => this._schedulePaint(), this);
    this.model.runChanged.connect((_, row) => this._directory.set(row), this);
    _ctx.settingsChanged.connect(() => this._setColumns(), this);
    // Deleted or (un)archived here: positions moved, fetch the shown rows again.
    _ctx.runsChanged.connect((_, change) => {
      if (change.deleted && this._selected.delete(change.id)) {
        this._updateCompare();
      }
      this.model.reload();
    }, this);
    this._setColumns();
    this._updateCompare();
  }

  readonly model: RunsModel;

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.model.dispose();
    super.dispose();
  }

  /** Focus the filter box. */
  focusFilter(): void {
    this._filter.focus();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._paint();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._paint();
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this._schedulePaint();
  }

  protected onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    const active = this._rows.querySelector<HTMLElement>('[tabindex="0"]');
    (active ?? this._filter).focus();
  }

  private _setQuery(change: Partial<IRowQuery>): void {
    this.model.setQuery({ ...this.model.query, ...change });
    this._scroller.scrollTop = 0;
    this._renderHeader();
  }

  private _setColumns(): void {
    this._columns = shownColumns(this._ctx.settings.columns, this._ctx.trans);
    this.model.wantMetrics = this._columns.some(c => c.id === 'metrics');
    const tracks = ['32px', ...this._columns.map(c => c.width), '150px'].join(' ');
    this.node.style.setProperty('--jp-hpcml-runs-columns', tracks);
    this._renderHeader();
    this._schedulePaint();
  }

  private _renderHeader(): void {
    const { trans } = this._ctx;
    const query = this.model.query;
    this._header.textContent = '';
    const select = el('div', 'jp-hpcml-Runs-cell');
    select.setAttribute('role', 'columnheader');
    select.setAttribute('aria-label', trans.__('Selected'));
    this._header.appendChild(select);
    for (const column of this._columns) {
      const cell = el('div', 'jp-hpcml-Runs-cell');
      cell.setAttribute('role', 'columnheader');
      if (column.sort) {
        const sorted = query.sort === column.sort;
        cell.setAttribute('aria-sort', sorted ? (query.descending ? 'descending' : 'ascending') : 'none');
        const button = el('button', 'jp-hpcml-Runs-sort', column.label);
        button.title = trans.__('Sort by %1', column.label);
        if (sorted) {
          button.append(el('span', 'jp-hpcml-Runs-sortMark', query.descending ? ' ▼' : ' ▲'));
        }
        const key = column.sort;
        button.addEventListener('click', () => this._sortBy(key));
        cell.appendChild(button);
      } else {
        cell.textContent = column.label;
      }
      this._header.appendChild(cell);
    }
    const actions = el('div', 'jp-hpcml-Runs-cell', trans.__('Actions'));
    actions.setAttribute('role', 'columnheader');
    this._header.appendChild(actions);
  }

  private _sortBy(key: SortKey): void {
    const q = this.model.query;
    const textual = ['name', 'entry_point', 'backend', 'project', 'job_id', 'state'].includes(key);
    const descending = q.sort === key ? !q.descending : !textual;
    this._setQuery({ sort: key, descending });
  }

  private _schedulePaint(): void {
    if (!this._frame) {
      this._frame = requestAnimationFrame(() => {
        this._frame = 0;
        this._paint();
      });
    }
  }

  private _paint(): void {
    if (!this.isVisible) {
      return;
    }
    const { trans } = this._ctx;
    const cache = this.model.cache;
    const total = cache.total;
    const headerHeight = this._header.offsetHeight;
    this._spacer.style.height = `${total * ROW_HEIGHT}px`;
    this._scroller.setAttribute('aria-rowcount', String(total + 1));
    const view = visibleWindow(
      Math.max(0, this._scroller.scrollTop),
      this._scroller.clientHeight - headerHeight,
      ROW_HEIGHT,
      total,
      8
    );
    this.model.setWindow(view.start, view.end);
    this._rows.style.transform = `translateY(${view.offset}px)`;

    const hadFocus = this._rows.contains(document.activeElement);
    const now = Date.now() / 1000;
    const fragment = document.createDocumentFragment();
    for (let i = view.start; i < view.end; i++) {
      fragment.appendChild(this._renderRow(i, cache.at(i), now));
    }
    this._rows.textContent = '';
    this._rows.appendChild(fragment);
    if (hadFocus) {
      this._rows.querySelector<HTMLElement>('[tabindex="0"]')?.focus({ preventScroll: true });
    }

    const error = this.model.error;
    this._empty.textContent =
      total === 0 && !this.model.loading
        ? error ?? trans.__('No runs match. Submit one from the HPC ML sidebar.')
        : '';
    this._status.textContent = error
      ? trans.__('Error: %1', error)
      : trans._n('%1 run', '%1 runs', total);
    this._status.classList.toggle('jp-mod-error', !!error);
  }

  private _renderRow(position: number, row: IRunRow | undefined, now: number): HTMLElement {
    const { trans } = this._ctx;
    const node = el('div', 'jp-hpcml-Runs-row jp-hpcml-Runs-grid');
    node.setAttribute('role', 'row');
    node.setAttribute('aria-rowindex', String(position + 2));
    node.dataset.position = String(position);
    if (!row) {
      node.classList.add('jp-mod-loading');
      const cell = el('div', 'jp-hpcml-Runs-cell', trans.__('Loading…'));
      cell.setAttribute('role', 'cell');
      node.appendChild(cell);
      return node;
    }
    this._directory.set(row);
    node.dataset.hpcmlRunId = row.id;
    const focused = this._activeId === row.id || (this._activeId === null && position === 0);
    node.tabIndex = focused ? 0 : -1;
    node.setAttribute('aria-label', `${row.name} ${row.state}`);
    const selected = this._selected.has(row.id);
    node.setAttribute('aria-selected', String(selected));
    node.classList.toggle('jp-mod-selected', selected);
    node.classList.toggle('jp-mod-archived', row.archived);

    const check = el('div', 'jp-hpcml-Runs-cell');
    check.setAttribute('role', 'cell');
    const box = el('input');
    box.type = 'checkbox';
    box.checked = selected;
    box.tabIndex = -1;
    box.dataset.action = 'select';
    box.setAttribute('aria-label', trans.__('Select %1 for comparison', row.name));
    check.appendChild(box);
    node.appendChild(check);

    const metrics = this.model.metricsOf(row.id);
    for (const column of this._columns) {
      const cell = el('div', `jp-hpcml-Runs-cell jp-hpcml-Runs-col-${column.id}`);
      cell.setAttribute('role', 'cell');
      if (column.id === 'state') {
        cell.appendChild(stateBadge(row.state));
        if (row.archived) {
          cell.appendChild(el('span', 'jp-hpcml-archivedMark', trans.__('archived')));
        }
      } else {
        const text = column.text(row, now, metrics);
        cell.textContent = text;
        cell.title = text;
      }
      node.appendChild(cell);
    }

    const actions = el('div', 'jp-hpcml-Runs-cell jp-hpcml-Runs-actions');
    actions.setAttribute('role', 'cell');
    const button = (action: string, label: string, text: string): void => {
      const b = el('button', 'jp-hpcml-iconButton', text);
      b.dataset.action = action;
      b.tabIndex = -1;
      b.title = label;
      b.setAttribute('aria-label', `${label}: ${row.name}`);
      actions.appendChild(b);
    };
    button('logs', trans.__('Open logs'), trans.__('Logs'));
    button('charts', trans.__('Open charts'), trans.__('Charts'));
    button('menu', trans.__('More actions'), '⋯');
    node.appendChild(actions);
    return node;
  }

  private _rowIdOf(target: EventTarget | null): string | null {
    const row = (target as HTMLElement | null)?.closest?.<HTMLElement>('.jp-hpcml-Runs-row');
    return row?.dataset.hpcmlRunId ?? null;
  }

  private _onClick(event: MouseEvent): void {
    const target = event.target as HTMLElement;
    const id = this._rowIdOf(target);
    if (!id) {
      return;
    }
    this._setActive(id, false);
    const commands = this._ctx.app.commands;
    switch (target.dataset.action) {
      case 'select':
        this._toggleSelected(id);
        break;
      case 'logs':
        void commands.execute(CommandIDs.openLogs, { runId: id });
        break;
      case 'charts':
        void commands.execute(CommandIDs.openCharts, { runIds: [id] });
        break;
      case 'menu': {
        const rect = target.getBoundingClientRect();
        this._openMenu(id, rect.left, rect.bottom);
        break;
      }
    }
  }

  private _onKey(event: KeyboardEvent): void {
    const id = this._rowIdOf(event.target);
    const row = (event.target as HTMLElement).closest<HTMLElement>('.jp-hpcml-Runs-row');
    if (!id || !row) {
      return;
    }
    const position = Number(row.dataset.position);
    const commands = this._ctx.app.commands;
    const move = (to: number): void => {
      const clamped = Math.max(0, Math.min(this.model.cache.total - 1, to));
      const headerHeight = this._header.offsetHeight;
      const top = clamped * ROW_HEIGHT;
      const viewport = this._scroller.clientHeight - headerHeight;
      if (top < this._scroller.scrollTop) {
        this._scroller.scrollTop = top;
      } else if (top + ROW_HEIGHT > this._scroller.scrollTop + viewport) {
        this._scroller.scrollTop = top + ROW_HEIGHT - viewport;
      }
      this._activeId = this.model.cache.at(clamped)?.id ?? this._activeId;
      this._paint();
      this._rows.querySelector<HTMLElement>(`[data-position="${clamped}"]`)?.focus({ preventScroll: true });
    };
    const page = Math.max(1, Math.floor(this._scroller.clientHeight / ROW_HEIGHT) - 1);
    switch (event.key) {
      case 'ArrowDown':
        move(position + 1);
        break;
      case 'ArrowUp':
        move(position - 1);
        break;
      case 'PageDown':
        move(position + page);
        break;
      case 'PageUp':
        move(position - page);
        break;
      case 'Home':
        move(0);
        break;
      case 'End':
        move(this.model.cache.total - 1);
        break;
      case 'Enter':
        void commands.execute(CommandIDs.openRun, { runId: id });
        break;
      case ' ':
        this._toggleSelected(id);
        break;
      case 'l':
        void commands.execute(CommandIDs.openLogs, { runId: id });
        break;
      case 'c':
        void commands.execute(CommandIDs.openCharts, { runIds: [id] });
        break;
      case 'ContextMenu':
      case 'F10':
        if (event.key === 'F10' && !event.shiftKey) {
          return;
        }
        {
          const rect = row.getBoundingClientRect();
          this._openMenu(id, rect.left + 40, rect.bottom);
        }
        break;
      default:
        return;
    }
    event.preventDefault();
    event.stopPropagation();
  }

  private _setActive(id: string, repaint = true): void {
    this._activeId = id;
    for (const node of Array.from(this._rows.children) as HTMLElement[]) {
      node.tabIndex = node.dataset.hpcmlRunId === id ? 0 : -1;
    }
    if (repaint) {
      this._schedulePaint();
    }
  }

  private _toggleSelected(id: string): void {
    if (this._selected.has(id)) {
      this._selected.delete(id);
    } else {
      this._selected.add(id);
    }
    this._updateCompare();
    this._paint();
  }

  private _updateCompare(): void {
    const { trans } = this._ctx;
    const n = this._selected.size;
    this._compare.textContent = trans.__('Compare selected (%1)', n);
    this._compare.disabled = n === 0;
    this._compare.title = trans.__('Charts and parameters of the selected runs');
  }

  private _openMenu(runId: string, x: number, y: number): void {
    const menu = new Menu({ commands: this._ctx.app.commands });
    menu.addClass('jp-hpcml-RunMenu');
    for (const command of ROW_MENU) {
      if (command === null) {
        menu.addItem({ type: 'separator' });
      } else if (command === CommandIDs.openCharts) {
        menu.addItem({ command, args: { runIds: [runId] } });
      } else {
        menu.addItem({ command, args: { runId } });
      }
    }
    menu.aboutToClose.connect(() => {
      const row = this._rows.querySelector<HTMLElement>(`[data-hpcml-run-id="${runId}"]`);
      row?.focus({ preventScroll: true });
      // Dispose after the triggered command has run.
      requestAnimationFrame(() => menu.dispose());
    });
    menu.open(x, y);
  }

  private _columns: IColumn[] = [];
  private _filter: HTMLInputElement;
  private _filterTimer = 0;
  private _stateSelect: HTMLSelectElement;
  private _archived: HTMLInputElement;
  private _compare: HTMLButtonElement;
  private _status: HTMLSpanElement;
  private _scroller: HTMLDivElement;
  private _header: HTMLDivElement;
  private _spacer: HTMLDivElement;
  private _rows: HTMLDivElement;
  private _empty: HTMLDivElement;
  private _frame = 0;
  private _activeId: string | null = null;
  private _selected = new Set<string>();
}
