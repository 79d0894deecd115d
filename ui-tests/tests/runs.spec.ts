/**
 * Runs tab, log viewer, charts and cancel, against the real server extension
 * and the local backend. Runs are submitted through the REST API (the page's
 * own session: no token, no XSRF in the test server).
 */
import { expect, test } from '@jupyterlab/galata';
import type { APIRequestContext, Page } from '@playwright/test';

const API = 'hpcml/api';

interface IRun {
  id: string;
  name: string;
  state: string;
}

async function submit(request: APIRequestContext, body: Record<string, unknown>): Promise<IRun> {
  const response = await request.post(`${API}/runs`, { data: body });
  expect(response.status(), await response.text()).toBe(201);
  return (await response.json()) as IRun;
}

async function waitForState(request: APIRequestContext, id: string, states: string[], timeoutMs = 120_000): Promise<IRun> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = (await (await request.get(`${API}/runs/${id}`)).json()) as IRun;
    if (states.includes(run.state) || Date.now() > deadline) {
      return run;
    }
    await new Promise(resolve => setTimeout(resolve, 500));
  }
}

async function openRunsTab(page: Page): Promise<void> {
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('hpcml:open-runs');
  });
  await expect(page.locator('.jp-hpcml-Runs')).toBeVisible();
}

function rowOf(page: Page, id: string) {
  return page.locator(`.jp-hpcml-Runs-row[data-hpcml-run-id="${id}"]`);
}

test.describe('runs tab', () => {
  test.setTimeout(300_000);

  test('a run reaches FINISHED live; its log and its chart', async ({ page }) => {
    // Unique: a reused server keeps the runs of earlier test runs.
    const name = `ui-train-${Date.now().toString(36)}`;
    const run = await submit(page.request, {
      project: 'digits',
      entry_point: 'train',
      parameters: { epochs: 4, learning_rate: 0.05 },
      run_name: name
    });
    await openRunsTab(page);
    const row = rowOf(page, run.id);
    await expect(row).toBeVisible();
    // Live update, no reload: the badge moves on to FINISHED.
    await expect(row.locator('.jp-hpcml-badge')).toHaveText('FINISHED', { timeout: 180_000 });
    await expect(row).toContainText(name);
    await expect(row).toContainText('train');

    // Sort by name and filter by text keep the row reachable.
    await page.getByRole('columnheader', { name: 'Name' }).getByRole('button').click();
    await expect(page.locator('[role="columnheader"][aria-sort="ascending"]')).toContainText('Name');
    await page.getByLabel('Filter runs by text').fill(name);
    await expect(page.locator('.jp-hpcml-Runs-row')).toHaveCount(1);
    await expect(row).toBeVisible();

    // Log viewer: a line the program printed, searchable.
    await row.getByRole('button', { name: /^Open logs/ }).click();
    const viewer = page.locator('.jp-hpcml-LogViewer');
    await expect(viewer.locator('.jp-hpcml-LogPane-line', { hasText: /epoch\s+1\/4/ })).toBeVisible();
    await viewer.getByLabel('Search the log').fill('val_accuracy');
    await expect(viewer.locator('mark').first()).toBeVisible();
    await expect(viewer.locator('.jp-hpcml-LogViewer-count')).toContainText('of');

    // Charts: canvases drawn, the run in the legend, every metric charted.
    await page.evaluate(async id => {
      await window.jupyterapp.commands.execute('hpcml:open-charts', { runIds: [id] });
    }, run.id);
    const charts = page.locator('.jp-hpcml-Charts');
    await expect(charts.locator('.u-title', { hasText: 'val_accuracy' })).toBeVisible({ timeout: 30_000 });
    await expect(charts.locator('canvas').first()).toBeVisible();
    await expect(charts.locator('.u-legend').first()).toContainText(name);
    await expect(charts.locator('.jp-hpcml-ParamTable')).toContainText('learning_rate');

    // Run detail: parameters, command, state history.
    await page.evaluate(async id => {
      await window.jupyterapp.commands.execute('hpcml:open-run', { runId: id });
    }, run.id);
    const detail = page.locator('.jp-hpcml-Detail');
    await expect(detail).toContainText('python train.py');
    await expect(detail).toContainText('State history');
    await expect(detail.locator('.jp-hpcml-badge', { hasText: 'RUNNING' })).toBeVisible();
  });

  test('cancel a long run after confirming', async ({ page }) => {
    const run = await submit(page.request, {
      project: 'digits',
      entry_point: 'train',
      parameters: { epochs: 200, epoch_delay: 5 },
      run_name: 'ui-long'
    });
    // A run that ends at once (no such model), to watch its row across repaints.
    const quick = await submit(page.request, {
      project: 'digits',
      entry_point: 'evaluate',
      parameters: { model_uri: 'runs:/0123456789abcdef/model' },
      run_name: `ui-ends-${Date.now().toString(36)}`
    });
    await waitForState(page.request, quick.id, ['FAILED', 'FINISHED']);
    await waitForState(page.request, run.id, ['RUNNING']);
    await openRunsTab(page);
    const row = rowOf(page, run.id);
    await expect(row.locator('.jp-hpcml-badge')).toHaveText('RUNNING', { timeout: 60_000 });

    // Each poll repaints (the running row's duration ticks) but leaves an ended row's
    // nodes in place: a click whose press and release straddle a poll still lands.
    const ended = rowOf(page, quick.id);
    await expect(ended.locator('.jp-hpcml-badge')).toHaveText(/^(FAILED|FINISHED)$/);
    const kept = await ended.elementHandle();
    await page.evaluate(() => {
      const rows = document.querySelector('.jp-hpcml-Runs-row')?.parentElement;
      const w = window as unknown as { hpcmlRepaints: number };
      w.hpcmlRepaints = 0;
      new MutationObserver(() => (w.hpcmlRepaints += 1)).observe(rows!, { childList: true });
    });
    await page.waitForFunction(
      () => (window as unknown as { hpcmlRepaints: number }).hpcmlRepaints >= 2,
      undefined,
      { timeout: 30_000 }
    );
    expect(await kept!.evaluate(node => node.isConnected)).toBe(true);

    await row.getByRole('button', { name: /^More actions/ }).click();
    await page.locator('.lm-Menu .lm-Menu-itemLabel', { hasText: 'Cancel Run…' }).click();
    const dialog = page.locator('.jp-Dialog');
    await expect(dialog).toContainText('ui-long');
    await dialog.getByRole('button', { name: 'Cancel run' }).click();
    await expect(row.locator('.jp-hpcml-badge')).toHaveText('CANCELLED', { timeout: 60_000 });
  });
});

