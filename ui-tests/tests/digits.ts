/**
 * What the Galata specs share: the submit sidebar opened on the digits
 * example project (examples/ is the test server's root).
 */
import { expect, galata, IJupyterLabPageFixture } from '@jupyterlab/galata';

/** The submit sidebar. */
export const SIDEBAR = '#jp-hpcml-submit';
/** The server extension's REST API, relative to the lab's base URL. */
export const API = 'hpcml/api';

/** Show the submit sidebar (on whatever project it has). */
export async function openSidebar(page: IJupyterLabPageFixture): Promise<void> {
  await page.sidebar.openTab('jp-hpcml-submit' as galata.SidebarTabId);
}

/** Browse to digits/ and show the submit sidebar once it has read that project. */
export async function openSidebarOnDigits(page: IJupyterLabPageFixture): Promise<void> {
  await page.filebrowser.openDirectory('digits');
  await openSidebar(page);
  // The first MLflow call of a fresh server creates its database: slow on a busy machine.
  await expect(page.locator(`${SIDEBAR} .jp-hpcml-Project-name`)).toHaveText('digits', {
    timeout: 60_000
  });
}
