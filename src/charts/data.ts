/**
 * Metric histories of several runs turned into what a line chart draws:
 * one x axis (the union of every run's steps or times) and one y series per run.
 */
import { IMetricHistory, IMetricPoint } from '../types';

/** The metric histories of one run (GET runs-view/histories). */
export interface IRunHistories {
  id: string;
  metrics: IMetricHistory[];
  error: string | null;
}

/** One run's points of one metric. */
export interface ISeries {
  runId: string;
  points: IMetricPoint[];
}

/** Columns for uPlot: `x`, then one array per series, null where a run has no point. */
export interface IAligned {
  x: number[];
  ys: (number | null)[][];
}

/** Metric key → each run's points, keys sorted, runs in the given order. */
export function groupByMetric(runs: IRunHistories[]): Map<string, ISeries[]> {
  const keys = new Set<string>();
  for (const run of runs) {
    run.metrics.forEach(m => keys.add(m.key));
  }
  const out = new Map<string, ISeries[]>();
  for (const key of [...keys].sort()) {
    out.set(
      key,
      runs
        .map(run => ({
          runId: run.id,
          points: run.metrics.find(m => m.key === key)?.points ?? []
        }))
        .filter(s => s.points.length > 0)
    );
  }
  return out;
}

/** Sorted union of the x values of every series (each series sorted by x). */
export function unionX(series: ISeries[]): number[] {
  const all: number[] = [];
  for (const s of series) {
    for (const p of s.points) {
      all.push(p.x);
    }
  }
  all.sort((a, b) => a - b);
  const out: number[] = [];
  for (const x of all) {
    if (out.length === 0 || out[out.length - 1] !== x) {
      out.push(x);
    }
  }
  return out;
}

/**
 * Align series on one x axis: each run's value at each x, null where the run
 * has no point there (the chart bridges those gaps with `spanGaps`).
 */
export function align(series: ISeries[]): IAligned {
  const x = unionX(series);
  const ys = series.map(s => {
    const y = new Array<number | null>(x.length).fill(null);
    let j = 0;
    for (const p of s.points) {
      while (j < x.length && x[j] < p.x) {
        j++;
      }
      if (j < x.length && x[j] === p.x) {
        y[j] = p.value;
      }
    }
    return y;
  });
  return { x, ys };
}

/**
 * Live append: the points of a fresh (partial) history after those held.
 * Points at an x already held are replaced (the last bucket may have grown),
 * new ones appended; the result stays sorted by x.
 */
export function appendPoints(held: IMetricPoint[], fresh: IMetricPoint[]): IMetricPoint[] {
  if (!fresh.length) {
    return held;
  }
  const from = fresh[0].x;
  // Keep what comes before the fresh points; they supersede the rest.
  let cut = held.length;
  while (cut > 0 && held[cut - 1].x >= from) {
    cut--;
  }
  return held.slice(0, cut).concat(fresh);
}

/**
 * Replace one run's histories in a list (a refresh of an active run), keeping
 * the others and the order; an unknown run is appended.
 */
export function replaceRun(runs: IRunHistories[], fresh: IRunHistories): IRunHistories[] {
  const i = runs.findIndex(r => r.id === fresh.id);
  if (i === -1) {
    return [...runs, fresh];
  }
  const out = runs.slice();
  out[i] = fresh;
  return out;
}

/** Largest x of a run's histories (where a live refresh may start). */
export function lastX(run: IRunHistories): number | null {
  let last: number | null = null;
  for (const m of run.metrics) {
    const p = m.points[m.points.length - 1];
    if (p && (last === null || p.x > last)) {
      last = p.x;
    }
  }
  return last;
}
