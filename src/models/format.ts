/**
 * How models read: metric values, short ids, an input example as editable
 * text, the answer of a scoring server. Pure.
 */

/** A metric value with up to 4 significant digits ("0.9733", "1.2e-5", "1234"). */
export function metricText(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) {
    return '—';
  }
  if (Number.isInteger(value)) {
    return String(value);
  }
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) {
    return value.toExponential(2);
  }
  return String(Number(value.toPrecision(4)));
}

/** The first 8 characters of a run id or commit, as the runs tab shows them. */
export function shortId(id: string | null | undefined): string {
  return id ? id.slice(0, 8) : '';
}

/** The input example as pretty JSON to edit ('' when the model has none). */
export function exampleText(example: unknown): string {
  return example === null || example === undefined ? '' : JSON.stringify(example, null, 2);
}

/** A scoring server's answer: its predictions alone when that is all it has, pretty JSON. */
export function predictionsText(answer: unknown): string {
  if (typeof answer === 'object' && answer !== null && !Array.isArray(answer)) {
    const keys = Object.keys(answer);
    if (keys.length === 1 && keys[0] === 'predictions') {
      return JSON.stringify((answer as { predictions: unknown }).predictions);
    }
  }
  return typeof answer === 'string' ? answer : JSON.stringify(answer, null, 2);
}

/** Aliases in a stable order (as the model's badges show them). */
export function sortedAliases(aliases: readonly string[]): string[] {
  return [...aliases].sort((a, b) => a.localeCompare(b));
}
