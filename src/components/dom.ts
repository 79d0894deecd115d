/** Small DOM builders shared by the panels that render without React. */

/** A new element with an optional class name and text. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

/**
 * Make `parent`'s children `next`, keeping each current child that equals its
 * replacement. A repaint then leaves an unchanged row's nodes in place, so a
 * click whose press and release straddle it still reaches its button (with a
 * replaced node the click goes to the parent and its action is lost).
 */
export function replaceChanged(parent: HTMLElement, next: Element[]): void {
  const current = Array.from(parent.children);
  next.forEach((node, i) => {
    const old = current[i];
    if (!old) {
      parent.appendChild(node);
    } else if (!sameNode(old, node)) {
      parent.replaceChild(node, old);
    }
  });
  current.slice(next.length).forEach(node => node.remove());
}

/** Equal, including what attributes do not show: a box the user ticked. */
function sameNode(a: Element, b: Element): boolean {
  if (!a.isEqualNode(b)) {
    return false;
  }
  const boxes = (n: Element) => Array.from(n.querySelectorAll('input')).map(i => i.checked);
  return boxes(a).join() === boxes(b).join();
}
