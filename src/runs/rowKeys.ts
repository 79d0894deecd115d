/** The runs table's keyboard map: what a key pressed on a focused row does. */
import { RowAction } from './runRow';

/** Move the focus to the row at `position`, or run a row action. */
export type RowKeyResult = { moveTo: number } | { action: RowAction };

/**
 * The effect of `key` on the row at `position`; null for keys the table leaves alone.
 *
 * @param page - rows per page (PageUp/PageDown)
 * @param total - rows in the listing (End)
 */
export function rowKey(
  event: Pick<KeyboardEvent, 'key' | 'shiftKey'>,
  position: number,
  page: number,
  total: number
): RowKeyResult | null {
  switch (event.key) {
    case 'ArrowDown':
      return { moveTo: position + 1 };
    case 'ArrowUp':
      return { moveTo: position - 1 };
    case 'PageDown':
      return { moveTo: position + page };
    case 'PageUp':
      return { moveTo: position - page };
    case 'Home':
      return { moveTo: 0 };
    case 'End':
      return { moveTo: total - 1 };
    case 'Enter':
      return { action: 'open' };
    case ' ':
      return { action: 'select' };
    case 'l':
      return { action: 'logs' };
    case 'c':
      return { action: 'charts' };
    case 'ContextMenu':
      return { action: 'menu' };
    case 'F10':
      return event.shiftKey ? { action: 'menu' } : null;
    default:
      return null;
  }
}
