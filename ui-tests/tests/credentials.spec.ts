/**
 * Credentials entered once in the lab, held only in server memory: a submission
 * to a UNICORE config without credentials opens the dialog; Cancel shows the
 * server's error; values refused by the server re-open it with the problem;
 * accepted values are stored (GET credentials names the connection and where
 * the secret is sent, as the dialog does) and the submission is retried. The UNICORE URL is a closed port on loopback: the
 * server asks for credentials before contacting anything, and the retried run
 * then fails to reach it. No secret may be visible in the page afterwards.
 * The `hpcml:forget-credentials` command makes the server forget them.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import type { APIRequestContext } from '@playwright/test';

import { openSidebarOnDigits, SIDEBAR } from './digits';

const DIALOG = '.jp-Dialog';
const CONFIG = 'backend-configs/unicore-loopback.yaml';
const API_URL = 'https://127.0.0.1:9/UNICORE/rest/core';
const CONNECTION = `unicore:${API_URL}`;
const SECRET = `pw-${Date.now()}-not-for-eyes`;
/** The dialog's input of a credential field. */
const input = (field: string) => `${DIALOG} [id="jp-hpcml-credential-${field}"]`;

test.use({ autoGoto: true });
// The server must start without UNICORE credentials in its environment.
test.skip(
  !!(process.env.HPCML_UNICORE_TOKEN || process.env.MANTIK_UNICORE_PASSWORD || process.env.HPCML_UNICORE_PASSWORD),
  'UNICORE credentials are set in the environment'
);

async function forget(request: APIRequestContext): Promise<void> {
  await request.delete(`/hpcml/api/credentials?connection=${encodeURIComponent(CONNECTION)}`);
}

async function storedConnections(request: APIRequestContext): Promise<string[]> {
  const answer = await request.get('/hpcml/api/credentials');
  expect(answer.ok()).toBeTruthy();
  const stored: { connection: string; secret_sent_to: string }[] = (await answer.json()).connections;
  for (const entry of stored.filter(c => c.connection === CONNECTION)) {
    expect(entry.secret_sent_to).toBe(API_URL);
  }
  return stored.map(c => c.connection);
}

test.beforeAll(async ({ request }) => {
  const content = [
    'Name: Loopback UNICORE (UI test)',
    `UnicoreApiUrl: ${API_URL}`,
    'Resources:',
    '  Queue: devel',
    '  Runtime: 10m',
    '  Nodes: 1',
    'Environment:',
    '  Python: /nonexistent/venv',
    ''
  ].join('\n');
  const answer = await request.put(`/api/contents/digits/${CONFIG}`, {
    data: { type: 'file', format: 'text', content }
  });
  expect(answer.ok()).toBeTruthy();
});

test.afterEach(async ({ request }) => forget(request));

test.afterAll(async ({ request }) => {
  await request.delete(`/api/contents/digits/${CONFIG}`);
});

async function submitToLoopback(page: IJupyterLabPageFixture, runName: string): Promise<void> {
  await openSidebarOnDigits(page);
  await page.selectOption('#hpcml-entry-point', 'train');
  await page.selectOption('#hpcml-backend-config', CONFIG);
  await page.fill('#hpcml-run-name', runName);
  await page.locator(`${SIDEBAR} .jp-hpcml-Submit`).click();
}

test('Cancel shows the missing-credentials error and stores nothing', async ({ page, request }) => {
  await submitToLoopback(page, `ui-cred-cancel-${Date.now()}`);
  const dialog = page.locator(DIALOG);
  await expect(dialog).toBeVisible();
  await expect(dialog.locator('.jp-hpcml-Credentials-connection')).toHaveText(CONNECTION);
  await expect(page.locator(`${SIDEBAR} .jp-hpcml-Muted`).filter({ hasText: 'Waiting for the credentials' })).toBeVisible();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toHaveCount(0);
  await expect(page.locator(`${SIDEBAR} .jp-hpcml-General`)).toContainText('no UNICORE credentials');
  await expect(page.locator(`${SIDEBAR} .jp-hpcml-LastRun`)).toHaveCount(0);
  expect(await storedConnections(request)).not.toContain(CONNECTION);
});

