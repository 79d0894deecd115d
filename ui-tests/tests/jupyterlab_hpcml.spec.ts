import { expect, test } from '@jupyterlab/galata';

test('the status command shows the backends', async ({ page }) => {
  // Not awaited: the command resolves only once the dialog is closed.
  await page.evaluate(() => {
    void window.jupyterapp.commands.execute('hpcml:show-status');
  });
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog.locator('.jp-hpcml-Status-table')).toBeVisible();
  await expect(dialog.getByRole('rowheader', { name: 'local' })).toBeVisible();
  await page.screenshot({ path: 'test-results/status-dialog.png' });
});
