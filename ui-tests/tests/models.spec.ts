/**
 * Models in a real lab with the local backend: the digits example trained,
 * its model registered from the run detail with the alias `champion`; the
 * Models tab shows version 1 with that alias and where it came from; Deploy
 * starts a scoring server that becomes READY; Try it, prefilled with the
 * model's input example, shows its predictions; Stop stops it.
 */
import { expect, test } from '@jupyterlab/galata';

import { openSidebarOnDigits, trainAndOpenDetail } from './digits';

test.use({ autoGoto: true });

test('register a run’s model, deploy it, try it, stop it', async ({ page }) => {
  test.setTimeout(420_000);
  // A name of its own: version 1 even on a reused server.
  const modelName = `digits-ui-${Date.now().toString(36)}`;
  const runName = `ui-model-${Date.now().toString(36)}`;

  // Train digits locally (one epoch).
  await openSidebarOnDigits(page);
  await trainAndOpenDetail(page, runName);

  // Register model… in its detail: the project's name by default, alias champion.
  const detail = page.locator('.jp-hpcml-Detail');
  await detail.locator('.jp-hpcml-Detail-register').click();
  const dialog = page.locator('.jp-Dialog');
  const form = dialog.locator('.jp-hpcml-RegisterDialog');
  await expect(form.locator('[data-field="model-name"] input')).toHaveValue('digits');
  // The dialog focuses the name once rendered; filling before that may type into it.
  await expect(form.locator('[data-field="model-name"] input')).toBeFocused();
  await expect(form.locator('[data-field="model-path"] input')).toHaveValue('model');
  await form.locator('[data-field="model-name"] input').fill(modelName);
  await form.locator('[data-field="model-alias"] input').fill('champion');
  await dialog.getByRole('button', { name: 'Register' }).click();
  await expect(dialog).toContainText(`Registered ${modelName} version 1.`, { timeout: 60_000 });
  await dialog.getByRole('button', { name: 'Open in Models' }).click();

  // The Models tab on that model: version 1 with its alias and its source run.
  const panel = page.locator('.jp-hpcml-Models');
  await expect(panel.locator(`.jp-hpcml-ModelView[data-model="${modelName}"]`)).toBeVisible({
    timeout: 30_000
  });
  const version = panel.locator('.jp-hpcml-ModelVersion[data-version="1"]');
  await expect(version.locator('.jp-hpcml-Alias[data-alias="champion"]')).toHaveText('@champion');
  await expect(version.locator('.jp-hpcml-Lineage-run')).toHaveText(runName, { timeout: 30_000 });
  await expect(version.locator('.jp-hpcml-Lineage-parameters')).toContainText('epochs');
  await expect(version.locator('.jp-hpcml-Lineage-metrics')).toContainText('val_accuracy');

  // Deploy with the defaults (its name from the model's, the local backend).
  await version.locator('.jp-hpcml-ModelVersion-deploy').click();
  const deployForm = dialog.locator('.jp-hpcml-DeployDialog');
  await expect(deployForm.locator('[data-field="deploy-name"] input')).toHaveValue(modelName);
  await dialog.getByRole('button', { name: 'Deploy' }).click();
  await expect(dialog).toHaveCount(0, { timeout: 30_000 });
  const deployment = version.locator(`.jp-hpcml-Deployment[data-deployment="${modelName}"]`);
  await expect(deployment).toHaveAttribute('data-state', /STARTING|READY/, { timeout: 30_000 });
  await expect(deployment).toContainText(`models:/${modelName}/1`);
  await expect(deployment).toHaveAttribute('data-state', 'READY', { timeout: 180_000 });

  // Try it: the input example is there; Send shows a digit per row.
  await deployment.locator('.jp-hpcml-Deployment-try').click();
  const payload = deployment.locator('.jp-hpcml-TryIt-payload');
  await expect(payload).toHaveValue(/"dataframe_split"|"inputs"/);
  await deployment.locator('.jp-hpcml-TryIt-send').click();
  const result = deployment.locator('.jp-hpcml-TryIt-result');
  await expect(result).toHaveAttribute('data-ok', 'true', { timeout: 60_000 });
  await expect(result).toHaveText(/^\[\d(,\d)*\]$/);

  // A payload of the wrong shape: the scoring server's message, not predictions.
  await payload.fill('{"dataframe_split": {"columns": ["nope"], "data": [[1]]}}');
  await deployment.locator('.jp-hpcml-TryIt-send').click();
  await expect(result).toHaveAttribute('data-ok', 'false', { timeout: 60_000 });
  await expect(result).not.toBeEmpty();

  // Stop: the deployment is STOPPED and offers neither Stop nor Try it.
  await deployment.locator('.jp-hpcml-Deployment-stop').click();
  await expect(deployment).toHaveAttribute('data-state', 'STOPPED', { timeout: 60_000 });
  await expect(deployment.locator('.jp-hpcml-Deployment-stop')).toHaveCount(0);
  await expect(deployment.locator('.jp-hpcml-TryIt')).toHaveCount(0);
});
