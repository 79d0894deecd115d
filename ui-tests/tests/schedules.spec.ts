/**
 * Schedules in a real lab with the local backend: create a schedule from the
 * sidebar's "Schedule…" (the next five times shown as the cron is typed, a bad
 * cron named at its field), see it in the Schedules tab with its next times,
 * run it now, find its run in the runs tab filtered by the schedule, pause it,
 * delete it.
 */
import { expect, test } from '@jupyterlab/galata';

import { API, openSidebarOnDigits, SIDEBAR } from './digits';

test.use({ autoGoto: true });

test('schedule from the sidebar, see its next times, run it now, pause it', async ({ page }) => {
  test.setTimeout(240_000);
  await openSidebarOnDigits(page);
  await page.selectOption('#hpcml-entry-point', 'train');
  await page.locator('[id="hpcml-param--epochs"]').fill('1');

  await page.locator(`${SIDEBAR} .jp-hpcml-ScheduleButton`).click();
  const dialog = page.locator('.jp-Dialog .jp-hpcml-ScheduleDialog');
  await expect(dialog).toBeVisible();
  // The dialog focuses its cron field once its body has rendered: a fill() before that
  // may put its text in the cron field (fill focuses, then types), as seen under load.
  const cron = dialog.locator('#hpcml-field-cron');
  await expect(cron).toBeFocused();
  const name = `ui-sched-${Date.now().toString(36)}`;
  await dialog.locator('#hpcml-field-name').fill(name);
  await dialog.locator('#hpcml-field-timezone').fill('Europe/Zurich');

  // A bad cron: the server's message at the cron field, no times.
  await cron.fill('61 3 * * *');
  const cronField = dialog.locator('.jp-hpcml-Field[data-field="cron"]');
  await expect(cronField.locator('.jp-hpcml-Field-error')).toBeVisible();
  await expect(dialog.locator('.jp-hpcml-Schedule-times li')).toHaveCount(0);

  // Fixed: the next five times, at 03:00 in Zurich.
  await cron.fill('0 3 * * *');
  await expect(cronField.locator('.jp-hpcml-Field-error')).toHaveCount(0);
  const times = dialog.locator('.jp-hpcml-Schedule-times li');
  await expect(times).toHaveCount(5);
  await expect(times.first()).toContainText('03:00 Europe/Zurich');

  await page.getByRole('button', { name: 'Create schedule' }).click();
  await expect(page.locator('.jp-Dialog')).toHaveCount(0);

  // The Schedules tab opens on it: its next time, and its next five times below.
  const panel = page.locator('.jp-hpcml-Schedules');
  const row = panel.locator('.jp-hpcml-Schedule-row', { hasText: name });
  await expect(row).toBeVisible({ timeout: 30_000 });
  const scheduleId = (await row.getAttribute('data-schedule-id')) ?? '';
  expect(scheduleId).toMatch(/^t[0-9a-f]+$/);
  await expect(row.locator('.jp-hpcml-Schedule-whenCell')).toHaveText('0 3 * * * (Europe/Zurich)');
  await expect(row.locator('.jp-hpcml-Schedule-nextCell')).toContainText(
    /\d{4}-\d\d-\d\d \d\d:\d\d/
  );
  await expect(row.locator('.jp-hpcml-Schedule-status')).toHaveText('active');
  const detail = panel.locator('.jp-hpcml-Schedule-detail');
  await expect(detail.locator('.jp-hpcml-Schedule-times li')).toHaveCount(5);

  // Run now: a firing with its run in the history, the run's state as its badge.
  await row.getByRole('button', { name: `Run now: ${name}` }).click();
  const firing = detail.locator('.jp-hpcml-Firing').first();
  await expect(firing).toHaveAttribute('data-firing-state', 'submitted', { timeout: 60_000 });
  const runId = (await firing.getAttribute('data-run-id')) ?? '';
  expect(runId).toMatch(/^[0-9a-f]+$/);
  const run = await (await page.request.get(`${API}/runs/${runId}`)).json();
  expect(run.schedule_id).toBe(scheduleId);
  await expect(row.locator('.jp-hpcml-Schedule-runs')).toHaveText('1');
  await expect(firing.locator('.jp-hpcml-badge')).toHaveText('FINISHED', { timeout: 120_000 });
  await expect(row.locator('.jp-hpcml-Schedule-last .jp-hpcml-badge')).toHaveText('FINISHED');

  // Show runs: the runs tab, filtered to this schedule's one run.
  await row.getByRole('button', { name: `Show runs: ${name}` }).click();
  const runs = page.locator('.jp-hpcml-Runs');
  await expect(runs.locator('.jp-hpcml-Runs-scheduleFilter')).toContainText(`Schedule: ${name}`);
  await expect(runs.locator(`.jp-hpcml-Runs-row[data-hpcml-run-id="${runId}"]`)).toBeVisible();
  await expect(runs.locator('.jp-hpcml-Runs-row[data-hpcml-run-id]')).toHaveCount(1);
  await expect(runs.locator('.jp-hpcml-Runs-status')).toHaveText('1 run');
  // Cleared: every run again (the other tests' too, when they ran first).
  await runs.getByRole('button', { name: 'Clear the schedule filter' }).click();
  await expect(runs.locator('.jp-hpcml-Runs-scheduleFilter')).toBeHidden();

  // Pause: no next time; Resume offered.
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('hpcml:open-schedules');
  });
  await row.getByRole('button', { name: `Pause: ${name}` }).click();
  await expect(row.locator('.jp-hpcml-Schedule-status')).toHaveText('paused');
  await expect(row.locator('.jp-hpcml-Schedule-nextCell')).toHaveText('paused');
  await expect(row.getByRole('button', { name: `Resume: ${name}` })).toBeVisible();
  const paused = await (await page.request.get(`${API}/schedules/${scheduleId}`)).json();
  expect(paused.status).toBe('paused');

  // Delete (after confirming): gone from the list; its run stays.
  await row.getByRole('button', { name: `Delete: ${name}` }).click();
  await page.locator('.jp-Dialog').getByRole('button', { name: 'Delete' }).click();
  await expect(row).toHaveCount(0);
  expect((await page.request.get(`${API}/schedules/${scheduleId}`)).status()).toBe(404);
  expect((await page.request.get(`${API}/runs/${runId}`)).ok()).toBeTruthy();

  // Reloaded, the lab restores the Schedules tab.
  // Galata's ready check waits for a Launcher, which a restored layout may not show.
  await page.reload({ waitForIsReady: false });
  await expect(page.locator('.jp-hpcml-Schedules .jp-hpcml-Runs-status')).toBeVisible({
    timeout: 30_000
  });
});
