/**
 * One log stream of a run: fetched by offset (only new bytes travel), held as
 * lines, and rendered as a virtual list (only the lines in view are in the DOM).
 */
import { ISignal, Signal } from '@lumino/signaling';

import { getLogChunk } from '../api';
import { PaintedWidget } from '../components/paintedWidget';
import { VirtualList } from '../components/virtualList';
import { atBottom, scrollTopFor } from '../components/virtualWindow';
import { LogStream } from '../types';
import { LogBuffer } from './logBuffer';
import { findMatches, IMatch, nextMatchFrom, segments } from './search';

export const LINE_HEIGHT = 17;
/** Bytes asked for per request while catching up. */
export const CHUNK_BYTES = 1024 * 1024;

export class LogPane extends PaintedWidget {
  readonly buffer = new LogBuffer();

  constructor(
    readonly runId: string,
    readonly stream: LogStream,
    private _pollMs: () => number,
    label: string
  ) {
    super();
    this.addClass('jp-hpcml-LogPane');
    const title = document.createElement('div');
    title.className = 'jp-hpcml-LogPane-title';
    title.textContent = label;
    this._scroller = document.createElement('div');
    this._scroller.className = 'jp-hpcml-LogPane-scroller';
    this._scroller.tabIndex = 0;
    this._scroller.setAttribute('role', 'log');
    this._scroller.setAttribute('aria-label', label);
    const spacer = document.createElement('div');
    spacer.className = 'jp-hpcml-LogPane-spacer';
    this._lines = document.createElement('div');
    this._lines.className = 'jp-hpcml-LogPane-lines';
    spacer.appendChild(this._lines);
    this._scroller.appendChild(spacer);
    this._list = new VirtualList(this._scroller, spacer, this._lines, LINE_HEIGHT, 20);
    this._info = document.createElement('div');
    this._info.className = 'jp-hpcml-LogPane-info';
    this.node.append(title, this._scroller, this._info);
    this._scroller.addEventListener('scroll', () => {
      if (
        !this._programmaticScroll &&
        this._follow &&
        !atBottom(
          this._scroller.scrollTop,
          this._scroller.clientHeight,
          this._scroller.scrollHeight,
          LINE_HEIGHT
        )
      ) {
        this._follow = false;
        this._followChanged.emit(false);
      }
      this._programmaticScroll = false;
      this.schedulePaint();
    });
  }

  /** The user scrolled away from the end (false) — the viewer's toggle follows. */
  get followChanged(): ISignal<this, boolean> {
    return this._followChanged;
  }

  /** New text arrived or the search changed. */
  get updated(): ISignal<this, void> {
    return this._updated;
  }

  get follow(): boolean {
    return this._follow;
  }

  set follow(value: boolean) {
    this._follow = value;
    if (value) {
      this.scrollToBottom();
    }
  }

  get matches(): readonly IMatch[] {
    return this._matches;
  }

  get currentMatch(): number {
    return this._current;
  }

  get error(): string | null {
    return this._error;
  }

  /** Start (or resume) fetching. */
  start(): void {
    if (!this._fetching && !this._timer && !this.isDisposed) {
      void this._fetch();
    }
  }

  dispose(): void {
    window.clearTimeout(this._timer);
    this._timer = 0;
    super.dispose();
  }

  setSearch(query: string, caseSensitive = false): void {
    this._query = query;
    this._caseSensitive = caseSensitive;
    this._matches = findMatches(
      i => this.buffer.line(i),
      this.buffer.lineCount,
      query,
      caseSensitive
    );
    this._current = this._matches.length
      ? nextMatchFrom(this._matches, this._firstVisibleLine())
      : -1;
    this._revealCurrent();
    this._updated.emit();
  }

  /** Go to the next (+1) or previous (-1) match. */
  step(direction: 1 | -1): void {
    if (!this._matches.length) {
      return;
    }
    const n = this._matches.length;
    this._current = (((this._current < 0 ? 0 : this._current + direction) % n) + n) % n;
    this.follow = false;
    this._followChanged.emit(false);
    this._revealCurrent();
    this._updated.emit();
  }

  scrollToTop(): void {
    this._programmaticScroll = true;
    this._scroller.scrollTop = 0;
    this.schedulePaint();
  }

  scrollToBottom(): void {
    this._programmaticScroll = true;
    this._scroller.scrollTop = this._scroller.scrollHeight;
    this.schedulePaint();
  }

  /** Read the rest of the log, then the whole text. */
  async wholeText(): Promise<string> {
    while (!this.buffer.caughtUp) {
      const before = this.buffer.nextOffset;
      await this._fetchOnce();
      if (this.buffer.nextOffset === before) {
        break;
      }
    }
    return this.buffer.text();
  }

