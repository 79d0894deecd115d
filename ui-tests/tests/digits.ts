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

/**
 * Train digits for one epoch from the sidebar (on its current project), wait
 * until the run FINISHED and open its detail.
 */
export async function trainAndOpenDetail(
  page: IJupyterLabPageFixture,
  runName: string
): Promise<void> {
  await openSidebar(page);
  await page.selectOption('#hpcml-entry-point', 'train');
  await page.locator('[id="hpcml-param--epochs"]').fill('1');
  await page.fill('#hpcml-run-name', runName);
  await page.locator(`${SIDEBAR} .jp-hpcml-Submit`).click();
  const last = page.locator(`${SIDEBAR} .jp-hpcml-LastRun`);
  await expect(last.locator('.jp-hpcml-State')).toHaveAttribute('data-state', 'FINISHED', {
    timeout: 150_000
  });
  await last.getByRole('button', { name: runName }).click();
}
