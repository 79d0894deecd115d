/**
 * The log viewer tab: stdout and stderr of a run (one or side by side), live
 * tail with a follow toggle, search with highlight, jump to top/bottom, and
 * download of the whole log.
 */
import { BoxLayout, SplitPanel, Widget } from '@lumino/widgets';

import { RunsContext } from '../runs/context';
import { LogStream } from '../types';
import { LogPane } from './logPane';

export type LogMode = LogStream | 'both';

function button(label: string, text: string, onClick: () => void): HTMLButtonElement {
  const b = document.createElement('button');
  b.className = 'jp-mod-styled jp-hpcml-button';
  b.textContent = text;
  b.title = label;
  b.setAttribute('aria-label', label);
  b.addEventListener('click', onClick);
  return b;
}

export class LogViewer extends Widget {
  readonly panes: Record<LogStream, LogPane>;

  constructor(
    private _ctx: RunsContext,
    readonly runId: string,
    mode: LogMode = 'stdout'
  ) {
    super();
    const { trans } = _ctx;
    this.addClass('jp-hpcml-LogViewer');
    const poll = (): number => _ctx.pollMs;
    this.panes = {
      stdout: new LogPane(runId, 'stdout', poll, trans.__('stdout')),
      stderr: new LogPane(runId, 'stderr', poll, trans.__('stderr'))
    };

    const bar = new Widget();
    bar.addClass('jp-hpcml-LogViewer-bar');
    const node = bar.node;
    node.setAttribute('role', 'toolbar');
    node.setAttribute('aria-label', trans.__('Log viewer controls'));

    this._mode = document.createElement('select');
    this._mode.className = 'jp-mod-styled';
    this._mode.setAttribute('aria-label', trans.__('Streams shown'));
    for (const [value, label] of [
      ['stdout', trans.__('stdout')],
      ['stderr', trans.__('stderr')],
      ['both', trans.__('stdout | stderr')]
    ]) {
      const o = document.createElement('option');
      o.value = value;
      o.textContent = label;
      this._mode.appendChild(o);
    }
    this._mode.addEventListener('change', () => this.setMode(this._mode.value as LogMode));

    const followLabel = document.createElement('label');
    followLabel.className = 'jp-hpcml-LogViewer-follow';
    this._follow = document.createElement('input');
    this._follow.type = 'checkbox';
    this._follow.checked = true;
    this._follow.addEventListener('change', () => this._setFollow(this._follow.checked));
    followLabel.append(this._follow, document.createTextNode(trans.__('Follow')));
    followLabel.title = trans.__('Keep the newest output in view');

    this._search = document.createElement('input');
    this._search.type = 'search';
    this._search.className = 'jp-mod-styled jp-hpcml-LogViewer-search';
    this._search.placeholder = trans.__('Search…');
    this._search.setAttribute('aria-label', trans.__('Search the log'));
    this._search.addEventListener('input', () => {
      window.clearTimeout(this._searchTimer);
      this._searchTimer = window.setTimeout(() => this._applySearch(), 200);
    });
    this._search.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        event.preventDefault();
        this._step(event.shiftKey ? -1 : 1);
      }
    });
    this._count = document.createElement('span');
    this._count.className = 'jp-hpcml-LogViewer-count';
    this._count.setAttribute('aria-live', 'polite');

    node.append(
      this._mode,
      followLabel,
      this._search,
      button(trans.__('Previous match'), '↑', () => this._step(-1)),
      button(trans.__('Next match'), '↓', () => this._step(1)),
      this._count,
      button(trans.__('Jump to top'), trans.__('Top'), () =>
        this._visible().forEach(p => p.scrollToTop())
      ),
      button(trans.__('Jump to bottom'), trans.__('Bottom'), () =>
        this._visible().forEach(p => p.scrollToBottom())
      ),
      button(trans.__('Download the whole log'), trans.__('Download'), () => void this._download())
    );

    this._split = new SplitPanel({ orientation: 'horizontal', spacing: 4 });
    this._split.addWidget(this.panes.stdout);
    this._split.addWidget(this.panes.stderr);
    for (const pane of Object.values(this.panes)) {
      pane.followChanged.connect((_, follow) => {
        this._follow.checked = follow;
      });
      pane.updated.connect(() => this._renderCount());
    }

    const layout = new BoxLayout({ direction: 'top-to-bottom', spacing: 0 });
    BoxLayout.setStretch(bar, 0);
    BoxLayout.setStretch(this._split, 1);
    layout.addWidget(bar);
    layout.addWidget(this._split);
    this.layout = layout;
    this.setMode(mode);
  }

  get mode(): LogMode {
    return this._mode.value as LogMode;
  }

  setMode(mode: LogMode): void {
    this._mode.value = mode;
    this.panes.stdout.setHidden(mode === 'stderr');
    this.panes.stderr.setHidden(mode === 'stdout');
    this._visible().forEach(p => p.start());
    this._applySearch();
  }

  /** Focus the search box. */
  focusSearch(): void {
    this._search.focus();
    this._search.select();
  }

  private _visible(): LogPane[] {
    return Object.values(this.panes).filter(p => !p.isHidden);
  }

  private _setFollow(on: boolean): void {
    this._visible().forEach(p => (p.follow = on));
  }

  private _applySearch(): void {
    this._visible().forEach(p => p.setSearch(this._search.value));
    this._renderCount();
  }

  private _step(direction: 1 | -1): void {
    // The first visible pane with matches leads.
    const pane = this._visible().find(p => p.matches.length);
    pane?.step(direction);
    this._renderCount();
  }

  private _renderCount(): void {
    const { trans } = this._ctx;
    if (!this._search.value) {
      this._count.textContent = '';
      return;
    }
    const parts = this._visible().map(p =>
      p.matches.length
        ? trans.__('%1: %2 of %3', p.stream, p.currentMatch + 1, p.matches.length)
        : trans.__('%1: no match', p.stream)
    );
    this._count.textContent = parts.join('  ');
  }

  private async _download(): Promise<void> {
    for (const pane of this._visible()) {
      const text = await pane.wholeText();
      const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = `${this.runId}-${pane.stream}.log`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
    }
  }

  private _mode: HTMLSelectElement;
  private _follow: HTMLInputElement;
  private _search: HTMLInputElement;
  private _searchTimer = 0;
  private _count: HTMLSpanElement;
  private _split: SplitPanel;
}
