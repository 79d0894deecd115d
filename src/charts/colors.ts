/**
 * Distinct line colours for overlaid runs, readable on light and dark themes.
 */

/** Tableau 10: distinguishable, colour-blind aware, mid lightness for both themes. */
export const RUN_COLORS: readonly string[] = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac'
];

/** The colour of the i-th run (cycling). */
export function runColor(index: number): string {
  return RUN_COLORS[((index % RUN_COLORS.length) + RUN_COLORS.length) % RUN_COLORS.length];
}
