/**
 * Sweeps in a real lab with the local backend: build a sweep in the sidebar
 * (a list for one parameter, a range for another), see the run count, submit,
 * find the sweep's group in the runs tab, expand it, open the comparison.
 */
import { expect, test } from '@jupyterlab/galata';
import type { APIRequestContext } from '@playwright/test';

import { API, openSidebarOnDigits, SIDEBAR } from './digits';

test.use({ autoGoto: true });

async function waitForSweep(
  request: APIRequestContext,
  id: string,
  timeoutMs: number
): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const sweep = await (await request.get(`${API}/sweeps/${id}`)).json();
    if (['FINISHED', 'FAILED', 'CANCELLED'].includes(sweep.state) || Date.now() > deadline) {
      return sweep;
    }
    await new Promise(resolve => setTimeout(resolve, 1000));
  }
}

test('build a sweep in the sidebar, submit it, expand its group and compare', async ({ page }) => {
  test.setTimeout(300_000);
  await openSidebarOnDigits(page);
  await page.selectOption('#hpcml-entry-point', 'train');
  await page.locator('[id="hpcml-param--epochs"]').fill('2');

  // learning_rate: a list, starting from its current value.
  await page.getByRole('button', { name: 'Sweep learning_rate' }).click();
  const values = page.locator('[id="hpcml-param--learning_rate__list"]');
  await expect(values).toHaveValue('0.01');
  await values.fill('0.05, 0.01');
  // seed: a range.
  await page.getByRole('button', { name: 'Sweep seed' }).click();
  await page.selectOption('[id="hpcml-param--seed"]', 'range');
  const seedField = page.locator(`${SIDEBAR} .jp-hpcml-Field[data-path="seed"]`);
  await expect(seedField.locator('.jp-hpcml-Field-error')).toContainText('start and the stop');
  await page.locator('[id="hpcml-param--seed__start"]').fill('0');
  await page.locator('[id="hpcml-param--seed__stop"]').fill('2');
  await expect(seedField.locator('.jp-hpcml-Field-error')).toHaveCount(0);
  await page.locator('#hpcml-sweep-max-parallel').fill('2');

  // The server's count: 2 × 2 points.
  await expect(page.locator(`${SIDEBAR} .jp-hpcml-SweepRuns`)).toHaveText('4 runs');
  const submit = page.locator(`${SIDEBAR} .jp-hpcml-Submit`);
  await expect(submit).toHaveText('Submit sweep (4 runs)');

  // A bad value is named at its parameter (the preview's 400).
  await values.fill('0.05, fast');
  const lrField = page.locator(`${SIDEBAR} .jp-hpcml-Field[data-path="learning_rate"]`);
  await expect(lrField.locator('.jp-hpcml-Field-error')).toContainText('fast');
  // -1 passes the type check but train.py refuses it: two children will fail.
  await values.fill('0.05, -1');
  await expect(lrField.locator('.jp-hpcml-Field-error')).toHaveCount(0);
  await expect(submit).toHaveText('Submit sweep (4 runs)');

  const name = `ui-sweep-${Date.now().toString(36)}`;
  await page.fill('#hpcml-run-name', name);
  await submit.click();
  const last = page.locator(`${SIDEBAR} .jp-hpcml-LastSweep`);
  await expect(last).toContainText(name, { timeout: 60_000 });
  const sweepId = (await last.getAttribute('data-sweep-id')) ?? '';
  expect(sweepId).toMatch(/^s[0-9a-f]+$/);

  // The runs tab: one group row for the sweep, expanded to its four children.
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('hpcml:open-runs');
  });
  const group = page.locator(`.jp-hpcml-Runs-sweep[data-hpcml-sweep-id="${sweepId}"]`);
  await expect(group).toBeVisible();
  await expect(group.locator('.jp-hpcml-SweepName')).toHaveText(name);
  await group.getByRole('button', { name: `Expand ${name}` }).click();
  const children = page.locator(`.jp-hpcml-Runs-child[data-hpcml-parent-sweep="${sweepId}"]`);
  await expect(children).toHaveCount(4);
  await expect(children.first().locator('.jp-hpcml-SweepPoint')).toHaveText(
    /learning_rate=\S+ seed=\d/
  );

  const sweep = await waitForSweep(page.request, sweepId, 240_000);
  expect(sweep.state).toBe('FAILED');
  expect(sweep.children).toHaveLength(4);
  // Counts by state as badges: two finished, two failed.
  await expect(group.locator('.jp-hpcml-SweepCount[data-state="FINISHED"]')).toHaveText('2', {
    timeout: 30_000
  });
  await expect(group.locator('.jp-hpcml-SweepCount[data-state="FAILED"]')).toHaveText('2');

  // The comparison: a scatter per swept parameter, the best child marked in each.
  await group.getByRole('button', { name: `Compare the children: ${name}` }).click();
  const comparison = page.locator('.jp-hpcml-Comparison');
  await expect(comparison.locator('.jp-hpcml-Comparison-plot')).toHaveCount(2, { timeout: 30_000 });
  await expect(comparison.locator('.jp-hpcml-Comparison-best')).toHaveCount(2);
  await expect(comparison.locator('.jp-hpcml-Comparison-bestLine')).toContainText('Best:');
  await comparison.locator('.jp-hpcml-Comparison-mode').selectOption('min');
  await expect(comparison.locator('.jp-hpcml-Comparison-best')).toHaveCount(2);

  // One click re-runs the failed children: two new children in the same group.
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('hpcml:open-runs');
  });
  await group.getByRole('button', { name: `Re-run the failed children: ${name}` }).click();
  await expect(children).toHaveCount(6, { timeout: 60_000 });
  const again = await waitForSweep(page.request, sweepId, 120_000);
  expect(again.children).toHaveLength(6);
  // The counts go by each point's latest attempt: the re-runs (which fail again) replace
  // the first attempts, which stay among the children, superseded.
  const superseded = again.children.filter((c: { superseded_by?: string }) => c.superseded_by);
  expect(superseded).toHaveLength(2);
  await expect(group.locator('.jp-hpcml-SweepCount[data-state="FAILED"]')).toHaveText('2', {
    timeout: 30_000
  });
});