  private async _fetchOnce(): Promise<boolean> {
    const chunk = await getLogChunk(this.runId, this.stream, this.buffer.nextOffset, CHUNK_BYTES);
    const result = this.buffer.append(chunk);
    if (result.reset) {
      this.setSearch(this._query, this._caseSensitive);
      return true;
    }
    if (!result.accepted || !chunk.data) {
      return false;
    }
    if (this._query) {
      const from = result.firstChangedLine;
      let keep = this._matches.length;
      while (keep > 0 && this._matches[keep - 1].line >= from) {
        keep--;
      }
      this._matches = this._matches
        .slice(0, keep)
        .concat(
          findMatches(
            i => this.buffer.line(i),
            this.buffer.lineCount,
            this._query,
            this._caseSensitive,
            from
          )
        );
    }
    return true;
  }

  private async _fetch(): Promise<void> {
    this._fetching = true;
    this._timer = 0;
    try {
      let grew = true;
      // Catch up in big chunks, painting after each.
      while (grew && !this.isDisposed) {
        grew = await this._fetchOnce();
        this._error = null;
        if (grew) {
          this._afterAppend();
        }
        if (this.buffer.caughtUp) {
          break;
        }
      }
    } catch (error) {
      this._error = (error as Error).message;
      this._updated.emit();
    } finally {
      this._fetching = false;
    }
    if (!this.isDisposed && (this.buffer.running || this._error)) {
      this._timer = window.setTimeout(() => void this._fetch(), this._pollMs());
    }
    this._renderInfo();
  }

  private _afterAppend(): void {
    this.paint();
    if (this._follow) {
      this.scrollToBottom();
    }
    this._renderInfo();
    this._updated.emit();
  }

  private _renderInfo(): void {
    const b = this.buffer;
    const size = b.size === null ? '–' : `${(b.size / 1024).toFixed(1)} KiB`;
    this._info.textContent = `${b.lineCount} lines · ${size}${b.running ? ' · live' : ''}${this._error ? ` · ${this._error}` : ''}`;
  }

  private _firstVisibleLine(): number {
    return Math.floor(this._scroller.scrollTop / LINE_HEIGHT);
  }

  private _revealCurrent(): void {
    const m = this._matches[this._current];
    if (m) {
      const count = this.buffer.lineCount;
      const view = this._scroller.clientHeight;
      const top = m.line * LINE_HEIGHT;
      if (
        top < this._scroller.scrollTop ||
        top > this._scroller.scrollTop + view - 2 * LINE_HEIGHT
      ) {
        this._programmaticScroll = true;
        this._scroller.scrollTop = scrollTopFor(Math.max(0, m.line - 3), LINE_HEIGHT, count, view);
      }
    }
    this.paint();
  }

  protected paint(): void {
    if (!this.isVisible) {
      return;
    }
    const count = this.buffer.lineCount;
    const view = this._list.layout(count);
    const fragment = document.createDocumentFragment();
    // Matches of the shown lines (binary search to the first one).
    let mi = nextMatchFrom(this._matches, view.start);
    if (mi >= 0 && this._matches[mi].line < view.start) {
      mi = this._matches.length; // wrapped: none at or after start
    }
    for (let i = view.start; i < view.end; i++) {
      const line = document.createElement('div');
      line.className = 'jp-hpcml-LogPane-line';
      const text = this.buffer.line(i);
      const first = mi;
      while (mi >= 0 && mi < this._matches.length && this._matches[mi].line === i) {
        mi++;
      }
      if (first >= 0 && mi > first) {
        for (const seg of segments(text, this._matches.slice(first, mi), first)) {
          if (seg.match) {
            const mark = document.createElement('mark');
            mark.textContent = seg.text;
            if (seg.matchIndex === this._current) {
              mark.className = 'jp-mod-current';
            }
            line.appendChild(mark);
          } else {
            line.appendChild(document.createTextNode(seg.text));
          }
        }
      } else {
        line.textContent = text || '\u200b';
      }
      fragment.appendChild(line);
    }
    this._lines.textContent = '';
    this._lines.appendChild(fragment);
  }

  private _scroller: HTMLDivElement;
  private _list: VirtualList;
  private _lines: HTMLDivElement;
  private _info: HTMLDivElement;
  private _follow = true;
  private _programmaticScroll = false;
  private _followChanged = new Signal<this, boolean>(this);
  private _updated = new Signal<this, void>(this);
  private _fetching = false;
  private _timer = 0;
  private _query = '';
  private _caseSensitive = false;
  private _matches: IMatch[] = [];
  private _current = -1;
  private _error: string | null = null;
}
