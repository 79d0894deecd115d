/**
 * The comparison tab of a sweep: pick a final metric and whether more or
 * less is better; each varied parameter gets a scatter of that metric, the
 * best child ringed and named. Refreshed while children are active.
 */
import { Widget } from '@lumino/widgets';

import { getSweep } from '../api';
import { CommandIDs } from '../commands';
import { el } from '../components/dom';
import { formatMetric } from '../runs/columns';
import { RunsContext } from '../runs/context';
import { isActive } from '../runs/rows';
import { latestMetrics } from '../runs/viewApi';
import { ISweepView } from '../types';
import { BestMode, comparisonData, metricKeys } from './comparison';
import { scatterPlot } from './comparisonChart';
import { SweepCommandIDs } from './commandIds';

type Metrics = Record<string, Record<string, number | null>>;

/** Latest metrics of many runs, 100 per request (the endpoint's bound). */
async function metricsOf(ids: string[]): Promise<Metrics> {
  const out: Metrics = {};
  for (let i = 0; i < ids.length; i += 100) {
    Object.assign(out, await latestMetrics(ids.slice(i, i + 100)));
  }
  return out;
}

export class ComparisonPanel extends Widget {
  constructor(
    private _ctx: RunsContext,
    readonly sweepId: string
  ) {
    super();
    const { trans } = _ctx;
    this.addClass('jp-hpcml-Comparison');
    const bar = el('div', 'jp-hpcml-Comparison-bar');
    bar.setAttribute('role', 'toolbar');
    this._metric.className = 'jp-mod-styled jp-hpcml-Comparison-metric';
    this._metric.setAttribute('aria-label', trans.__('Metric'));
    this._metric.addEventListener('change', () => this._render());
    this._mode.className = 'jp-mod-styled jp-hpcml-Comparison-mode';
    this._mode.setAttribute('aria-label', trans.__('Best is'));
    for (const [value, label] of [
      ['max', trans.__('best: max')],
      ['min', trans.__('best: min')]
    ]) {
      this._mode.appendChild(new Option(label, value));
    }
    this._mode.addEventListener('change', () => this._render());
    const button = (label: string, run: () => void): HTMLButtonElement => {
      const b = el('button', 'jp-mod-styled', label);
      b.addEventListener('click', run);
      return b;
    };
    const command = (id: string) => (): void =>
      void _ctx.app.commands.execute(id, { sweepId }).then(() => this.refresh());
    this._best.setAttribute('aria-live', 'polite');
    bar.append(
      this._metric,
      this._mode,
      button(trans.__('Refresh'), () => void this.refresh()),
      button(trans.__('Charts'), command(SweepCommandIDs.charts)),
      button(trans.__('Re-run failed'), command(SweepCommandIDs.rerunFailed)),
      button(trans.__('Cancel sweep'), command(SweepCommandIDs.cancel)),
      this._best
    );
    this.node.append(bar, this._plots);
    void this.refresh();
  }

  dispose(): void {
    window.clearTimeout(this._timer);
    super.dispose();
  }

  /** Fetch the children and their latest metrics again. */
  async refresh(): Promise<void> {
    window.clearTimeout(this._timer);
    try {
      this._sweep = await getSweep(this.sweepId);
      this.title.label = this._ctx.trans.__('Compare %1', this._sweep.name);
      this._metrics = await metricsOf(this._sweep.children.map(c => c.id));
      this._error = '';
    } catch (reason) {
      this._error = String((reason as Error).message ?? reason);
    }
    if (this.isDisposed) {
      return;
    }
    this._fillMetrics();
    this._render();
    if (!this._sweep || this._sweep.children.some(c => isActive(c.state))) {
      this._timer = window.setTimeout(() => void this.refresh(), Math.max(2000, this._ctx.pollMs));
    }
  }

  private _fillMetrics(): void {
    const keys = metricKeys(this._metrics);
    const current = this._metric.value;
    this._metric.textContent = '';
    keys.forEach(k => this._metric.appendChild(new Option(k, k)));
    this._metric.value = keys.includes(current) ? current : (keys[0] ?? '');
  }

  private _render(): void {
    const { trans } = this._ctx;
    this._plots.textContent = '';
    const sweep = this._sweep;
    const metric = this._metric.value;
    if (!sweep || !metric) {
      this._best.textContent =
        this._error || (sweep ? trans.__('No metrics yet.') : trans.__('Loading…'));
      return;
    }
    const order = Object.keys(sweep.definition?.parameters ?? {});
    const data = comparisonData(
      sweep.children,
      this._metrics,
      metric,
      this._mode.value as BestMode,
      order
    );
    const best = data.points.find(p => p.id === data.best);
    this._best.textContent = '';
    if (best) {
      const link = el('button', 'jp-hpcml-Link jp-hpcml-Comparison-bestRun', best.name);
      link.addEventListener(
        'click',
        () => void this._ctx.app.commands.execute(CommandIDs.openRun, { runId: best.id })
      );
      this._best.append(trans.__('Best: '), link, ` ${metric}=${formatMetric(best.value)}`);
    }
    if (!data.axes.length) {
      this._plots.textContent = trans.__('No parameter varies between the children.');
    }
    for (const axis of data.axes) {
      this._plots.appendChild(scatterPlot(data, axis, metric));
    }
  }

  private _metric = document.createElement('select');
  private _mode = document.createElement('select');
  private _best = el('span', 'jp-hpcml-Comparison-bestLine');
  private _plots = el('div', 'jp-hpcml-Comparison-plots');
  private _sweep: ISweepView | null = null;
  private _metrics: Metrics = {};
  private _error = '';
  private _timer = 0;
}
