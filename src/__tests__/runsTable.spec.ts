import { valueText } from '../components/format';
import { rowKey } from '../runs/rowKeys';
import { DEFAULT_QUERY } from '../runs/rows';
import { nextSort } from '../runs/runsHeader';
import { RunSelection } from '../runs/runsSelection';

describe('runs table keyboard map', () => {
  const key = (k: string, shiftKey = false) => rowKey({ key: k, shiftKey }, 5, 10, 40);

  it('moves by one, by a page and to either end', () => {
    expect(key('ArrowDown')).toEqual({ moveTo: 6 });
    expect(key('ArrowUp')).toEqual({ moveTo: 4 });
    expect(key('PageDown')).toEqual({ moveTo: 15 });
    expect(key('PageUp')).toEqual({ moveTo: -5 }); // the panel clamps
    expect(key('Home')).toEqual({ moveTo: 0 });
    expect(key('End')).toEqual({ moveTo: 39 });
  });

  it('runs the row actions; Shift+F10 and the menu key open the menu, F10 alone does not', () => {
    expect(key('Enter')).toEqual({ action: 'open' });
    expect(key(' ')).toEqual({ action: 'select' });
    expect(key('l')).toEqual({ action: 'logs' });
    expect(key('c')).toEqual({ action: 'charts' });
    expect(key('ContextMenu')).toEqual({ action: 'menu' });
    expect(key('F10', true)).toEqual({ action: 'menu' });
    expect(key('F10')).toBeNull();
    expect(key('x')).toBeNull();
  });
});

describe('runs table header', () => {
  it('flips the order of the sorted column; text columns start A→Z, others newest first', () => {
    const query = { ...DEFAULT_QUERY, sort: 'submitted' as const, descending: true };
    expect(nextSort(query, 'submitted')).toEqual({ sort: 'submitted', descending: false });
    expect(nextSort(query, 'name')).toEqual({ sort: 'name', descending: false });
    expect(nextSort(query, 'updated')).toEqual({ sort: 'updated', descending: true });
  });
});

describe('runs table selection', () => {
  it('toggles runs in selection order and forgets deleted ones', () => {
    const s = new RunSelection();
    s.toggle('b');
    s.toggle('a');
    expect(s.ids).toEqual(['b', 'a']);
    s.toggle('b');
    expect(s.ids).toEqual(['a']);
    expect(s.delete('a')).toBe(true);
    expect(s.delete('a')).toBe(false);
    expect(s.size).toBe(0);
  });

  it('focuses the first row until a row is made active', () => {
    const s = new RunSelection();
    expect(s.isActive('x', 0)).toBe(true);
    expect(s.isActive('y', 1)).toBe(false);
    s.activeId = 'y';
    expect(s.isActive('x', 0)).toBe(false);
    expect(s.isActive('y', 1)).toBe(true);
  });
});

describe('valueText', () => {
  it('writes objects as JSON and everything else with String()', () => {
    expect(valueText({ Path: '/x' })).toBe('{"Path":"/x"}');
    expect(valueText(['a', 1])).toBe('["a",1]');
    expect(valueText(3)).toBe('3');
    expect(valueText(true)).toBe('true');
    expect(valueText(null)).toBe('null');
  });
});
