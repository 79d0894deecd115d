/**
 * A main-area panel (a labelled region) over a RefreshingModel: the model
 * refreshes on its timer only while the panel is shown, and goes with it.
 */
import { ReactWidget } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';

import { RefreshingModel } from './refreshingModel';

export abstract class RefreshingPanel<M extends RefreshingModel> extends ReactWidget {
  /**
   * @param className - the panel's CSS class
   * @param label - what assistive technology calls the region
   */
  constructor(
    readonly model: M,
    className: string,
    label: string
  ) {
    super();
    this.addClass('jp-hpcml-TabPanel');
    this.addClass(className);
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', label);
  }

  dispose(): void {
    if (!this.isDisposed) {
      this.model.dispose();
    }
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.model.start();
  }

  // Attached already visible (a restored layout) means no show message.
  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this.model.start();
    }
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.model.stop();
  }

  protected onBeforeDetach(msg: Message): void {
    this.model.stop();
    super.onBeforeDetach(msg);
  }
}
