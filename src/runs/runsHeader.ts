/** The runs table's sticky header row: one sort button per sortable column. */
import { TranslationBundle } from '@jupyterlab/translation';

import { el } from '../components/dom';
import { IColumn } from './columns';
import { IRowQuery, SortKey } from './rows';

/** Columns whose first click sorts A→Z; the others (times, durations) newest/largest first. */
const TEXTUAL: readonly SortKey[] = [
  'name',
  'entry_point',
  'backend',
  'project',
  'job_id',
  'state'
];

/** The query change of a click on a column's sort button: same column flips, another resets. */
export function nextSort(query: IRowQuery, key: SortKey): Partial<IRowQuery> {
  const descending = query.sort === key ? !query.descending : !TEXTUAL.includes(key);
  return { sort: key, descending };
}

/** Fill `header` with the cells of `columns`, marking the query's sort. */
export function renderHeader(
  header: HTMLElement,
  columns: IColumn[],
  query: IRowQuery,
  trans: TranslationBundle,
  onSort: (key: SortKey) => void
): void {
  header.textContent = '';
  const select = el('div', 'jp-hpcml-Runs-cell');
  select.setAttribute('role', 'columnheader');
  select.setAttribute('aria-label', trans.__('Selected'));
  header.appendChild(select);
  for (const column of columns) {
    const cell = el('div', 'jp-hpcml-Runs-cell');
    cell.setAttribute('role', 'columnheader');
    if (column.sort) {
      const sorted = query.sort === column.sort;
      cell.setAttribute(
        'aria-sort',
        sorted ? (query.descending ? 'descending' : 'ascending') : 'none'
      );
      const button = el('button', 'jp-hpcml-Runs-sort', column.label);
      button.title = trans.__('Sort by %1', column.label);
      if (sorted) {
        button.append(el('span', 'jp-hpcml-Runs-sortMark', query.descending ? ' ▼' : ' ▲'));
      }
      const key = column.sort;
      button.addEventListener('click', () => onSort(key));
      cell.appendChild(button);
    } else {
      cell.textContent = column.label;
    }
    header.appendChild(cell);
  }
  const actions = el('div', 'jp-hpcml-Runs-cell', trans.__('Actions'));
  actions.setAttribute('role', 'columnheader');
  header.appendChild(actions);
}
