/**
 * One row of the runs table: select box, a cell per shown column, and the row's
 * action buttons. Buttons carry `data-action` (see `RowAction`); the panel
 * handles clicks and keys for all rows at once.
 */
import { TranslationBundle } from '@jupyterlab/translation';

import { el } from '../components/dom';
import { stateBadge } from '../components/stateBadge';
import { IColumn } from './columns';
import { IRunRow } from './rows';

/** Every row's height in pixels (the virtual list needs them equal). */
export const ROW_HEIGHT = 28;

/** What a row's buttons and keys do (`data-action` of its buttons). */
export type RowAction =
  'select' | 'logs' | 'charts' | 'menu' | 'open' | 'expand' | 'compare' | 'rerunFailed';

/** How one row is shown. */
export interface IRowView {
  columns: IColumn[];
  /** Key metrics of the row's run, for the `metrics` column. */
  metrics?: Record<string, number | null>;
  /** Seconds since the epoch, for durations of active runs. */
  now: number;
  /** The row takes the keyboard focus (roving tabindex). */
  focused: boolean;
  selected: boolean;
  trans: TranslationBundle;
}

/** The row at `position`; a placeholder while its page is being fetched. */
export function renderRow(position: number, row: IRunRow | undefined, view: IRowView): HTMLElement {
  const { trans } = view;
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
  node.dataset.hpcmlRunId = row.id;
  node.tabIndex = view.focused ? 0 : -1;
  node.setAttribute('aria-label', `${row.name} ${row.state}`);
  node.setAttribute('aria-selected', String(view.selected));
  node.classList.toggle('jp-mod-selected', view.selected);
  node.classList.toggle('jp-mod-archived', row.archived);

  const check = el('div', 'jp-hpcml-Runs-cell');
  check.setAttribute('role', 'cell');
  const box = el('input');
  box.type = 'checkbox';
  box.checked = view.selected;
  box.tabIndex = -1;
  box.dataset.action = 'select';
  box.setAttribute('aria-label', trans.__('Select %1 for comparison', row.name));
  check.appendChild(box);
  node.appendChild(check);

  for (const column of view.columns) {
    const cell = el('div', `jp-hpcml-Runs-cell jp-hpcml-Runs-col-${column.id}`);
    cell.setAttribute('role', 'cell');
    if (column.id === 'state') {
      cell.appendChild(stateBadge(row.state));
      if (row.archived) {
        cell.appendChild(el('span', 'jp-hpcml-archivedMark', trans.__('archived')));
      }
    } else {
      const text = column.text(row, view.now, view.metrics);
      cell.textContent = text;
      cell.title = text;
    }
    node.appendChild(cell);
  }

  const actions = el('div', 'jp-hpcml-Runs-cell jp-hpcml-Runs-actions');
  actions.setAttribute('role', 'cell');
  const button = (action: RowAction, label: string, text: string): void => {
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

/** The run id (or a sweep row's sweep id) of the row holding `target`, if any. */
export function rowIdOf(target: EventTarget | null): string | null {
  const row = rowOf(target);
  return row?.dataset.hpcmlRunId ?? row?.dataset.hpcmlSweepId ?? null;
}

/** Whether the row holding `target` is a sweep's group row. */
export function isSweepRow(target: EventTarget | null): boolean {
  return !!rowOf(target)?.dataset.hpcmlSweepId;
}

/** The row element holding `target`, if any. */
export function rowOf(target: EventTarget | null): HTMLElement | null {
  return (target as HTMLElement | null)?.closest?.<HTMLElement>('.jp-hpcml-Runs-row') ?? null;
}
