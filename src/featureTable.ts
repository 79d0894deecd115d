/**
 * The backends' features as a table: one row per backend kind, one column per
 * feature.
 */
import { valueText } from './components/format';
import { IBackendFeatures } from './types';

/** Features in the order the server defines them; unknown ones follow. */
export const KNOWN_FEATURES: readonly string[] = [
  'cancel',
  'logs',
  'log_follow',
  'artifacts',
  'rerun',
  'upload_progress',
  'offline_tracking',
  'resources'
];

/** A cell: a yes/no feature, or a list/text shown as text. */
export type FeatureCell = boolean | string;

export interface IFeatureTable {
  /** Feature names, the table's columns. */
  columns: string[];
  rows: { backend: string; cells: FeatureCell[] }[];
}

function toCell(value: unknown): FeatureCell {
  if (typeof value === 'boolean') {
    return value;
  }
  if (Array.isArray(value)) {
    return value.map(String).join(', ');
  }
  if (value === null || value === undefined) {
    return '';
  }
  return valueText(value);
}

/** Lay out the features of every backend kind, kinds sorted by name. */
export function featureTable(backends: Record<string, IBackendFeatures>): IFeatureTable {
  const seen = new Set<string>();
  for (const features of Object.values(backends)) {
    Object.keys(features).forEach(name => seen.add(name));
  }
  const columns = [
    ...KNOWN_FEATURES.filter(name => seen.has(name)),
    ...[...seen].filter(name => !KNOWN_FEATURES.includes(name)).sort()
  ];
  const rows = Object.keys(backends)
    .sort()
    .map(backend => ({
      backend,
      cells: columns.map(name => toCell(backends[backend][name]))
    }));
  return { columns, rows };
}
