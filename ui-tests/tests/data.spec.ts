/**
 * Data in a real lab with the local backend: the Data tab, opened from the
 * submit sidebar on the digits example, lists its dataset `digits-csv` with
 * the current version; Stage shows the staging's progress until it is done and
 * the version staged; a run submitted afterwards shows that data version in
 * its detail view, and the Data tab lists the run under the version.
 */
import { expect, test } from '@jupyterlab/galata';

import { openSidebarOnDigits, SIDEBAR, trainAndOpenDetail } from './digits';

const DATASET = 'digits-csv';

test.use({ autoGoto: true });

test('see the dataset, stage it, find its version on a run, free it', async ({ page, request }) => {
  test.setTimeout(240_000);
  await openSidebarOnDigits(page);
  await page.locator(`${SIDEBAR} .jp-hpcml-OpenData`).click();

  // The tab: the dataset with where it comes from and where the job sees it.
  const panel = page.locator('.jp-hpcml-Data');
  await expect(panel.locator('.jp-hpcml-Data-project')).toHaveText('digits');
  const dataset = panel.locator(`.jp-hpcml-Dataset[data-dataset="${DATASET}"]`);
  await expect(dataset.locator('.jp-hpcml-Dataset-name')).toHaveText(DATASET, { timeout: 60_000 });
  await expect(dataset).toContainText('HPCML_DATA_DIGITS_CSV');
  await expect(dataset).toContainText('data/digits-csv');
  const current = dataset.locator('.jp-hpcml-DataVersion[data-current="true"]');
  await expect(current).toHaveCount(1);
  const digest = (await current.getAttribute('data-digest')) ?? '';
  expect(digest).toMatch(/^[0-9a-f]{64}$/);
  await expect(current.locator('code')).toHaveText(digest.slice(0, 12));
  const overview = await (await request.get(`hpcml/api/data?project=digits`)).json();
  const [version] = overview.datasets[0].versions;
  await expect(current.locator('td').nth(2)).toHaveText(String(version.files));

  // Stage: a progress line while it runs, what was staged once done, the version staged.
  await dataset.getByRole('button', { name: `Stage ${DATASET}` }).click();
  const staging = panel.locator(`[data-staging-of="${DATASET}"] .jp-hpcml-Staging`);
  await expect(staging).toBeVisible();
  await expect(staging).toHaveAttribute('data-state', 'done', { timeout: 60_000 });
  await expect(staging).toContainText(`Staged ${DATASET} (${digest.slice(0, 12)})`);
  await expect(current).toHaveAttribute('data-staged', 'true');
  await expect(current.locator('.jp-hpcml-DataBadge[data-badge="staged"]')).toBeVisible();
  await expect(current.locator('.jp-hpcml-DataVersion-where')).toContainText(digest);

  // A run afterwards: its detail shows the data version it read (nothing sent again).
  const runName = `ui-data-${Date.now().toString(36)}`;
  await trainAndOpenDetail(page, runName);
  const detail = page.locator('.jp-hpcml-Detail');
  const row = detail.locator(`.jp-hpcml-RunData-row[data-dataset="${DATASET}"]`);
  await expect(row).toHaveAttribute('data-digest', digest, { timeout: 30_000 });
  await expect(row).toContainText(digest.slice(0, 12));
  await expect(row).toContainText('nothing (already there)');

  // Back in the Data tab: the run is listed under the version, and opens from there.
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('hpcml:open-data');
  });
  const link = current.locator('.jp-hpcml-DataVersion-runs .jp-hpcml-Link', { hasText: runName });
  await expect(link).toBeVisible({ timeout: 30_000 });
  await expect(link).toHaveAttribute('data-state', 'FINISHED');

  // Free it (after a confirmation): no longer staged; the run still lists it.
  await current.getByRole('button', { name: `Free version ${digest.slice(0, 12)}` }).click();
  await page.locator('.jp-Dialog').getByRole('button', { name: 'Free' }).click();
  await expect(current).toHaveAttribute('data-staged', 'false', { timeout: 30_000 });
  await expect(link).toBeVisible();

  // Reloaded, the lab restores the Data tab on the same project.
  // Galata's ready check waits for a Launcher, which a restored layout may not show.
  await page.reload({ waitForIsReady: false });
  await expect(page.locator('.jp-hpcml-Data .jp-hpcml-Data-project')).toHaveText('digits', {
    timeout: 30_000
  });
});
