/**
 * The charts tab: every metric of one or several runs as a line chart (runs
 * overlaid, one colour each, with a legend), live while a run is active, and a
 * parameter comparison table highlighting the values that differ.
 */
import { Message } from '@lumino/messaging';
import { BoxLayout, Panel, SplitPanel, Widget } from '@lumino/widgets';

import { getRun } from '../api';
import { stateBadge } from '../components/stateBadge';
import { RunsContext } from '../runs/context';
import { isActive } from '../runs/rows';
import { metricHistories } from '../runs/viewApi';
import { IRun } from '../types';
import { runColor } from './colors';
import { align, groupByMetric, IRunHistories, replaceRun } from './data';
import { LineChart } from './lineChart';
import { compareParams } from './params';

/** Points per metric and run asked for (the server keeps bucket min/max). */
export const MAX_POINTS = 1500;

export class ChartsPanel extends Widget {
  constructor(
    private _ctx: RunsContext,
    readonly runIds: string[]
  ) {
    super();
    const { trans } = _ctx;
    this.addClass('jp-hpcml-Charts');

    const bar = new Widget();
    bar.addClass('jp-hpcml-Charts-bar');
    bar.node.setAttribute('role', 'toolbar');
    bar.node.setAttribute('aria-label', trans.__('Chart controls'));
    this._xSelect = document.createElement('select');
    this._xSelect.className = 'jp-mod-styled';
    this._xSelect.setAttribute('aria-label', trans.__('Horizontal axis'));
    for (const [value, label] of [
      ['step', trans.__('Step')],
      ['time', trans.__('Wall time')]
    ]) {
      const o = document.createElement('option');
      o.value = value;
      o.textContent = label;
      this._xSelect.appendChild(o);
    }
    this._xSelect.addEventListener('change', () => {
      this._clearCharts();
      this._histories = [];
      void this._refresh(true);
    });
    this._legend = document.createElement('ul');
    this._legend.className = 'jp-hpcml-Charts-legend';
    this._legend.setAttribute('aria-label', trans.__('Runs'));
    this._status = document.createElement('span');
    this._status.className = 'jp-hpcml-Charts-status';
    this._status.setAttribute('aria-live', 'polite');
    const hint = document.createElement('span');
    hint.className = 'jp-hpcml-muted';
    hint.textContent = trans.__('Drag to zoom, double-click to reset.');
    bar.node.append(this._xSelect, this._legend, this._status, hint);

    this._charts = new Panel();
    this._charts.addClass('jp-hpcml-Charts-grid');
    this._params = new Widget();
    this._params.addClass('jp-hpcml-Charts-params');
    const split = new SplitPanel({ orientation: 'horizontal', spacing: 4 });
    split.addWidget(this._charts);
    split.addWidget(this._params);
    SplitPanel.setStretch(this._charts, 3);
    SplitPanel.setStretch(this._params, 1);

    const layout = new BoxLayout({ direction: 'top-to-bottom', spacing: 0 });
    BoxLayout.setStretch(bar, 0);
    BoxLayout.setStretch(split, 1);
    layout.addWidget(bar);
    layout.addWidget(split);
    this.layout = layout;

    // Light/dark switch: the canvases take colours from CSS variables.
    this._themeObserver = new MutationObserver(() => {
      this._chartsByKey.forEach(c => c.themeChanged());
      this._draw();
    });
    this._themeObserver.observe(document.body, {
      attributes: true,
      attributeFilter: ['data-jp-theme-light', 'data-jp-theme-name']
    });
  }

  get xMode(): 'step' | 'time' {
    return this._xSelect.value as 'step' | 'time';
  }

  dispose(): void {
    window.clearTimeout(this._timer);
    this._themeObserver.disconnect();
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (!this._started) {
      this._started = true;
      void this._refresh(true);
    }
  }

  private async _refresh(all: boolean): Promise<void> {
    window.clearTimeout(this._timer);
    const { trans } = this._ctx;
    try {
      const ids = all
        ? this.runIds
        : this.runIds.filter(id => {
            const run = this._runs.get(id);
            return !run || isActive(run.state);
          });
      if (ids.length) {
        const [runs, histories] = await Promise.all([
          Promise.all(ids.map(id => getRun(id))),
          metricHistories(ids, MAX_POINTS, this.xMode)
        ]);
        if (this.isDisposed) {
          return;
        }
        runs.forEach(r => this._runs.set(r.id, r));
        for (const h of histories) {
          this._histories = replaceRun(this._histories, h);
        }
        this._histories.sort((a, b) => this.runIds.indexOf(a.id) - this.runIds.indexOf(b.id));
        const t0 = performance.now();
        this._draw();
        this._lastDrawMs = performance.now() - t0;
        this.node.dataset.drawMs = this._lastDrawMs.toFixed(1);
      }
      this._status.textContent = '';
    } catch (error) {
      this._status.textContent = trans.__('Error: %1', (error as Error).message);
    }
    if (this.isDisposed) {
      return;
    }
    const live = this.runIds.some(id => {
      const run = this._runs.get(id);
      return !run || isActive(run.state);
    });
    if (live) {
      this._timer = window.setTimeout(
        () => void this._refresh(false),
        Math.max(this._ctx.pollMs, 1000)
      );
    }
  }

