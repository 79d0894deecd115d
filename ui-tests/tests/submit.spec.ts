/**
 * The submit sidebar in a real lab: example project, entry point, parameter
 * edit, submission to the local backend, inline errors, re-run pre-fill.
 * Independent of the runs tab's DOM: run states come from the sidebar's own
 * status line and the REST API.
 */
import { expect, test } from '@jupyterlab/galata';
import type { APIRequestContext, Page } from '@playwright/test';
import * as path from 'path';

import { openSidebarOnDigits, SIDEBAR } from './digits';

const SHOTS = path.resolve(__dirname, '..', '..', 'docs', 'screenshots');

test.use({ autoGoto: true });

async function runsWith(request: APIRequestContext, name: string): Promise<any> {
  const answer = await request.get(`/hpcml/api/runs?q=${encodeURIComponent(name)}`);
  expect(answer.ok()).toBeTruthy();
  const { runs } = await answer.json();
  return runs.find((r: any) => r.name === name);
}

/** The top of the sidebar (project, entry point, parameters), as a user first sees it. */
async function shootSidebar(page: Page, name: string): Promise<void> {
  await page.locator(SIDEBAR).evaluate(node => node.scrollTo(0, 0));
  const box = await page.locator(SIDEBAR).boundingBox();
  if (!box) {
    throw new Error('sidebar not visible');
  }
  await page.screenshot({
    path: path.join(SHOTS, name),
    clip: { x: 0, y: box.y, width: box.x + box.width, height: Math.min(box.height, 720) }
  });
}

function field(page: Page, param: string) {
  return page.locator(`${SIDEBAR} .jp-hpcml-Field[data-path="${param}"]`);
}

test('submit train with epochs=2 and see it reach FINISHED', async ({ page, request }) => {
  test.setTimeout(180_000);
  await openSidebarOnDigits(page);
  await page.selectOption('#hpcml-entry-point', 'train');
  const epochs = page.locator('[id="hpcml-param--epochs"]');
  await expect(epochs).toHaveValue('10');
  await epochs.fill('2');
  // Modified from the MLproject default: the default is shown, with a reset button.
  await expect(field(page, 'epochs').locator('.jp-hpcml-Field-default')).toHaveText('Default: 10');
  await expect(field(page, 'epochs').getByRole('button', { name: 'Reset epochs (int) to default' })).toBeVisible();

  await page.setViewportSize({ width: 1024, height: 1000 });
  const runName = `ui-train-${Date.now()}`;
  await page.fill('#hpcml-run-name', runName);
  await shootSidebar(page, 'sidebar-light.png');

  await page.locator(`${SIDEBAR} .jp-hpcml-Submit`).click();
  const state = page.locator(`${SIDEBAR} .jp-hpcml-LastRun .jp-hpcml-State`);
  await expect(state).toHaveAttribute('data-state', 'FINISHED', { timeout: 150_000 });

  const run = await runsWith(request, runName);
  expect(run.entry_point).toBe('train');
  expect(run.parameters.epochs).toBe('2');
  expect(run.state).toBe('FINISHED');

  await page.theme.setDarkTheme();
  await shootSidebar(page, 'sidebar-dark.png');
  await page.theme.setLightTheme();
});

