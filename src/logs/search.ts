/**
 * Finding text in log lines, and splitting a line around the matches.
 */

export interface IMatch {
  line: number;
  start: number;
  end: number;
}

/** Every match of `query` in lines [from, count), in order. */
export function findMatches(
  lineAt: (index: number) => string,
  count: number,
  query: string,
  caseSensitive = false,
  from = 0
): IMatch[] {
  const matches: IMatch[] = [];
  if (!query) {
    return matches;
  }
  const needle = caseSensitive ? query : query.toLowerCase();
  for (let i = from; i < count; i++) {
    const text = caseSensitive ? lineAt(i) : lineAt(i).toLowerCase();
    let at = text.indexOf(needle);
    while (at !== -1) {
      matches.push({ line: i, start: at, end: at + needle.length });
      at = text.indexOf(needle, at + needle.length);
    }
  }
  return matches;
}

export interface ISegment {
  text: string;
  match: boolean;
  /** Index of the match in the full match list (for the current one). */
  matchIndex?: number;
}

/**
 * A line cut into plain and matching pieces.
 *
 * @param matches - the matches of this line, ordered by start
 * @param firstIndex - index of `matches[0]` in the full match list
 */
export function segments(text: string, matches: IMatch[], firstIndex = 0): ISegment[] {
  const out: ISegment[] = [];
  let pos = 0;
  matches.forEach((m, i) => {
    if (m.start > pos) {
      out.push({ text: text.slice(pos, m.start), match: false });
    }
    out.push({ text: text.slice(m.start, m.end), match: true, matchIndex: firstIndex + i });
    pos = m.end;
  });
  if (pos < text.length || !out.length) {
    out.push({ text: text.slice(pos), match: false });
  }
  return out;
}

/** Index of the first match at or after line `line` (wrapping), or -1. */
export function nextMatchFrom(matches: IMatch[], line: number): number {
  if (!matches.length) {
    return -1;
  }
  let lo = 0;
  let hi = matches.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (matches[mid].line < line) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo < matches.length ? lo : 0;
}
