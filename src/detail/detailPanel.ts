/**
 * A run's detail view: parameters, resources, resolved command, data versions,
 * code identity, state history with timestamps, exit code, job id, notes.
 * Refreshed while the run is active.
 */
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { getRun } from '../api';
import { CommandIDs } from '../commands';
import { el } from '../components/dom';
import { stateBadge } from '../components/stateBadge';
import { runDataBody } from '../data/runData';
import { RunsContext } from '../runs/context';
import { overrideStrings } from '../runs/reproduce';
import { durationOf, formatDuration, formatTime, isActive, rowFromRun } from '../runs/rows';
import { IRun } from '../types';

function formatValue(value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export class RunDetailPanel extends Widget {
  constructor(
    private _ctx: RunsContext,
    readonly runId: string,
    private _onRun: (run: IRun) => void = () => undefined
  ) {
    super();
    this.addClass('jp-hpcml-Detail');
    this.node.tabIndex = 0;
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', _ctx.trans.__('Run %1', runId));
    this.node.textContent = _ctx.trans.__('Loading…');
  }

  get run(): IRun | null {
    return this._run;
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    void this._refresh();
  }

  protected onBeforeDetach(msg: Message): void {
    window.clearTimeout(this._timer);
    this._timer = 0;
    super.onBeforeDetach(msg);
  }

  dispose(): void {
    window.clearTimeout(this._timer);
    super.dispose();
  }

  private async _refresh(): Promise<void> {
    window.clearTimeout(this._timer);
    try {
      const run = await getRun(this.runId);
      if (this.isDisposed) {
        return;
      }
      this._run = run;
      this._onRun(run);
      this._render(run);
      if (isActive(run.state)) {
        this._timer = window.setTimeout(() => void this._refresh(), this._ctx.pollMs);
      }
    } catch (error) {
      if (!this.isDisposed) {
        this.node.textContent = (error as Error).message;
      }
    }
  }

  private _render(run: IRun): void {
    const { trans } = this._ctx;
    const scroll = this.node.scrollTop;
    this.node.textContent = '';
    const head = el('h2', 'jp-hpcml-Detail-title', run.name);
    head.appendChild(stateBadge(run.state));
    this.node.appendChild(head);
    // Only a finished run with an MLflow run can have logged a model to register.
    if (run.state === 'FINISHED' && run.mlflow_run_id) {
      const register = el(
        'button',
        'jp-mod-styled jp-hpcml-button jp-hpcml-Detail-register',
        trans.__('Register model…')
      );
      register.type = 'button';
      register.onclick = () =>
        void this._ctx.app.commands.execute(CommandIDs.registerModel, { runId: run.id });
      head.appendChild(register);
    }

    const row = rowFromRun(run);
    const summary: [string, string][] = [
      [trans.__('Run id'), run.id],
      [trans.__('Project'), `${run.project_name} (${run.project_relpath || run.project_path})`],
      [trans.__('Entry point'), run.entry_point],
      [
        trans.__('Backend'),
        run.connection && run.connection !== run.backend
          ? `${run.backend}: ${run.connection}`
          : run.backend
      ],
      [trans.__('Backend config'), run.config_path ?? trans.__('(defaults)')],
      [trans.__('Job id'), run.backend_job_id ?? ''],
      [
        trans.__('Exit code'),
        run.exit_code === null || run.exit_code === undefined ? '' : String(run.exit_code)
      ],
      [trans.__('Submitted'), formatTime(run.created_at)],
      [trans.__('Started'), formatTime(row.started_at)],
      [trans.__('Ended'), formatTime(row.ended_at)],
      [trans.__('Duration'), formatDuration(durationOf(row, Date.now() / 1000))],
      [trans.__('Tracking'), run.tracking_mode],
      [
        trans.__('MLflow experiment'),
        `${run.mlflow_experiment_name ?? ''} (${run.mlflow_experiment_id ?? ''})`
      ],
      [trans.__('MLflow run'), run.mlflow_run_id ?? ''],
      [trans.__('Run directory'), run.run_dir ?? ''],
      [trans.__('Re-run of'), run.rerun_of ?? '']
    ];
    this._section(trans.__('Summary'), this._pairs(summary.filter(([, v]) => v !== '')));

    this._section(
      trans.__('Parameters'),
      this._pairs(
        Object.entries(run.parameters).map(([k, v]) => [k, v]),
        trans.__('No parameters.')
      )
    );
    this._section(
      trans.__('Resources'),
      this._pairs(
        Object.entries(run.resources ?? {}).map(([k, v]) => [k, formatValue(v)]),
        trans.__('Backend defaults.')
      )
    );
    const overrides = overrideStrings(run.config_overrides);
    if (overrides.length) {
      this._section(trans.__('Overrides for this run'), this._pre(overrides.join('\n')));
    }
    this._section(trans.__('Command'), this._pre(run.command));
    const data = runDataBody(run, trans);
    if (data) {
      this._section(trans.__('Data'), data);
    }

    const code = run.code;
    this._section(
      trans.__('Code identity'),
      this._pairs(
        code
          ? [
              [trans.__('Git commit'), code.git_commit ?? trans.__('(not a git repository)')],
              [trans.__('Uncommitted changes hash'), code.git_dirty_hash ?? trans.__('(clean)')],
              [trans.__('Content hash'), code.content_hash],
              [trans.__('Snapshot'), run.snapshot_id ?? '']
            ]
          : [],
        trans.__('Unknown.')
      )
    );

    const table = el('table', 'jp-hpcml-table');
    const thead = el('thead');
    const hr = el('tr');
    for (const h of [trans.__('State'), trans.__('At'), trans.__('Message')]) {
      const th = el('th', '', h);
      th.scope = 'col';
      hr.appendChild(th);
    }
    thead.appendChild(hr);
    table.appendChild(thead);
    const tbody = el('tbody');
    for (const change of run.state_history) {
      const tr = el('tr');
      const state = el('td');
      state.appendChild(stateBadge(change.state));
      tr.append(state, el('td', '', formatTime(change.at)), el('td', '', change.message ?? ''));
      tbody.appendChild(tr);
    }
    table.appendChild(tbody);
    this._section(trans.__('State history'), table);

    if (run.notes.length) {
      const list = el('ul', 'jp-hpcml-Detail-notes');
      run.notes.forEach(n => list.appendChild(el('li', '', n)));
      this._section(trans.__('Notes'), list);
    }
    this.node.scrollTop = scroll;
  }

  private _section(title: string, body: HTMLElement): void {
    const section = el('section', 'jp-hpcml-Detail-section');
    const h = el('h3', '', title);
    section.append(h, body);
    this.node.appendChild(section);
  }

  private _pairs(pairs: [string, string][], empty = ''): HTMLElement {
    if (!pairs.length) {
      return el('p', 'jp-hpcml-muted', empty);
    }
    const table = el('table', 'jp-hpcml-table jp-hpcml-pairs');
    for (const [k, v] of pairs) {
      const tr = el('tr');
      const th = el('th', '', k);
      th.scope = 'row';
      tr.append(th, el('td', '', v));
      table.appendChild(tr);
    }
    return table;
  }

  private _pre(text: string): HTMLElement {
    return el('pre', 'jp-hpcml-Detail-command', text);
  }

  private _run: IRun | null = null;
  private _timer = 0;
}
