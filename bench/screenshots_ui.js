/**
 * Screenshots of the runs tab, the log viewer and the charts tab, light and
 * dark, from a running lab (started as in ui-tests, with a few runs in it).
 *
 *   HPCML_UI_PORT=8899 node bench/screenshots_ui.js
 */
const path = require('path');
const { chromium } = require(path.join(__dirname, '..', 'ui-tests', 'node_modules', 'playwright-core'));

const port = process.env.HPCML_UI_PORT || '8888';
const base = `http://localhost:${port}`;
const out = path.join(__dirname, '..', 'docs', 'screenshots');

async function api(page, method, p, body) {
  const r = await page.request.fetch(`${base}/hpcml/api/${p}`, { method, data: body });
  return r.json();
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.HPCML_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox']
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  await page.goto(`${base}/lab?reset`);
  await page.waitForSelector('#jupyterlab-splash', { state: 'detached', timeout: 120000 });
  // The "news" question would cover the picture.
  await page.locator('.jp-Notification-Toast-Close').first().click({ timeout: 3000 }).catch(() => undefined);
  const runs = (await api(page, 'GET', 'runs?state=FINISHED&limit=3')).runs;
  if (runs.length < 2) {
    throw new Error('needs at least two FINISHED runs in the store');
  }
  const exec = (id, args) =>
    page.evaluate(async ([i, a]) => {
      await window.jupyterapp.commands.execute(i, a);
    }, [id, args]);
  await page.evaluate(() => window.jupyterapp.shell.collapseLeft());
  for (const theme of ['light', 'dark']) {
    await exec('apputils:change-theme', { theme: theme === 'dark' ? 'JupyterLab Dark' : 'JupyterLab Light' });
    await page.waitForTimeout(1500);
    await exec('hpcml:open-runs', {});
    await page.waitForSelector('.jp-hpcml-Runs-row[data-hpcml-run-id]');
    await page.waitForTimeout(1000);
    await page.screenshot({ path: path.join(out, `runs-${theme}.png`) });

    await exec('hpcml:open-logs', { runId: runs[0].id });
    await page.waitForSelector('.jp-hpcml-LogPane-line');
    await page.fill('.jp-hpcml-LogViewer-search', 'val_accuracy');
    await page.waitForTimeout(800);
    await page.screenshot({ path: path.join(out, `logs-${theme}.png`) });

    await exec('hpcml:open-charts', { runIds: runs.map(r => r.id) });
    await page.waitForSelector('.jp-hpcml-Charts canvas');
    await page.waitForTimeout(1500);
    // Hover a chart so the legend shows values.
    const over = page.locator('.jp-hpcml-Charts .u-over').first();
    const box = await over.boundingBox();
    if (box) {
      await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.5);
    }
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(out, `charts-${theme}.png`) });
    await exec('application:close-all', {});
  }
  await exec('apputils:change-theme', { theme: 'JupyterLab Light' });
  await browser.close();
})().catch(e => {
  console.error(e);
  process.exit(1);
});
