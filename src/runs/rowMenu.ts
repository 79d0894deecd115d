/** The "⋯" menu of one row: the row action commands with that run as argument. */
import { Menu } from '@lumino/widgets';

import { CommandIDs } from '../commands';
import { ROW_MENU } from './actions';

/**
 * Open the menu at (x, y); `onClose` runs when it closes (the panel gives the
 * row its focus back).
 */
export function openRowMenu(
  commands: Menu.IOptions['commands'],
  runId: string,
  x: number,
  y: number,
  onClose: () => void
): void {
  const menu = new Menu({ commands });
  menu.addClass('jp-hpcml-RunMenu');
  for (const command of ROW_MENU) {
    if (command === null) {
      menu.addItem({ type: 'separator' });
    } else if (command === CommandIDs.openCharts) {
      menu.addItem({ command, args: { runIds: [runId] } });
    } else {
      menu.addItem({ command, args: { runId } });
    }
  }
  menu.aboutToClose.connect(() => {
    onClose();
    // Dispose after the triggered command has run.
    requestAnimationFrame(() => menu.dispose());
  });
  menu.open(x, y);
}
