/**
 * Which items of a long list of fixed-height rows to put in the DOM.
 */

export interface IWindow {
  /** First item rendered. */
  start: number;
  /** One past the last item rendered. */
  end: number;
  /** Pixels from the list's top to the first rendered item. */
  offset: number;
}

/**
 * The items visible in a viewport, plus `overscan` items either side.
 *
 * @param scrollTop - the viewport's scroll position in pixels
 * @param viewportHeight - the viewport's height in pixels
 * @param itemHeight - every item's height in pixels (> 0)
 * @param count - number of items
 * @param overscan - extra items rendered above and below
 */
export function visibleWindow(
  scrollTop: number,
  viewportHeight: number,
  itemHeight: number,
  count: number,
  overscan = 10
): IWindow {
  if (count <= 0 || itemHeight <= 0) {
    return { start: 0, end: 0, offset: 0 };
  }
  const top = Math.max(0, Math.min(scrollTop, count * itemHeight));
  const first = Math.floor(top / itemHeight);
  const visible = Math.ceil(Math.max(0, viewportHeight) / itemHeight) + 1;
  const start = Math.max(0, first - overscan);
  const end = Math.min(count, first + visible + overscan);
  return { start, end, offset: start * itemHeight };
}

/** The scroll position that shows item `index` (top aligned), clamped to the list. */
export function scrollTopFor(
  index: number,
  itemHeight: number,
  count: number,
  viewportHeight: number
): number {
  const max = Math.max(0, count * itemHeight - viewportHeight);
  return Math.max(0, Math.min(index * itemHeight, max));
}

/** Whether the viewport shows the list's end (within `slack` pixels). */
export function atBottom(
  scrollTop: number,
  viewportHeight: number,
  scrollHeight: number,
  slack = 4
): boolean {
  return scrollTop + viewportHeight >= scrollHeight - slack;
}
