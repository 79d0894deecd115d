/**
 * A widget that draws its content itself (the log panes, the runs table): it
 * repaints when shown, and at most once per animation frame however many
 * changes (scroll events, model updates, resizes) ask for it in between.
 */
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

export abstract class PaintedWidget extends Widget {
  /** Draw the content now (a hidden widget may skip it: it repaints when shown). */
  protected abstract paint(): void;

  /** Paint on the next frame unless a paint is already pending. */
  protected schedulePaint(): void {
    if (!this._frame) {
      this._frame = requestAnimationFrame(() => {
        this._frame = 0;
        this.paint();
      });
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.paint();
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this.schedulePaint();
  }

  private _frame = 0;
}
