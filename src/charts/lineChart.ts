/**
 * One metric as a uPlot line chart: one series per run, drag to zoom (double
 * click resets), hover values in the legend, theme colours from JupyterLab's
 * CSS variables.
 */
import { Widget } from '@lumino/widgets';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

import { IAligned } from './data';

export interface ISeriesStyle {
  label: string;
  color: string;
}

function cssVar(name: string, fallback: string): string {
  const value = getComputedStyle(document.body).getPropertyValue(name).trim();
  return value || fallback;
}

export const CHART_HEIGHT = 220;

export class LineChart extends Widget {
  constructor(
    readonly metric: string,
    private _xLabel: string,
    private _time: boolean
  ) {
    super();
    this.addClass('jp-hpcml-Chart');
    this.node.setAttribute('role', 'img');
    this.node.setAttribute('aria-label', metric);
    // The chart follows its box (grid column width, panel resize, sidebar toggle).
    this._observer = new ResizeObserver(() => {
      const width = this._width();
      if (this._plot && Math.abs(width - this._plot.width) > 1) {
        this._plot.setSize({ width, height: CHART_HEIGHT });
      }
    });
    this._observer.observe(this.node);
  }

  /** Draw (or redraw) with these series; keeps the zoom when the series are the same. */
  draw(series: ISeriesStyle[], data: IAligned): void {
    const key = JSON.stringify([series, this._theme()]);
    const aligned = [data.x, ...data.ys] as unknown as uPlot.AlignedData;
    if (this._plot && key === this._key) {
      this._plot.setData(aligned, !this._zoomed);
      return;
    }
    this._key = key;
    this._plot?.destroy();
    this._zoomed = false;
    this._plot = new uPlot(this._options(series), aligned, this.node);
    this.node.setAttribute('aria-label', `${this.metric}: ${series.map(s => s.label).join(', ')}`);
  }

  /** Colours changed (light/dark): rebuild on the next update. */
  themeChanged(): void {
    this._key = '';
  }

  dispose(): void {
    this._observer.disconnect();
    this._plot?.destroy();
    this._plot = null;
    super.dispose();
  }

  private _width(): number {
    return Math.max(200, this.node.clientWidth || 480);
  }

  private _theme(): string[] {
    return [cssVar('--jp-ui-font-color1', '#000'), cssVar('--jp-border-color2', '#ddd')];
  }

  private _options(series: ISeriesStyle[]): uPlot.Options {
    const [font, grid] = this._theme();
    const axis: uPlot.Axis = {
      stroke: font,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 }
    };
    return {
      title: this.metric,
      width: this._width(),
      height: CHART_HEIGHT,
      scales: { x: { time: this._time } },
      cursor: { drag: { x: true, y: false, setScale: true } },
      legend: { live: true },
      series: [
        { label: this._xLabel },
        ...series.map(s => ({
          label: s.label,
          stroke: s.color,
          width: 1.5,
          spanGaps: true,
          // Dots only where lines alone would hide points (few of them).
          points: { show: (u: uPlot) => u.data[0].length <= 60, size: 5 }
        }))
      ],
      axes: [axis, { ...axis, size: 60 }],
      hooks: {
        setSelect: [
          (u: uPlot) => {
            if (u.select.width > 0) {
              this._zoomed = true;
            }
          }
        ],
        ready: [
          (u: uPlot) => {
            u.over.addEventListener('dblclick', () => (this._zoomed = false));
          }
        ]
      }
    };
  }

  private _observer: ResizeObserver;
  private _plot: uPlot | null = null;
  private _key = '';
  private _zoomed = false;
}
