/**
 * A sweep's group row in the runs table (expand toggle, name with its
 * children's counts by state as small badges, the sweep's state and created
 * time) and the marks of a child row (indented, its point's parameters).
 */
import { el } from '../components/dom';
import { formatMetric } from '../runs/columns';
import { stateBadge } from '../components/stateBadge';
import { IRowView, RowAction } from '../runs/runRow';
import { IRunRow } from '../runs/rows';
import { RunState } from '../types';

/** Order of the count badges: what is going on first, then how it ended. */
const COUNT_ORDER: RunState[] = [
  'STAGING',
  'SUBMITTING',
  'QUEUED',
  'RUNNING',
  'UNKNOWN',
  'FINISHED',
  'FAILED',
  'TIMEOUT',
  'CANCELLED'
];

/** `[["RUNNING", 2], ["FINISHED", 3]]`: the non-zero counts, in badge order. */
export function countEntries(counts: IRunRow['counts']): [RunState, number][] {
  return COUNT_ORDER.filter(s => (counts?.[s] ?? 0) > 0).map(s => [s, counts?.[s] ?? 0]);
}

/** A long float (a random draw) to 4 significant digits; anything else as it is. */
export function shortValue(value: string): string {
  const number = Number(value);
  if (value.length <= 8 || !value.trim() || !Number.isFinite(number) || Number.isInteger(number)) {
    return value;
  }
  return formatMetric(number);
}

/** `a=0.1 b=2`: a child's point, parameters by name (only `names` when given). */
export function pointText(
  parameters: Record<string, string> | undefined,
  names?: string[]
): string {
  return Object.entries(parameters ?? {})
    .filter(([k]) => !names || names.includes(k))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${shortValue(v)}`)
    .join(' ');
}

function countBadges(row: IRunRow): HTMLElement {
  const box = el('span', 'jp-hpcml-SweepCounts');
  box.title = countEntries(row.counts)
    .map(([state, n]) => `${n} ${state}`)
    .join(', ');
  for (const [state, n] of countEntries(row.counts)) {
    const badge = el(
      'span',
      `jp-hpcml-badge jp-hpcml-SweepCount jp-hpcml-state-${state}`,
      String(n)
    );
    badge.dataset.state = state;
    badge.title = `${n} ${state}`;
    box.appendChild(badge);
  }
  return box;
}

/** The group row of a sweep at display `position`. */
export function renderSweepRow(
  position: number,
  row: IRunRow,
  view: IRowView & { expanded: boolean }
): HTMLElement {
  const { trans } = view;
  const node = el('div', 'jp-hpcml-Runs-row jp-hpcml-Runs-grid jp-hpcml-Runs-sweep');
  node.setAttribute('role', 'row');
  node.setAttribute('aria-rowindex', String(position + 2));
  node.setAttribute('aria-expanded', String(view.expanded));
  node.setAttribute('aria-label', trans.__('Sweep %1 %2', row.name, row.state));
  node.dataset.position = String(position);
  // Not `hpcmlRunId`: the run actions (context menu) do not apply to a sweep.
  node.dataset.hpcmlSweepId = row.id;
  node.tabIndex = view.focused ? 0 : -1;

  const toggle = el('div', 'jp-hpcml-Runs-cell');
  toggle.setAttribute('role', 'cell');
  const button = el(
    'button',
    'jp-hpcml-iconButton jp-hpcml-Sweep-expand',
    view.expanded ? '▾' : '▸'
  );
  button.dataset.action = 'expand';
  button.tabIndex = -1;
  button.setAttribute(
    'aria-label',
    view.expanded ? trans.__('Collapse %1', row.name) : trans.__('Expand %1', row.name)
  );
  toggle.appendChild(button);
  node.appendChild(toggle);

  for (const column of view.columns) {
    const cell = el('div', `jp-hpcml-Runs-cell jp-hpcml-Runs-col-${column.id}`);
    cell.setAttribute('role', 'cell');
    if (column.id === 'name') {
      const name = el('span', 'jp-hpcml-SweepName', row.name);
      cell.title = trans.__('Sweep %1 (%2)', row.name, row.id);
      cell.appendChild(name);
    } else if (column.id === 'state') {
      // The children's counts say more than the sweep's one state (in the title).
      const counts = countBadges(row);
      cell.title = trans.__('%1: %2', row.state, counts.title);
      cell.appendChild(counts.childElementCount ? counts : stateBadge(row.state));
    } else if (column.id !== 'metrics' && column.id !== 'duration') {
      const text = column.text(row, view.now);
      cell.textContent = text;
      cell.title = text;
    }
    node.appendChild(cell);
  }

  const actions = el('div', 'jp-hpcml-Runs-cell jp-hpcml-Runs-actions');
  actions.setAttribute('role', 'cell');
  const action = (name: RowAction, label: string, text: string): void => {
    const b = el('button', 'jp-hpcml-iconButton', text);
    b.dataset.action = name;
    b.tabIndex = -1;
    b.title = label;
    b.setAttribute('aria-label', `${label}: ${row.name}`);
    actions.appendChild(b);
  };
  action('charts', trans.__('Open charts of all children'), trans.__('Charts'));
  action('compare', trans.__('Compare the children'), trans.__('Compare'));
  if ((row.counts?.FAILED ?? 0) + (row.counts?.TIMEOUT ?? 0) > 0) {
    action('rerunFailed', trans.__('Re-run the failed children'), trans.__('Retry'));
  }
  action('menu', trans.__('More actions'), '⋯');
  node.appendChild(actions);
  return node;
}

/**
 * Mark a rendered run row as a sweep child: indented, its point in the name
 * cell (the parameters in `names`: those that vary in the sweep).
 */
export function markChildRow(node: HTMLElement, row: IRunRow, names?: string[]): HTMLElement {
  node.classList.add('jp-hpcml-Runs-child');
  node.dataset.hpcmlParentSweep = row.sweep_id ?? '';
  const point = pointText(row.parameters, names);
  const name = node.querySelector<HTMLElement>('.jp-hpcml-Runs-col-name');
  if (name) {
    // Under its sweep the point says more than the name (`<sweep>-<i>`, in the title).
    const index = row.sweep_index ?? '';
    name.textContent = '';
    name.append(
      el('span', 'jp-hpcml-SweepIndex', `#${index}`),
      el('span', 'jp-hpcml-SweepPoint', point)
    );
    name.title = `${row.name} ${point}`;
  }
  return node;
}
