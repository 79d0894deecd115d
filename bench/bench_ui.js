/**
 * Browser half of bench_ui.py: measures in headless Chromium the runs tab
 * with 10,000 runs and the chart of a 100,000-point metric. Prints figures.
 */
const path = require('path');
const { chromium } = require(path.join(__dirname, '..', 'ui-tests', 'node_modules', 'playwright-core'));

const base = process.env.BENCH_URL;
const token = process.env.BENCH_TOKEN;
const runId = process.env.BENCH_RUN;
const total = process.env.BENCH_TOTAL;
const REPEAT = 5;

const median = xs => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = xs => `median ${median(xs).toFixed(0)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)}) over ${xs.length}`;

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.HPCML_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox']
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(`${base}/lab?reset&token=${token}`);
  await page.waitForSelector('#jupyterlab-splash', { state: 'detached', timeout: 180000 });
  await page.waitForFunction(() => window.jupyterapp?.commands.hasCommand('hpcml:open-runs'));

  // 1. Runs tab: command → first rows painted with the total known.
  const open = [];
  const jump = [];
  for (let i = 0; i < REPEAT; i++) {
    const ms = await page.evaluate(async total => {
      const t0 = performance.now();
      await window.jupyterapp.commands.execute('hpcml:open-runs');
      await new Promise((resolve, reject) => {
        const deadline = t0 + 30000;
        const check = () => {
          const status = document.querySelector('.jp-hpcml-Runs-status');
          const rows = document.querySelectorAll('.jp-hpcml-Runs-row[data-hpcml-run-id]');
          if (rows.length > 10 && status && status.textContent.replace(/\D/g, '') === total) {
            resolve();
          } else if (performance.now() > deadline) {
            reject(new Error('runs tab did not render'));
          } else {
            requestAnimationFrame(check);
          }
        };
        check();
      });
      return performance.now() - t0;
    }, total);
    open.push(ms);
    // Jump to the middle: the page there is fetched and painted.
    jump.push(
      await page.evaluate(async () => {
        const scroller = document.querySelector('.jp-hpcml-Runs-scroller');
        const t0 = performance.now();
        scroller.scrollTop = scroller.scrollHeight / 2;
        await new Promise(resolve => {
          const check = () => {
            const rows = [...document.querySelectorAll('.jp-hpcml-Runs-row')];
            const mid = rows.length && Number(rows[0].dataset.position) > 4000;
            if (mid && rows.every(r => r.dataset.hpcmlRunId)) {
              resolve();
            } else {
              requestAnimationFrame(check);
            }
          };
          check();
        });
        return performance.now() - t0;
      })
    );
    const rendered = await page.locator('.jp-hpcml-Runs-row').count();
    if (i === 0) {
      console.log(`runs tab: ${rendered} row elements in the DOM for ${total} runs (virtualised)`);
    }
    await page.evaluate(() => window.jupyterapp.commands.execute('application:close-all'));
    await page.waitForTimeout(300);
  }
  console.log(`runs tab with ${total} runs, command → rows painted: ${fmt(open)}`);
  console.log(`runs tab, jump to the middle → rows there painted: ${fmt(jump)}`);

  // Smooth scrolling: frame times while scrolling through 2,000 rows.
  await page.evaluate(() => window.jupyterapp.commands.execute('hpcml:open-runs'));
  await page.waitForSelector('.jp-hpcml-Runs-row[data-hpcml-run-id]');
  const frames = await page.evaluate(async () => {
    const scroller = document.querySelector('.jp-hpcml-Runs-scroller');
    const times = [];
    let last = performance.now();
    for (let i = 0; i < 120; i++) {
      scroller.scrollTop += 28 * 16;
      await new Promise(r => requestAnimationFrame(r));
      const now = performance.now();
      times.push(now - last);
      last = now;
    }
    times.sort((a, b) => a - b);
    return { p50: times[60], p95: times[Math.floor(times.length * 0.95)] };
  });
  console.log(`runs tab scrolling 16 rows per frame: frame time p50 ${frames.p50.toFixed(1)} ms, p95 ${frames.p95.toFixed(1)} ms`);
  await page.evaluate(() => window.jupyterapp.commands.execute('application:close-all'));

  // 2. Chart of a 100,000-point metric.
  const chart = [];
  const draw = [];
  for (let i = 0; i < REPEAT; i++) {
    const r = await page.evaluate(async id => {
      const t0 = performance.now();
      await window.jupyterapp.commands.execute('hpcml:open-charts', { runIds: [id] });
      const panel = await new Promise((resolve, reject) => {
        const check = () => {
          const p = document.querySelector('.jp-hpcml-Charts[data-draw-ms]');
          if (p && p.querySelector('canvas')) {
            resolve(p);
          } else if (performance.now() - t0 > 30000) {
            reject(new Error('chart did not render'));
          } else {
            requestAnimationFrame(check);
          }
        };
        check();
      });
      await new Promise(r => requestAnimationFrame(r));
      return { total: performance.now() - t0, draw: Number(panel.dataset.drawMs) };
    }, runId);
    chart.push(r.total);
    draw.push(r.draw);
    await page.evaluate(() => window.jupyterapp.commands.execute('application:close-all'));
    await page.waitForTimeout(300);
  }
  console.log(`chart of a 100,000-point metric, command → canvas drawn: ${fmt(chart)}`);
  console.log(`  of which drawing in the browser (align + uPlot): ${fmt(draw)}`);
  await browser.close();
})().catch(e => {
  console.error(e);
  process.exit(1);
});
