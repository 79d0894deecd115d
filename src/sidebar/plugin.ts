/**
 * The submit sidebar plugin: left-panel widget (restored open/closed), the
 * `hpcml:open-submit` command (palette, file browser context menu on
 * MLproject files), following the file browser's folder.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { CommandIDs, IOpenSubmitArgs } from '../commands';
import { scheduleFromSidebar } from '../schedules/fromSidebar';
import { DEFAULT_SETTINGS, IHpcmlSettings, watchSettings } from '../settings';
import { askCredentials, forgetCredentialsDialog } from './credentialsDialog';
import { hpcmlIcon } from './icon';
import { SubmitModel } from './model';
import { SubmitPanel } from './SubmitPanel';

const TRANSLATION_DOMAIN = 'jupyterlab_hpcml';

function isMLproject(name: string | undefined): boolean {
  return (name ?? '').toLowerCase() === 'mlproject';
}

function selectedMLproject(browser: IDefaultFileBrowser | null): string | null {
  const item = browser?.selectedItems().next();
  const model = item && !item.done ? item.value : null;
  return model && isMLproject(model.name) ? model.path : null;
}

export const sidebarPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-hpcml:sidebar',
  description: 'Submit sidebar: project, entry point, parameters, resources, submit.',
  autoStart: true,
  optional: [ILayoutRestorer, IDefaultFileBrowser, ICommandPalette, ISettingRegistry, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    browser: IDefaultFileBrowser | null,
    palette: ICommandPalette | null,
    registry: ISettingRegistry | null,
    translator: ITranslator | null
  ): void => {
    const trans = (translator ?? nullTranslator).load(TRANSLATION_DOMAIN);
    let settings: IHpcmlSettings = { ...DEFAULT_SETTINGS };
    watchSettings(registry, latest => {
      settings = latest;
    });

    const model = new SubmitModel({
      defaultBackend: () => settings.defaultBackend,
      pollInterval: () => settings.pollInterval,
      askCredentials: (needed, problems, choice) => askCredentials(needed, problems, choice, trans)
    });
    const openRun = (runId: string): void => {
      if (app.commands.hasCommand(CommandIDs.openRun)) {
        void app.commands.execute(CommandIDs.openRun, { runId });
      }
    };
    const ready = model.init();
    const follow = (): void => {
      if (browser && panel.isVisible && !model.loading) {
        void ready.then(() => model.followPath(browser.model.path));
      }
    };
    const panel = new SubmitPanel({
      model,
      trans,
      onSubmit: () => {
        void model.submit().then(run => run && openRun(run.id));
      },
      onOpenRun: openRun,
      onSchedule: () => void scheduleFromSidebar(app, model, trans),
      onOpenSchedules: () => void app.commands.execute(CommandIDs.openSchedules),
      onOpenData: () =>
        void app.commands.execute(CommandIDs.openData, {
          project: model.project?.path ?? '',
          config: model.configPath
        }),
      onShow: follow
    });
    app.shell.add(panel, 'left', { rank: 650 });
    restorer?.add(panel, 'hpcml-submit-sidebar');
    browser?.model.pathChanged.connect(follow);

    app.commands.addCommand(CommandIDs.openSubmit, {
      label: trans.__('Submit run…'),
      caption: trans.__('Open the HPC ML submit sidebar on an MLflow project'),
      icon: args => (args.fromFileBrowser ? hpcmlIcon : undefined),
      isVisible: args => !args.fromFileBrowser || selectedMLproject(browser) !== null,
      execute: async args => {
        const { path, runId, fromFileBrowser } = args as IOpenSubmitArgs;
        app.shell.activateById(panel.id);
        await ready;
        if (runId) {
          await model.prefillFromRun(runId);
        } else if (fromFileBrowser) {
          await model.loadProject(selectedMLproject(browser) ?? '');
        } else if (path !== undefined) {
          await model.loadProject(path);
        } else if (!model.project && browser) {
          model.followPath(browser.model.path);
        }
      }
    });
    palette?.addItem({ command: CommandIDs.openSubmit, category: trans.__('HPC ML') });

    app.commands.addCommand(CommandIDs.forgetCredentials, {
      label: trans.__('Forget credentials entered in the lab…'),
      caption: trans.__('Make the server forget FirecREST/UNICORE credentials typed in the lab'),
      execute: () => forgetCredentialsDialog(trans)
    });
    palette?.addItem({ command: CommandIDs.forgetCredentials, category: trans.__('HPC ML') });
    app.contextMenu.addItem({
      command: CommandIDs.openSubmit,
      args: { fromFileBrowser: true },
      selector: '.jp-DirListing-item[data-isdir="false"]',
      rank: 3
    });
  }
};
