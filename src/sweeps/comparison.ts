/**
 * The sweep comparison's data: each child as a point (its parameters and one
 * final metric), the parameters worth an axis (those that vary), each axis's
 * scale, and the best child (max or min of the metric). Pure; the chart
 * (comparisonChart.ts) draws what this returns.
 */

export type BestMode = 'max' | 'min';

/** One child as the comparison needs it. */
export interface IChildPoint {
  id: string;
  name: string;
  state: string;
  parameters: Record<string, string>;
}

export interface IComparisonPoint extends IChildPoint {
  /** The chosen metric's latest value; null when the child has none (yet). */
  value: number | null;
}

/** One parameter axis: numeric (with its range) or categorical (its values in order). */
export interface IAxis {
  name: string;
  numeric: boolean;
  /** Numeric: [min, max]; log when every value is > 0 and they span ≥ 2 decades. */
  domain: [number, number];
  log: boolean;
  /** Categorical: the distinct values, in first-seen order. */
  categories: string[];
}

export interface IComparison {
  points: IComparisonPoint[];
  axes: IAxis[];
  /** Id of the best child, null when no child has a value. */
  best: string | null;
  /** Range of the metric over the children that have it. */
  valueDomain: [number, number] | null;
}

/** Every metric key any child has, sorted (validation/test metrics first). */
export function metricKeys(metrics: Record<string, Record<string, number | null>>): string[] {
  const keys = new Set<string>();
  Object.values(metrics).forEach(m => Object.keys(m).forEach(k => keys.add(k)));
  const rank = (k: string): number => (/^(val|test|eval)/i.test(k) ? 0 : 1);
  return [...keys].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function finite(value: number | null | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** The child with the largest (max) or smallest (min) value; the first one on ties. */
export function bestChild(points: IComparisonPoint[], mode: BestMode): string | null {
  let best: string | null = null;
  let bestValue = 0;
  for (const p of points) {
    if (!finite(p.value)) {
      continue;
    }
    if (best === null || (mode === 'max' ? p.value > bestValue : p.value < bestValue)) {
      best = p.id;
      bestValue = p.value;
    }
  }
  return best;
}

const NUMBER_RE = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;

/** The axis of one parameter over the children's values. */
export function axisOf(name: string, values: string[]): IAxis {
  const numeric = values.length > 0 && values.every(v => NUMBER_RE.test(v));
  const categories = [...new Set(values)];
  if (!numeric) {
    return {
      name,
      numeric,
      domain: [0, Math.max(0, categories.length - 1)],
      log: false,
      categories
    };
  }
  const numbers = values.map(Number);
  const lo = Math.min(...numbers);
  const hi = Math.max(...numbers);
  const log = lo > 0 && hi / lo >= 100;
  return { name, numeric, domain: [lo, hi], log, categories };
}

/**
 * Parameters that vary between children (the swept ones), in `order` first
 * (the sweep definition's), then by name.
 */
export function variedParameters(
  children: { parameters?: Record<string, string> }[],
  order: string[] = []
): string[] {
  const names = new Set<string>();
  children.forEach(c => Object.keys(c.parameters ?? {}).forEach(n => names.add(n)));
  const varied = [...names].filter(n => new Set(children.map(c => c.parameters?.[n])).size > 1);
  const rank = (n: string): number => {
    const i = order.indexOf(n);
    return i < 0 ? order.length : i;
  };
  return varied.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** Points, axes and best child of `metric` over the children. */
export function comparisonData(
  children: IChildPoint[],
  metrics: Record<string, Record<string, number | null>>,
  metric: string,
  mode: BestMode,
  order: string[] = []
): IComparison {
  const points: IComparisonPoint[] = children.map(c => {
    const value = metrics[c.id]?.[metric];
    return { ...c, value: finite(value) ? value : null };
  });
  const axes = variedParameters(children, order).map(name =>
    axisOf(
      name,
      children.map(c => c.parameters[name]).filter((v): v is string => v !== undefined)
    )
  );
  const values = points.map(p => p.value).filter(finite);
  const valueDomain: [number, number] | null = values.length
    ? [Math.min(...values), Math.max(...values)]
    : null;
  return { points, axes, best: bestChild(points, mode), valueDomain };
}

/** Where `value` falls on `axis`, from 0 (start) to 1 (end); null when it is not on it. */
export function axisFraction(axis: IAxis, value: string | undefined): number | null {
  if (value === undefined) {
    return null;
  }
  if (!axis.numeric) {
    const i = axis.categories.indexOf(value);
    const n = axis.categories.length;
    return i < 0 ? null : n === 1 ? 0.5 : i / (n - 1);
  }
  const [lo, hi] = axis.domain;
  const x = Number(value);
  if (!Number.isFinite(x)) {
    return null;
  }
  if (hi === lo) {
    return 0.5;
  }
  return axis.log
    ? (Math.log(x) - Math.log(lo)) / (Math.log(hi) - Math.log(lo))
    : (x - lo) / (hi - lo);
}
