/**
 * The runs tab: a virtualised table over the server's sorted, filtered run
 * list (only the rows in view are in the DOM; pages are fetched as shown),
 * updated live by the model. The control bar, header, rows, keyboard map,
 * selection and row menu are modules of their own; this one lays them out and
 * routes events between them and the model.
 */
import { Message } from '@lumino/messaging';

import { CommandIDs } from '../commands';
import { el, replaceChanged } from '../components/dom';
import { PaintedWidget } from '../components/paintedWidget';
import { VirtualList } from '../components/virtualList';
import { variedParameters } from '../sweeps/comparison';
import { openSweepMenu, SweepCommandIDs } from '../sweeps/commands';
import { markChildRow, renderSweepRow } from '../sweeps/sweepRow';
import { RunDirectory } from './actions';
import { IColumn, shownColumns } from './columns';
import { RunsContext } from './context';
import { openRowMenu } from './rowMenu';
import { rowKey } from './rowKeys';
import { IRowQuery, IRunRow } from './rows';
import { IRowView, isSweepRow, renderRow, ROW_HEIGHT, RowAction, rowIdOf, rowOf } from './runRow';
import { RunsControls } from './runsControls';
import { nextSort, renderHeader } from './runsHeader';
import { RunsModel } from './runsModel';
import { RunSelection } from './runsSelection';

export { ROW_HEIGHT } from './runRow';

export class RunsPanel extends PaintedWidget {
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

    this._controls = new RunsControls(trans, {
      query: change => this._setQuery(change),
      compare: () =>
        void _ctx.app.commands.execute(CommandIDs.openCharts, { runIds: this._selection.ids }),
      refresh: () => this.model.reload()
    });

    // Table: one scroll container, a sticky header, a spacer as tall as every row.
    const scroller = el('div', 'jp-hpcml-Runs-scroller');
    scroller.setAttribute('role', 'table');
    scroller.setAttribute('aria-label', trans.__('Runs'));
    this._header = el('div', 'jp-hpcml-Runs-header jp-hpcml-Runs-grid');
    this._header.setAttribute('role', 'row');
    this._header.setAttribute('aria-rowindex', '1');
    const spacer = el('div', 'jp-hpcml-Runs-spacer');
    spacer.setAttribute('role', 'rowgroup');
    this._rows = el('div', 'jp-hpcml-Runs-rows');
    spacer.appendChild(this._rows);
    this._empty = el('div', 'jp-hpcml-Runs-empty');
    scroller.append(this._header, spacer, this._empty);
    this._list = new VirtualList(scroller, spacer, this._rows, ROW_HEIGHT, 8);
    scroller.addEventListener('scroll', () => this.schedulePaint());
    this._rows.addEventListener('keydown', event => this._onKey(event));
    this._rows.addEventListener('click', event => this._onClick(event));
    this._rows.addEventListener('contextmenu', event => {
      _ctx.contextRunId = rowIdOf(event.target) ?? '';
    });
    this._rows.addEventListener('dblclick', event => {
      const id = rowIdOf(event.target);
      if (id && isSweepRow(event.target)) {
        this.model.toggleSweep(id);
      } else if (id) {
        void _ctx.app.commands.execute(CommandIDs.openRun, { runId: id });
      }
    });
    this.node.append(this._controls.node, scroller);

