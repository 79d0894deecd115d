/**
 * The sweep comparison drawn as SVG: one small scatter per varied parameter
 * (parameter value across, the chosen metric up), every child a dot, the best
 * child ringed. Data and scales come from comparison.ts.
 */
import { formatMetric } from '../runs/columns';
import { axisFraction, IAxis, IComparison } from './comparison';

const SVG = 'http://www.w3.org/2000/svg';
const W = 240;
const H = 170;
const PAD = { left: 48, right: 10, top: 10, bottom: 34 };

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {},
  text?: string
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, String(v));
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function axisLabels(axis: IAxis): { at: number; text: string }[] {
  if (!axis.numeric) {
    const n = axis.categories.length;
    // Few categories: all of them; many: first and last.
    const shown = n <= 6 ? axis.categories : [axis.categories[0], axis.categories[n - 1]];
    return shown.map(c => ({ at: axisFraction(axis, c) ?? 0, text: c }));
  }
  const [lo, hi] = axis.domain;
  return lo === hi
    ? [{ at: 0.5, text: formatMetric(lo) }]
    : [
        { at: 0, text: formatMetric(lo) },
        { at: 1, text: formatMetric(hi) }
      ];
}

/** One scatter: `axis` across, the metric up. */
export function scatterPlot(data: IComparison, axis: IAxis, metric: string): SVGSVGElement {
  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`,
    width: W,
    height: H,
    class: 'jp-hpcml-Comparison-plot',
    role: 'img',
    'aria-label': `${metric} by ${axis.name}`
  });
  root.dataset.param = axis.name;
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const x = (f: number): number => PAD.left + f * iw;
  const [vlo, vhi] = data.valueDomain ?? [0, 1];
  const y = (v: number): number =>
    PAD.top + ih - (vhi === vlo ? 0.5 : (v - vlo) / (vhi - vlo)) * ih;

  root.appendChild(
    svg('rect', {
      x: PAD.left,
      y: PAD.top,
      width: iw,
      height: ih,
      class: 'jp-hpcml-Comparison-frame'
    })
  );
  for (const label of axisLabels(axis)) {
    root.appendChild(
      svg('text', { x: x(label.at), y: H - 20, 'text-anchor': 'middle' }, label.text)
    );
  }
  root.appendChild(
    svg(
      'text',
      {
        x: PAD.left + iw / 2,
        y: H - 4,
        'text-anchor': 'middle',
        class: 'jp-hpcml-Comparison-axis'
      },
      axis.log ? `${axis.name} (log)` : axis.name
    )
  );
  if (data.valueDomain) {
    root.appendChild(
      svg('text', { x: PAD.left - 4, y: y(vhi) + 4, 'text-anchor': 'end' }, formatMetric(vhi))
    );
    if (vhi !== vlo) {
      root.appendChild(
        svg('text', { x: PAD.left - 4, y: y(vlo), 'text-anchor': 'end' }, formatMetric(vlo))
      );
    }
  }
  // The best child last, so that its ring is on top.
  const points = [...data.points].sort(
    (a, b) => Number(a.id === data.best) - Number(b.id === data.best)
  );
  for (const point of points) {
    const f = axisFraction(axis, point.parameters[axis.name]);
    if (f === null || point.value === null) {
      continue;
    }
    const best = point.id === data.best;
    const dot = svg('circle', {
      cx: x(f),
      cy: y(point.value),
      r: best ? 6 : 4,
      class: best ? 'jp-hpcml-Comparison-dot jp-hpcml-Comparison-best' : 'jp-hpcml-Comparison-dot'
    });
    dot.dataset.runId = point.id;
    dot.appendChild(
      svg(
        'title',
        {},
        `${point.name}: ${axis.name}=${point.parameters[axis.name]}, ${metric}=${formatMetric(point.value)}${best ? ' (best)' : ''}`
      )
    );
    root.appendChild(dot);
  }
  return root;
}
