/**
 * The Models plugin: the `hpcml:open-models` command (palette; "Register
 * model…" offers it on the new model) and its tab, restored on reload; and
 * `hpcml:register-model`, the run detail's "Register model…".
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';

import { getRun } from '../api';
import { CommandIDs, IOpenModelsArgs, IRegisterModelArgs } from '../commands';
import { addMainAreaTab } from '../components/mainAreaTab';
import { tabPlugin } from '../components/tabPlugin';
import { modelActions } from './actions';
import { ModelsModel } from './modelsModel';
import { ModelsPanel } from './ModelsPanel';
import { registerDialog } from './registerDialog';

/** Register the run's model; offer to show it in the Models tab. */
async function registerFromRun(
  app: JupyterFrontEnd,
  runId: string,
  trans: TranslationBundle
): Promise<void> {
  const version = await registerDialog(await getRun(runId), trans);
  if (!version) {
    return;
  }
  const answer = await showDialog({
    title: trans.__('Model registered'),
    body: trans.__('Registered %1 version %2.', version.name, version.version),
    buttons: [
      Dialog.cancelButton({ label: trans.__('Close') }),
      Dialog.okButton({ label: trans.__('Open in Models') })
    ]
  });
  if (answer.button.accept) {
    await app.commands.execute(CommandIDs.openModels, { model: version.name });
  }
}

export const modelsPlugin = tabPlugin(
  'jupyterlab-hpcml:models',
  'HPC ML Models tab: registered models, their lineage, deployments, Try it.',
  (app, { palette, restorer, trans, pollSeconds }) => {
    addMainAreaTab(app, palette, restorer, {
      id: 'hpcml-models',
      label: trans.__('HPC ML Models'),
      caption: trans.__('Registered models, their versions and deployments'),
      createContent: () => {
        // Deployments become READY in seconds: ask as often as for runs.
        const model = new ModelsModel(() => Math.max(1000, pollSeconds() * 1000));
        return new ModelsPanel(model, modelActions(app, model, trans), trans);
      },
      command: {
        id: CommandIDs.openModels,
        label: trans.__('Open HPC ML Models'),
        caption: trans.__('Registered models: versions, lineage, deployments, Try it'),
        category: trans.__('HPC ML')
      },
      onOpen: (widget, args) => {
        const { model } = args as IOpenModelsArgs;
        if (model) {
          widget.content.model.select(model);
        }
        void widget.content.model.refresh();
      },
      // The restorer reopens the tab on the same model.
      restoreArgs: widget => {
        const name = widget.content.model.selectedName;
        return name ? { model: name } : {};
      },
      restoreName: 'models'
    });

    app.commands.addCommand(CommandIDs.registerModel, {
      label: trans.__('Register model…'),
      caption: trans.__("Register the run's logged model as a new version of a named model"),
      execute: args => registerFromRun(app, (args as IRegisterModelArgs).runId, trans)
    });
  }
);
