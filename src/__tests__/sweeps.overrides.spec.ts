/**
 * The sidebar's sweep values rendered as the override text of the sweep
 * grammar (engine/sweep_spec.py): list, range, interval, log.
 */
import {
  emptySpec,
  ISweepSpec,
  isContinuous,
  listItems,
  missingText,
  overrideText,
  quoteItem
} from '../sweeps/overrides';

function spec(patch: Partial<ISweepSpec>): ISweepSpec {
  return { ...emptySpec(), ...patch };
}

describe('sweep override text', () => {
  it('a list is its items joined by commas, blanks and spaces dropped', () => {
    expect(overrideText(spec({ kind: 'list', list: '0.1, 0.01 ,, 0.001 ' }))).toBe(
      '0.1,0.01,0.001'
    );
    expect(overrideText(spec({ kind: 'list', list: 'adam,sgd' }))).toBe('adam,sgd');
    expect(overrideText(spec({ kind: 'list', list: ' , ' }))).toBeNull();
  });

  it('list items the grammar would read as syntax are quoted', () => {
    expect(quoteItem('1e-4')).toBe('1e-4');
    expect(quoteItem('-3')).toBe('-3');
    expect(quoteItem('a b')).toBe("'a b'");
    expect(quoteItem('f(x)')).toBe("'f(x)'");
    expect(quoteItem("it's")).toBe('"it\'s"');
    expect(overrideText(spec({ kind: 'list', list: 'a=b, plain' }))).toBe("'a=b',plain");
    expect(listItems('x, y ,z')).toEqual(['x', 'y', 'z']);
  });

  it('a range has start and stop, and the step only when given', () => {
    expect(overrideText(spec({ kind: 'range', start: '0', stop: '5' }))).toBe('range(0,5)');
    expect(overrideText(spec({ kind: 'range', start: '0', stop: '1', step: ' 0.25 ' }))).toBe(
      'range(0,1,0.25)'
    );
    expect(overrideText(spec({ kind: 'range', start: '0' }))).toBeNull();
    expect(missingText(spec({ kind: 'range', stop: '3' }))).toBe(
      'give the start and the stop of the range'
    );
  });

  it('interval and log interval need both bounds; log is tagged', () => {
    expect(overrideText(spec({ kind: 'interval', lo: '1e-4', hi: '1e-1' }))).toBe(
      'interval(1e-4,1e-1)'
    );
    expect(overrideText(spec({ kind: 'log', lo: '1e-4', hi: '1e-1' }))).toBe(
      'tag(log,interval(1e-4,1e-1))'
    );
    expect(overrideText(spec({ kind: 'log', lo: '1e-4' }))).toBeNull();
    expect(missingText(spec({ kind: 'interval', hi: '2' }))).toBe(
      'give the lower and the upper bound'
    );
    expect(missingText(spec({ kind: 'interval', lo: '1', hi: '2' }))).toBeNull();
  });

  it('only interval and log need random search', () => {
    expect(['list', 'range', 'interval', 'log'].map(k => isContinuous(k as never))).toEqual([
      false,
      false,
      true,
      true
    ]);
  });

  it('a new sweep starts as a list holding the current value', () => {
    expect(overrideText(emptySpec('list', '0.01'))).toBe('0.01');
  });
});
