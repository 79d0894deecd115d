/**
 * A log assembled from offset-based chunks: only new bytes are asked for, and
 * the text is kept as lines (the last one possibly still being written).
 */
import { ILogChunk } from '../types';

export interface IAppendResult {
  /** The chunk continued the log where it stood. */
  accepted: boolean;
  /** The file shrank or was replaced: the buffer was cleared and must be refetched from 0. */
  reset: boolean;
  /** Lines whose content changed or appeared, from this index on. */
  firstChangedLine: number;
}

export class LogBuffer {
  private _lines: string[] = [];
  /** The unterminated last line, if any. */
  private _partial = '';
  private _nextOffset = 0;
  private _running = true;
  private _size: number | null = null;
  private _chars = 0;

  /** Byte offset to ask for next. */
  get nextOffset(): number {
    return this._nextOffset;
  }

  /** The run may still write more (as of the last chunk). */
  get running(): boolean {
    return this._running;
  }

  /** The file's size at the last chunk; null when it did not exist. */
  get size(): number | null {
    return this._size;
  }

  /** Everything in the file has been read. */
  get caughtUp(): boolean {
    return this._size === null || this._nextOffset >= this._size;
  }

  /** Number of lines, the unterminated last one included. */
  get lineCount(): number {
    return this._lines.length + (this._partial ? 1 : 0);
  }

  /** Characters held (for the status line). */
  get length(): number {
    return this._chars;
  }

  line(index: number): string {
    if (index < this._lines.length) {
      return this._lines[index];
    }
    return index === this._lines.length ? this._partial : '';
  }

  /** The whole log as text. */
  text(): string {
    const body = this._lines.join('\n');
    return this._lines.length ? `${body}\n${this._partial}` : this._partial;
  }

  clear(): void {
    this._lines = [];
    this._partial = '';
    this._nextOffset = 0;
    this._size = null;
    this._chars = 0;
    this._running = true;
  }

  /**
   * Add a chunk. A chunk that does not start at `nextOffset` (a late answer to
   * an older request) is ignored; a file now smaller than what was read resets.
   */
  append(chunk: ILogChunk): IAppendResult {
    this._running = chunk.running;
    if (chunk.size !== null && chunk.size < this._nextOffset) {
      this.clear();
      this._running = chunk.running;
      return { accepted: false, reset: true, firstChangedLine: 0 };
    }
    if (chunk.offset !== this._nextOffset) {
      return { accepted: false, reset: false, firstChangedLine: this.lineCount };
    }
    this._size = chunk.size;
    this._nextOffset = chunk.next_offset;
    const firstChangedLine = this._lines.length;
    if (!chunk.data) {
      return { accepted: true, reset: false, firstChangedLine: this.lineCount };
    }
    this._chars += chunk.data.length;
    const parts = (this._partial + chunk.data).split('\n');
    this._partial = parts.pop() ?? '';
    for (const part of parts) {
      this._lines.push(part.endsWith('\r') ? part.slice(0, -1) : part);
    }
    return { accepted: true, reset: false, firstChangedLine };
  }
}
