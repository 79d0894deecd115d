import { LogBuffer } from '../logs/logBuffer';
import { findMatches, nextMatchFrom, segments } from '../logs/search';
import { atBottom, scrollTopFor, visibleWindow } from '../components/virtualWindow';
import { ILogChunk } from '../types';

function chunk(
  offset: number,
  data: string,
  size: number | null = null,
  running = true
): ILogChunk {
  const bytes = new TextEncoder().encode(data).length;
  return {
    stream: 'stdout',
    data,
    offset,
    next_offset: offset + bytes,
    size: size ?? offset + bytes,
    running
  };
}

describe('LogBuffer', () => {
  it('joins a line split across chunks and keeps the unterminated tail', () => {
    const b = new LogBuffer();
    expect(b.append(chunk(0, 'epoch 1\nepo')).accepted).toBe(true);
    expect(b.lineCount).toBe(2);
    expect(b.line(1)).toBe('epo');
    const r = b.append(chunk(11, 'ch 2\nepoch 3\n'));
    expect(r.firstChangedLine).toBe(1);
    expect([0, 1, 2].map(i => b.line(i))).toEqual(['epoch 1', 'epoch 2', 'epoch 3']);
    expect(b.lineCount).toBe(3);
    expect(b.nextOffset).toBe(24);
    expect(b.text()).toBe('epoch 1\nepoch 2\nepoch 3\n');
  });

  it('counts offsets in bytes, not characters', () => {
    const b = new LogBuffer();
    b.append(chunk(0, 'größe ✓\n'));
    expect(b.nextOffset).toBe(new TextEncoder().encode('größe ✓\n').length);
    b.append(chunk(b.nextOffset, 'next'));
    expect(b.line(1)).toBe('next');
  });

  it('ignores a chunk that does not continue the log (late duplicate answer)', () => {
    const b = new LogBuffer();
    b.append(chunk(0, 'a\nb\n'));
    const r = b.append(chunk(0, 'a\nb\n'));
    expect(r.accepted).toBe(false);
    expect(b.lineCount).toBe(2);
  });

  it('resets when the file shrank (rotated or replaced)', () => {
    const b = new LogBuffer();
    b.append(chunk(0, 'old line\n'));
    const r = b.append(chunk(9, '', 3));
    expect(r.reset).toBe(true);
    expect(b.lineCount).toBe(0);
    expect(b.nextOffset).toBe(0);
  });

  it('strips CR of CRLF line ends, tracks running and caught-up', () => {
    const b = new LogBuffer();
    b.append(chunk(0, 'x\r\ny', 100, true));
    expect(b.line(0)).toBe('x');
    expect(b.caughtUp).toBe(false);
    b.append({ ...chunk(4, 'z\n'), size: 6, running: false });
    expect(b.caughtUp).toBe(true);
    expect(b.running).toBe(false);
    expect(b.line(1)).toBe('yz');
  });

  it('an empty chunk of a file not created yet is accepted and changes nothing', () => {
    const b = new LogBuffer();
    const r = b.append({
      stream: 'stderr',
      data: '',
      offset: 0,
      next_offset: 0,
      size: null,
      running: true
    });
    expect(r.accepted).toBe(true);
    expect(b.lineCount).toBe(0);
    expect(b.caughtUp).toBe(true);
  });

  it('assembles a multi-megabyte log from many chunks quickly', () => {
    const b = new LogBuffer();
    const line = 'epoch 123/1000  train_loss=0.1234  val_accuracy=0.9876\n';
    const block = line.repeat(20000); // ~1 MiB
    const t0 = Date.now();
    let offset = 0;
    for (let i = 0; i < 5; i++) {
      b.append(chunk(offset, block));
      offset = b.nextOffset;
    }
    expect(b.lineCount).toBe(100000);
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

describe('virtual window', () => {
  it('renders the visible items plus overscan, clamped to the list', () => {
    expect(visibleWindow(0, 100, 10, 1000, 5)).toEqual({ start: 0, end: 16, offset: 0 });
    expect(visibleWindow(500, 100, 10, 1000, 5)).toEqual({ start: 45, end: 66, offset: 450 });
    expect(visibleWindow(99999, 100, 10, 1000, 5).end).toBe(1000);
    expect(visibleWindow(0, 100, 10, 0)).toEqual({ start: 0, end: 0, offset: 0 });
    expect(visibleWindow(-20, 100, 10, 3, 5)).toEqual({ start: 0, end: 3, offset: 0 });
  });

  it('scrolls to an item and detects the bottom', () => {
    expect(scrollTopFor(50, 10, 1000, 100)).toBe(500);
    expect(scrollTopFor(999, 10, 1000, 100)).toBe(9900);
    expect(scrollTopFor(5, 10, 3, 100)).toBe(0);
    expect(atBottom(900, 100, 1000)).toBe(true);
    expect(atBottom(800, 100, 1000)).toBe(false);
  });
});

describe('search', () => {
  const lines = ['epoch 1 loss', 'nothing', 'Epoch 2 epoch'];
  const at = (i: number): string => lines[i];

  it('finds every match, case-insensitive by default', () => {
    expect(findMatches(at, 3, 'epoch')).toEqual([
      { line: 0, start: 0, end: 5 },
      { line: 2, start: 0, end: 5 },
      { line: 2, start: 8, end: 13 }
    ]);
    expect(findMatches(at, 3, 'Epoch', true)).toHaveLength(1);
    expect(findMatches(at, 3, 'epoch', false, 1)).toHaveLength(2);
    expect(findMatches(at, 3, '')).toEqual([]);
  });

  it('splits a line around matches and finds the next match from a line', () => {
    const m = findMatches(at, 3, 'epoch');
    expect(segments(lines[2], m.slice(1), 1)).toEqual([
      { text: 'Epoch', match: true, matchIndex: 1 },
      { text: ' 2 ', match: false },
      { text: 'epoch', match: true, matchIndex: 2 }
    ]);
    expect(segments('plain', [])).toEqual([{ text: 'plain', match: false }]);
    expect(nextMatchFrom(m, 1)).toBe(1);
    expect(nextMatchFrom(m, 3)).toBe(0); // wraps
    expect(nextMatchFrom([], 0)).toBe(-1);
  });
});
