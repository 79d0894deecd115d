/**
 * Archive, show archived, unarchive and delete a run from the runs tab, against
 * the real server extension and the local backend.
 */
import { expect, test } from '@jupyterlab/galata';
import type { APIRequestContext, Page } from '@playwright/test';

const API = 'hpcml/api';

interface IRun {
  id: string;
  name: string;
  state: string;
  mlflow_run_id: string;
}

async function finishedRun(request: APIRequestContext, name: string): Promise<IRun> {
  const response = await request.post(`${API}/runs`, {
    data: { project: 'digits', entry_point: 'train', parameters: { epochs: 1 }, run_name: name }
  });
  expect(response.status(), await response.text()).toBe(201);
  const { id } = (await response.json()) as IRun;
  const deadline = Date.now() + 180_000;
  for (;;) {
    const run = (await (await request.get(`${API}/runs/${id}`)).json()) as IRun;
    if (['FINISHED', 'FAILED', 'CANCELLED', 'TIMEOUT'].includes(run.state) || Date.now() > deadline) {
      expect(run.state).toBe('FINISHED');
      return run;
    }
    await new Promise(resolve => setTimeout(resolve, 500));
  }
}

async function rowMenu(page: Page, id: string, item: string): Promise<void> {
  const row = page.locator(`.jp-hpcml-Runs-row[data-hpcml-run-id="${id}"]`);
  const entry = page.locator('.lm-Menu').getByRole('menuitem', { name: item, exact: true });
  // The table repaints on every poll: a click that lands during a repaint opens nothing.
  await expect(async () => {
    if (!(await entry.isVisible())) {
      await row.getByRole('button', { name: /^More actions/ }).click();
    }
    await expect(entry).toBeVisible({ timeout: 2_000 });
  }).toPass({ timeout: 30_000 });
  await entry.click();
}

test.describe('delete and archive', () => {
  test.setTimeout(300_000);

  test('archive hides a run, "Show archived" shows it, unarchive and delete', async ({ page }) => {
    const name = `ui-cleanup-${Date.now().toString(36)}`;
    const run = await finishedRun(page.request, name);
    await page.evaluate(async () => {
      await window.jupyterapp.commands.execute('hpcml:open-runs');
    });
    const row = page.locator(`.jp-hpcml-Runs-row[data-hpcml-run-id="${run.id}"]`);
    await expect(row).toBeVisible();

    await rowMenu(page, run.id, 'Archive Run');
    await expect(row).toHaveCount(0);
    const toggle = page.getByLabel('Show archived');
    await toggle.check();
    await expect(row).toBeVisible();
    await expect(row.locator('.jp-hpcml-archivedMark')).toHaveText('archived');

    await rowMenu(page, run.id, 'Unarchive Run');
    await expect(row.locator('.jp-hpcml-archivedMark')).toHaveCount(0);
    await toggle.uncheck();
    await expect(row).toBeVisible();

    // Right-click: the same actions; deleting asks first, with the MLflow run as an option.
    await row.click({ button: 'right' });
    // Let the table repaint under the open menu (it does on every poll, 2 s by default): the
    // action must still know which row was right-clicked.
    await page.waitForTimeout(2500);
    await page.locator('.lm-Menu').getByRole('menuitem', { name: 'Delete Run…', exact: true }).click();
    const dialog = page.locator('.jp-Dialog');
    await expect(dialog).toContainText(name);
    await dialog.getByLabel('Also delete the MLflow run').check();
    await dialog.getByRole('button', { name: 'Delete run' }).click();
    await expect(row).toHaveCount(0);
    const gone = await page.request.get(`${API}/runs/${run.id}`);
    expect(gone.status()).toBe(404);
  });
});