test('a malformed value shows its error next to the field', async ({ page }) => {
  await openSidebarOnDigits(page);
  await page.selectOption('#hpcml-entry-point', 'train');

  // Client check, worded as the server words it.
  await page.locator('[id="hpcml-param--epochs"]').fill('2.5');
  await expect(field(page, 'epochs').locator('.jp-hpcml-Field-error')).toHaveText(
    "parameter 'epochs' must be an int, got 2.5"
  );
  // Reset to default clears it.
  await field(page, 'epochs').getByRole('button', { name: 'Reset epochs (int) to default' }).click();
  await expect(page.locator('[id="hpcml-param--epochs"]')).toHaveValue('10');
  await expect(field(page, 'epochs').locator('.jp-hpcml-Field-error')).toHaveCount(0);

  // A resource the schema refuses, live.
  await page.selectOption('#hpcml-backend-config', 'backend-configs/local.yaml');
  const runtime = page.locator('[id="hpcml-config--Resources--Runtime"]');
  await expect(runtime).toHaveValue('30m');
  await runtime.fill('soon');
  await expect(field(page, 'Resources.Runtime').locator('.jp-hpcml-Field-error')).toContainText(
    "must be a duration such as 1h30m"
  );
  await runtime.fill('45m');

  // Problems the server answers land next to their fields (problems[].key).
  await page.route(url => url.pathname.endsWith('/hpcml/api/runs'), async (route, req) => {
    if (req.method() !== 'POST') {
      return route.fallback();
    }
    await route.fulfill({
      status: 400,
      contentType: 'application/json',
      body: JSON.stringify({
        message: 'invalid',
        problems: [
          { message: "parameter 'hidden' is out of range (server)", key: 'parameters.hidden', file: null, line: null },
          { message: 'must be an integer ≥ 1, got 0', key: 'Resources.Nodes', file: 'local.yaml', line: 4 },
          { message: 'the server is unhappy', key: null, file: null, line: null }
        ]
      })
    });
  });
  await page.locator(`${SIDEBAR} .jp-hpcml-Submit`).click();
  await expect(field(page, 'hidden').locator('.jp-hpcml-Field-error')).toHaveText(
    "parameter 'hidden' is out of range (server)"
  );
  await expect(field(page, 'Resources.Nodes').locator('.jp-hpcml-Field-error')).toHaveText(
    'must be an integer ≥ 1, got 0'
  );
  await expect(page.locator(`${SIDEBAR} .jp-hpcml-General`)).toHaveText('the server is unhappy');
  // Editing the field clears its server error.
  await page.locator('[id="hpcml-param--hidden"]').fill('32');
  await expect(field(page, 'hidden').locator('.jp-hpcml-Field-error')).toHaveCount(0);
});

test('open-submit with a runId pre-fills the form (re-run)', async ({ page, request }) => {
  const answer = await request.post('/hpcml/api/runs', {
    data: {
      project: 'digits',
      entry_point: 'train',
      parameters: { epochs: 3, learning_rate: 0.05 },
      backend_config: 'backend-configs/local.yaml',
      overrides: { Resources: { Runtime: '20m' } },
      run_name: `ui-source-${Date.now()}`
    }
  });
  expect(answer.status()).toBe(201);
  const source = await answer.json();

  await page.evaluate(id => {
    void window.jupyterapp.commands.execute('hpcml:open-submit', { runId: id });
  }, source.id);
  await expect(page.locator(`${SIDEBAR} .jp-hpcml-Note`).filter({ hasText: 'Re-run of' })).toBeVisible();
  await expect(page.locator('#hpcml-entry-point')).toHaveValue('train');
  await expect(page.locator('[id="hpcml-param--epochs"]')).toHaveValue('3');
  await expect(page.locator('[id="hpcml-param--learning_rate"]')).toHaveValue('0.05');
  await expect(page.locator('#hpcml-backend-config')).toHaveValue('backend-configs/local.yaml');
  await expect(page.locator('[id="hpcml-config--Resources--Runtime"]')).toHaveValue('20m');

  // Change a parameter and re-run: same code snapshot, new value.
  await page.locator('[id="hpcml-param--epochs"]').fill('1');
  const runName = `ui-rerun-${Date.now()}`;
  await page.fill('#hpcml-run-name', runName);
  await page.locator(`${SIDEBAR} .jp-hpcml-Submit`).click();
  await expect(page.locator(`${SIDEBAR} .jp-hpcml-LastRun`)).toContainText(runName, { timeout: 60_000 });
  const rerun = await runsWith(request, runName);
  expect(rerun.rerun_of).toBe(source.id);
  expect(rerun.parameters.epochs).toBe('1');
  expect(rerun.parameters.learning_rate).toBe('0.05');
});
