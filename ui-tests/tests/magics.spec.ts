/**
 * The notebook magics in a real lab: `%hpc_submit` in a notebook cell shows the
 * ipywidgets live view, which updates itself (kernel idle) until FINISHED; the
 * `loadMagicsInKernels` setting makes `%hpc_*` available in a new kernel
 * without `%load_ext`.
 *
 * Notebooks are created in Galata's per-test folder (next to `digits`, deleted
 * after the test); the kernel inherits the server's isolated run store.
 */
import { expect, test } from '@jupyterlab/galata';

test.use({ autoGoto: true });

test('%hpc_submit shows a live run view that reaches FINISHED', async ({ page }) => {
  test.setTimeout(90_000);
  const name = `ui-magic-${Date.now().toString(36)}`;
  await page.notebook.createNew('magics.ipynb');
  await page.notebook.setCell(0, 'code', '%load_ext jupyterlab_hpcml');
  await page.notebook.addCell('code', `%hpc_submit ../digits -e train -P epochs=2 --run-name ${name}`);
  await page.notebook.runCell(0, { inplace: true });
  // Returns at once (no --wait): the view updates itself while the kernel is idle.
  await page.notebook.runCell(1, { inplace: true });

  const output = (await page.notebook.getCellOutputLocator(1))!;
  const view = output.locator('.hpcml-run-view');
  // The ipywidgets view (not the text/html fallback): live until the run ends.
  await expect(view).toBeVisible({ timeout: 15_000 });
  await expect(view).toContainText(name);
  await expect(view.locator('.hpcml-badge.hpcml-state-finished')).toHaveText('FINISHED', { timeout: 60_000 });
  await expect(view.getByRole('button', { name: 'Cancel' })).toBeHidden();
  await expect(view.locator('.hpcml-log')).toContainText('epoch   2/2');
  await expect(view.locator('.hpcml-metrics')).toContainText('val_accuracy');

  // Same store as the server: the REST API knows the run.
  const answer = await page.request.get(`hpcml/api/runs?q=${name}`);
  const { runs } = await answer.json();
  expect(runs.map((r: any) => [r.name, r.entry_point, r.state])).toEqual([[name, 'train', 'FINISHED']]);
});

test('loadMagicsInKernels loads the magics in a new kernel', async ({ page }) => {
  test.setTimeout(60_000);
  // Settings are mocked in memory by Galata: this does not touch the user's settings.
  await page.evaluate(async () => {
    const registry = await window.galata.getPlugin('@jupyterlab/apputils-extension:settings');
    await registry!.set('jupyterlab-hpcml:plugin', 'loadMagicsInKernels', true);
  });
  await page.notebook.createNew('autoload.ipynb');
  await page.notebook.setCell(0, 'code', '%hpc_runs --limit 3');
  await page.notebook.runCell(0, { inplace: true });

  const output = (await page.notebook.getCellOutputLocator(0))!;
  // The runs table, or "no runs" when this test runs alone on a fresh server.
  await expect(output.locator('table.hpcml-runs, div:text-is("no runs")')).toHaveCount(1);
  await expect(output).not.toContainText('UsageError');
});
