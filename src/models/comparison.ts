/**
 * The metric comparison across a model's versions: one row per metric (of
 * any version's source run), one column per version, and whether the values
 * differ. Pure.
 */
import { metricKeys } from '../sweeps/comparison';
import { IModelVersionDetail } from './types';

export interface IMetricRow {
  key: string;
  /** By column; null where that version's run lacks the metric (or is not loaded yet). */
  values: (number | null)[];
  /** Not every version has the same value: worth a look. */
  differs: boolean;
}

export interface IMetricComparison {
  /** Column heads: the versions, in the order given (newest first). */
  versions: string[];
  rows: IMetricRow[];
}

/**
 * Compare the metrics of `versions` (details by version; a missing one is a
 * column of blanks).
 */
export function metricComparison(
  versions: readonly string[],
  details: ReadonlyMap<string, IModelVersionDetail>
): IMetricComparison {
  const metrics: Record<string, Record<string, number | null>> = {};
  for (const v of versions) {
    metrics[v] = details.get(v)?.metrics ?? {};
  }
  const rows = metricKeys(metrics).map(key => {
    const values = versions.map(v => metrics[v][key] ?? null);
    return { key, values, differs: new Set(values).size > 1 };
  });
  return { versions: [...versions], rows };
}