    this.model.changed.connect(() => this.schedulePaint(), this);
    this.model.runChanged.connect((_, row) => this._directory.set(row), this);
    _ctx.settingsChanged.connect(() => this._setColumns(), this);
    // Deleted or (un)archived here: positions moved, fetch the shown rows again.
    _ctx.runsChanged.connect((_, change) => {
      if (change.deleted && this._selection.delete(change.id)) {
        this._controls.showSelected(this._selection.size);
      }
      this.model.reload();
    }, this);
    this._setColumns();
    this._controls.showSelected(this._selection.size);
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
    this._controls.focusFilter();
  }

  /** Show only the runs of schedule `id` ('' shows every run). */
  filterBySchedule(id: string, name = ''): void {
    this._controls.showSchedule(id, name);
    if (id !== this.model.query.schedule) {
      this._setQuery({ schedule: id });
    }
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this.paint();
  }

  protected onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    const active = this._rows.querySelector<HTMLElement>('[tabindex="0"]');
    if (active) {
      active.focus();
    } else {
      this._controls.focusFilter();
    }
  }

  private _setQuery(change: Partial<IRowQuery>): void {
    this.model.setQuery({ ...this.model.query, ...change });
    this._list.scroller.scrollTop = 0;
    this._renderHeader();
  }

  private _setColumns(): void {
    this._columns = shownColumns(this._ctx.settings.columns, this._ctx.trans);
    this.model.wantMetrics = this._columns.some(c => c.id === 'metrics');
    const tracks = ['32px', ...this._columns.map(c => c.width), '200px'].join(' ');
    this.node.style.setProperty('--jp-hpcml-runs-columns', tracks);
    this._renderHeader();
    this.schedulePaint();
  }

  private _renderHeader(): void {
    renderHeader(this._header, this._columns, this.model.query, this._ctx.trans, key =>
      this._setQuery(nextSort(this.model.query, key))
    );
  }

  protected paint(): void {
    if (!this.isVisible) {
      return;
    }
    const { trans } = this._ctx;
    const total = this.model.displayTotal;
    this._list.scroller.setAttribute('aria-rowcount', String(total + 1));
    const view = this._list.layout(total, this._header.offsetHeight);
    this.model.setWindow(view.start, view.end);

    const hadFocus = this._rows.contains(document.activeElement);
    const now = Date.now() / 1000;
    const nodes: HTMLElement[] = [];
    const varied = new Map<string, string[]>();
    for (let i = view.start; i < view.end; i++) {
      const row = this.model.displayAt(i);
      if (row && row.kind !== 'sweep') {
        this._directory.set(row);
      }
      nodes.push(
        this._renderAt(i, row, varied, {
          columns: this._columns,
          metrics: row && this.model.metricsOf(row.id),
          now,
          focused: !!row && this._selection.isActive(row.id, i),
          selected: !!row && this._selection.has(row.id),
          trans
        })
      );
    }
    replaceChanged(this._rows, nodes);
    if (hadFocus) {
      this._rows.querySelector<HTMLElement>('[tabindex="0"]')?.focus({ preventScroll: true });
    }

    const error = this.model.error;
    this._empty.textContent =
      total === 0 && !this.model.loading
        ? (error ?? trans.__('No runs match. Submit one from the HPC ML sidebar.'))
        : '';
    this._controls.showStatus(total, error);
  }

  /** A run row, a sweep's group row, or a sweep child (its varied parameters shown). */
  private _renderAt(
    i: number,
    row: IRunRow | undefined,
    varied: Map<string, string[]>,
    view: IRowView
  ): HTMLElement {
    if (row?.kind === 'sweep') {
      return renderSweepRow(i, row, { ...view, expanded: this.model.groups.isExpanded(row.id) });
    }
    const node = renderRow(i, row, view);
    const sweepId = row?.sweep_id;
    if (!row || !sweepId) {
      return node;
    }
    if (!varied.has(sweepId)) {
      varied.set(sweepId, variedParameters(this.model.groups.childrenOf(sweepId)));
    }
    return markChildRow(node, row, varied.get(sweepId));
  }

  private _onClick(event: MouseEvent): void {
    const target = event.target as HTMLElement;
    const id = rowIdOf(target);
    if (!id) {
      return;
    }
    this._setActive(id);
    const action = target.dataset.action as RowAction | undefined;
    if (action) {
      const rect = target.getBoundingClientRect();
      this._do(action, id, rect.left, rect.bottom, isSweepRow(target));
    }
  }

  private _onKey(event: KeyboardEvent): void {
    const id = rowIdOf(event.target);
    const row = rowOf(event.target);
    if (!id || !row) {
      return;
    }
    const position = Number(row.dataset.position);
    const page = Math.max(1, Math.floor(this._list.scroller.clientHeight / ROW_HEIGHT) - 1);
    const sweep = isSweepRow(row);
    const expanded = sweep && this.model.groups.isExpanded(id);
    // Right opens a sweep's group, Left closes it (as in a tree).
    const result: ReturnType<typeof rowKey> =
      sweep && event.key === (expanded ? 'ArrowLeft' : 'ArrowRight')
        ? { action: 'expand' }
        : rowKey(event, position, page, this.model.displayTotal);
    if (!result) {
      return;
    }
    if ('moveTo' in result) {
      this._moveTo(result.moveTo);
    } else {
      const rect = row.getBoundingClientRect();
      this._do(result.action, id, rect.left + 40, rect.bottom, sweep);
    }
    event.preventDefault();
    event.stopPropagation();
  }

  /** Run a row action; a menu opens at (x, y). */
  private _do(action: RowAction, id: string, x: number, y: number, sweep = false): void {
    const commands = this._ctx.app.commands;
    if (sweep) {
      this._doSweep(action, id, x, y);
      return;
    }
    switch (action) {
      case 'open':
        void commands.execute(CommandIDs.openRun, { runId: id });
        break;
      case 'select':
        this._selection.toggle(id);
        this._controls.showSelected(this._selection.size);
        this.paint();
        break;
      case 'logs':
        void commands.execute(CommandIDs.openLogs, { runId: id });
        break;
      case 'charts':
        void commands.execute(CommandIDs.openCharts, { runIds: [id] });
        break;
      case 'menu':
        openRowMenu(commands, id, x, y, () => {
          const row = this._rows.querySelector<HTMLElement>(`[data-hpcml-run-id="${id}"]`);
          row?.focus({ preventScroll: true });
        });
        break;
    }
  }

  /** A sweep row's action: expand, its children's charts or comparison, its menu. */
  private _doSweep(action: RowAction, id: string, x: number, y: number): void {
    const commands = this._ctx.app.commands;
    switch (action) {
      case 'open':
      case 'expand':
      case 'select':
        this.model.toggleSweep(id);
        break;
      case 'charts':
        void commands.execute(SweepCommandIDs.charts, { sweepId: id });
        break;
      case 'compare':
        void commands.execute(SweepCommandIDs.compare, { sweepId: id });
        break;
      case 'rerunFailed':
        void commands.execute(SweepCommandIDs.rerunFailed, { sweepId: id });
        break;
      case 'menu':
        openSweepMenu(commands, id, x, y, () => {
          const row = this._rows.querySelector<HTMLElement>(`[data-hpcml-sweep-id="${id}"]`);
          row?.focus({ preventScroll: true });
        });
        break;
    }
  }

  /** Focus the row at `position` (clamped), scrolling it into view. */
  private _moveTo(position: number): void {
    const clamped = Math.max(0, Math.min(this.model.displayTotal - 1, position));
    this._list.reveal(clamped, this._header.offsetHeight);
    this._selection.activeId = this.model.displayAt(clamped)?.id ?? this._selection.activeId;
    this.paint();
    this._rows
      .querySelector<HTMLElement>(`[data-position="${clamped}"]`)
      ?.focus({ preventScroll: true });
  }

  /** Make the row of `id` the focusable one (without repainting). */
  private _setActive(id: string): void {
    this._selection.activeId = id;
    for (const node of Array.from(this._rows.children) as HTMLElement[]) {
      node.tabIndex = rowIdOf(node) === id ? 0 : -1;
    }
  }

  private _columns: IColumn[] = [];
  private _controls: RunsControls;
  private _header: HTMLDivElement;
  private _list: VirtualList;
  private _rows: HTMLDivElement;
  private _empty: HTMLDivElement;
  private _selection = new RunSelection();
}