test('credentials entered in the dialog are stored and the submission retried', async ({ page, request }) => {
  test.setTimeout(120_000);
  const runName = `ui-cred-${Date.now()}`;
  await submitToLoopback(page, runName);
  const dialog = page.locator(DIALOG);
  await expect(dialog).toBeVisible();
  await expect(dialog.locator('.jp-Dialog-header')).toContainText('UNICORE credentials');
  await expect(dialog.locator('.jp-hpcml-Credentials-connection')).toHaveText(CONNECTION);
  // The dialog focuses its first field once rendered: fill only after that.
  await expect(dialog.locator('input[data-field]').first()).toBeFocused();
  // Where the secret will be sent, for the chosen set of fields.
  await expect(dialog.locator('.jp-hpcml-Credentials-destination')).toHaveText(
    `The password is sent only to ${API_URL}.`
  );

  // The alternatives in plain words; secrets in password inputs.
  await expect(dialog.getByRole('radio', { name: 'User name and password' })).toBeChecked();
  await expect(dialog.getByLabel('Password', { exact: true })).toHaveAttribute('type', 'password');
  await expect(dialog.getByLabel('User name', { exact: true })).toHaveAttribute('type', 'text');
  await expect(page.locator(input('username'))).toHaveAttribute('type', 'text');
  await dialog.getByRole('radio', { name: 'Bearer token' }).check();
  await expect(page.locator(input('token'))).toHaveAttribute('type', 'password');
  await expect(dialog.locator('.jp-hpcml-Credentials-destination')).toHaveText(
    `The bearer token is sent only to ${API_URL}.`
  );

  // Blank values pass the browser's `required` check but not the server's: the dialog comes back with its problem.
  await page.locator(input('token')).fill('   ');
  await dialog.getByRole('button', { name: 'Submit' }).click();
  await expect(dialog.locator('.jp-hpcml-Field-error')).toContainText('must be a non-empty string');
  await expect(dialog.getByRole('radio', { name: 'Bearer token' })).toBeChecked();
  expect(await storedConnections(request)).not.toContain(CONNECTION);

  await dialog.getByRole('radio', { name: 'User name and password' }).check();
  await page.locator(input('username')).fill('alice');
  await page.locator(input('password')).fill(SECRET);
  await dialog.getByRole('button', { name: 'Submit' }).click();
  await expect(dialog).toHaveCount(0);
  expect(await storedConnections(request)).toContain(CONNECTION);

  // The retried submission got past the credentials check: the run exists and
  // fails on the closed port instead.
  const lastRun = page.locator(`${SIDEBAR} .jp-hpcml-LastRun`);
  await expect(lastRun).toContainText(runName, { timeout: 60_000 });
  await expect(lastRun.locator('.jp-hpcml-State')).toHaveAttribute('data-state', /^(FAILED|UNKNOWN)$/, {
    timeout: 60_000
  });
  await expect(page.locator(`${SIDEBAR} .jp-hpcml-General`)).toHaveCount(0);

  // No secret anywhere in the page, its inputs or its storage, nor in the run record.
  expect(await page.content()).not.toContain(SECRET);
  const inPage = await page.evaluate(
    secret =>
      [...document.querySelectorAll('input, textarea')].some(
        el => (el as HTMLInputElement).value.includes(secret)
      ) ||
      JSON.stringify({ ...localStorage }).includes(secret) ||
      JSON.stringify({ ...sessionStorage }).includes(secret),
    SECRET
  );
  expect(inPage).toBe(false);
  const runs = await request.get(`/hpcml/api/runs?q=${encodeURIComponent(runName)}`);
  const text = await runs.text();
  expect(text).not.toContain(SECRET);
  const run = JSON.parse(text).runs.find((r: any) => r.name === runName);
  expect(run.connection).toBe(CONNECTION);

  // The palette command makes the server forget them (the next submission asks again).
  await page.evaluate(() => {
    void window.jupyterapp.commands.execute('hpcml:forget-credentials');
  });
  await expect(dialog.locator('select')).toHaveValue(`${CONNECTION} (secret sent to ${API_URL})`);
  await dialog.getByRole('button', { name: 'Forget' }).click();
  await expect(dialog).toHaveCount(0);
  await expect.poll(() => storedConnections(request)).not.toContain(CONNECTION);
});
