/**
 * The DOM half of a virtual list: a scroll container, a spacer as tall as every
 * item, and a box holding only the items in view, moved to where they belong.
 * The log panes and the runs table both use it; `visibleWindow` does the maths.
 */
import { IWindow, visibleWindow } from './virtualWindow';

export class VirtualList {
  /**
   * @param scroller - the element that scrolls
   * @param spacer - its child, sized to hold every item
   * @param items - the spacer's child that holds the rendered items
   * @param itemHeight - every item's height in pixels
   * @param overscan - items rendered beyond either edge of the viewport
   */
  constructor(
    readonly scroller: HTMLElement,
    readonly spacer: HTMLElement,
    readonly items: HTMLElement,
    readonly itemHeight: number,
    private _overscan: number
  ) {}

  /**
   * Size the spacer for `count` items and place the items box on the first one
   * to render; returns which items to render.
   *
   * @param inset - pixels of the viewport covered by sticky content (a header)
   */
  layout(count: number, inset = 0): IWindow {
    this.spacer.style.height = `${count * this.itemHeight}px`;
    const view = visibleWindow(
      Math.max(0, this.scroller.scrollTop),
      this.scroller.clientHeight - inset,
      this.itemHeight,
      count,
      this._overscan
    );
    this.items.style.transform = `translateY(${view.offset}px)`;
    return view;
  }

  /** Scroll just enough that item `index` is fully in view. */
  reveal(index: number, inset = 0): void {
    const top = index * this.itemHeight;
    const viewport = this.scroller.clientHeight - inset;
    if (top < this.scroller.scrollTop) {
      this.scroller.scrollTop = top;
    } else if (top + this.itemHeight > this.scroller.scrollTop + viewport) {
      this.scroller.scrollTop = top + this.itemHeight - viewport;
    }
  }
}
