/**
 * The base of every React dialog body: rendered at once when attached.
 *
 * JupyterLab's Dialog focuses its `focusNodeSelector` when the body's
 * `renderPromise` resolves, which ReactWidget resolves at the browser's next
 * idle moment. That moment can come while someone is already typing in another
 * field, and the focus jumps away mid-word (seen as a lost schedule name).
 * Rendering synchronously makes the focus land before any keystroke.
 */
import { ReactWidget } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { flushSync } from 'react-dom';

export abstract class DialogBody extends ReactWidget {
  protected onUpdateRequest(msg: Message): void {
    flushSync(() => super.onUpdateRequest(msg));
    this.renderPromise = Promise.resolve();
  }
}