  private _label(id: string): string {
    const run = this._runs.get(id);
    return run ? `${run.name} (${id.slice(0, 8)})` : id;
  }

  private _clearCharts(): void {
    this._chartsByKey.forEach(c => c.dispose());
    this._chartsByKey.clear();
  }

  private _draw(): void {
    const { trans } = this._ctx;
    this._renderLegend();
    this._renderParams();
    const byKey = groupByMetric(this._histories);
    const x = this.xMode;
    for (const [key, chart] of this._chartsByKey) {
      if (!byKey.has(key)) {
        chart.dispose();
        this._chartsByKey.delete(key);
      }
    }
    for (const [key, series] of byKey) {
      let chart = this._chartsByKey.get(key);
      if (!chart) {
        chart = new LineChart(
          key,
          x === 'time' ? trans.__('time') : trans.__('step'),
          x === 'time'
        );
        this._chartsByKey.set(key, chart);
        this._charts.addWidget(chart);
      }
      const styles = series.map(s => ({
        label: this._label(s.runId),
        color: runColor(this.runIds.indexOf(s.runId))
      }));
      chart.draw(styles, align(series));
    }
    const errors = this._histories
      .filter(h => h.error)
      .map(h => `${this._label(h.id)}: ${h.error}`);
    if (!byKey.size) {
      this._status.textContent = errors.length
        ? errors.join('; ')
        : trans.__('No metrics logged yet.');
    }
  }

  private _renderLegend(): void {
    this._legend.textContent = '';
    this.runIds.forEach((id, i) => {
      const li = document.createElement('li');
      li.className = 'jp-hpcml-Charts-legendItem';
      const swatch = document.createElement('span');
      swatch.className = 'jp-hpcml-swatch';
      swatch.style.background = runColor(i);
      swatch.setAttribute('aria-hidden', 'true');
      li.append(swatch, document.createTextNode(this._label(id)));
      const run = this._runs.get(id);
      if (run) {
        li.appendChild(stateBadge(run.state));
      }
      this._legend.appendChild(li);
    });
  }

  private _renderParams(): void {
    const { trans } = this._ctx;
    const runs = this.runIds.map(id => this._runs.get(id)).filter((r): r is IRun => !!r);
    const node = this._params.node;
    node.textContent = '';
    const title = document.createElement('h3');
    title.textContent = trans.__('Parameters');
    node.appendChild(title);
    const rows = compareParams(
      runs.map(r => ({ id: r.id, name: r.name, parameters: r.parameters }))
    );
    if (!rows.length) {
      const p = document.createElement('p');
      p.className = 'jp-hpcml-muted';
      p.textContent = trans.__('No parameters.');
      node.appendChild(p);
      return;
    }
    const table = document.createElement('table');
    table.className = 'jp-hpcml-table jp-hpcml-ParamTable';
    const head = document.createElement('tr');
    const corner = document.createElement('th');
    corner.textContent = trans.__('Parameter');
    corner.scope = 'col';
    head.appendChild(corner);
    runs.forEach(r => {
      const th = document.createElement('th');
      th.scope = 'col';
      const swatch = document.createElement('span');
      swatch.className = 'jp-hpcml-swatch';
      swatch.style.background = runColor(this.runIds.indexOf(r.id));
      th.append(swatch, document.createTextNode(r.name));
      head.appendChild(th);
    });
    const thead = document.createElement('thead');
    thead.appendChild(head);
    table.appendChild(thead);
    const tbody = document.createElement('tbody');
    for (const row of rows) {
      const tr = document.createElement('tr');
      if (row.differs) {
        tr.className = 'jp-mod-differs';
        tr.title = trans.__('Differs between runs');
      }
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = row.name;
      tr.appendChild(th);
      row.values.forEach(v => {
        const td = document.createElement('td');
        td.textContent = v ?? '–';
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    }
    table.appendChild(tbody);
    node.appendChild(table);
  }

  private _xSelect: HTMLSelectElement;
  private _legend: HTMLUListElement;
  private _status: HTMLSpanElement;
  private _charts: Panel;
  private _params: Widget;
  private _chartsByKey = new Map<string, LineChart>();
  private _histories: IRunHistories[] = [];
  private _runs = new Map<string, IRun>();
  private _timer = 0;
  private _started = false;
  private _lastDrawMs = 0;
  private _themeObserver: MutationObserver;
}
