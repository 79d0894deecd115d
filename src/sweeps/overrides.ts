/**
 * Sweep values of one parameter as the sidebar edits them, and the override
 * text of the sweep grammar they stand for (engine/sweep_spec.py): `a,b,c`,
 * `range(start,stop[,step])`, `interval(lo,hi)`, `tag(log,interval(lo,hi))`.
 */

export type SweepKind = 'list' | 'range' | 'interval' | 'log';

export const SWEEP_KINDS: readonly SweepKind[] = ['list', 'range', 'interval', 'log'];

/** What the inputs of one swept parameter hold (texts, as typed). */
export interface ISweepSpec {
  kind: SweepKind;
  /** list: comma-separated values. */
  list: string;
  /** range: start, stop (exclusive), optional step. */
  start: string;
  stop: string;
  step: string;
  /** interval and log: the bounds. */
  lo: string;
  hi: string;
}

export function emptySpec(kind: SweepKind = 'list', value = ''): ISweepSpec {
  return { kind, list: value, start: '', stop: '', step: '', lo: '', hi: '' };
}

/** Kinds that only random search can draw from (no finite grid). */
export function isContinuous(kind: SweepKind): boolean {
  return kind === 'interval' || kind === 'log';
}

// Characters the grammar reads as syntax: such list items are quoted.
const SYNTAX = /[\s,()[\]{}'"=\\]/;

/** One list item as the grammar reads it back as that same text. */
export function quoteItem(item: string): string {
  if (!SYNTAX.test(item)) {
    return item;
  }
  if (!item.includes("'")) {
    return `'${item}'`;
  }
  return `"${item.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The items of a comma-separated list, trimmed, empty ones left out. */
export function listItems(text: string): string[] {
  return text
    .split(',')
    .map(item => item.trim())
    .filter(item => item !== '');
}

function bound(text: string): string {
  return text.trim();
}

/**
 * The override text of `spec`, or null while it lacks a value it needs
 * (the sidebar then shows the parameter's problem, and previews nothing).
 */
export function overrideText(spec: ISweepSpec): string | null {
  switch (spec.kind) {
    case 'list': {
      const items = listItems(spec.list);
      return items.length ? items.map(quoteItem).join(',') : null;
    }
    case 'range': {
      const [start, stop, step] = [bound(spec.start), bound(spec.stop), bound(spec.step)];
      if (!start || !stop) {
        return null;
      }
      return step ? `range(${start},${stop},${step})` : `range(${start},${stop})`;
    }
    case 'interval':
    case 'log': {
      const [lo, hi] = [bound(spec.lo), bound(spec.hi)];
      if (!lo || !hi) {
        return null;
      }
      const interval = `interval(${lo},${hi})`;
      return spec.kind === 'log' ? `tag(log,${interval})` : interval;
    }
  }
}

/** What is missing from `spec`, worded for the field's error line (null when complete). */
export function missingText(spec: ISweepSpec): string | null {
  if (overrideText(spec) !== null) {
    return null;
  }
  switch (spec.kind) {
    case 'list':
      return 'give one or more values, separated by commas';
    case 'range':
      return 'give the start and the stop of the range';
    default:
      return 'give the lower and the upper bound';
  }
}
