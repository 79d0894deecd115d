/**
 * What the Models tab's buttons do: set an alias, deploy a version, stop a
 * deployment, send a payload to one, open a run.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { InputDialog, Notification } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';

import { CommandIDs } from '../commands';
import { errorText } from '../errors';
import { invoke, setAlias, stopDeployment } from './api';
import { deployDialog } from './deployDialog';
import { ModelsModel } from './modelsModel';
import { IInvocation } from './request';
import { IDeployment, IModelVersion, IModelVersionDetail } from './types';

export interface IModelActions {
  setAlias(version: IModelVersion): Promise<void>;
  deploy(version: IModelVersion, detail: IModelVersionDetail): Promise<void>;
  stop(deployment: IDeployment): Promise<void>;
  /** The scoring server's answer; throws with its message. */
  invoke: (deployment: IDeployment, req: IInvocation) => Promise<unknown>;
  openRun: (runId: string) => void;
}

function failure(what: string, reason: unknown): void {
  Notification.error(`${what}: ${errorText(reason)}`, { autoClose: 8000 });
}

export function modelActions(
  app: JupyterFrontEnd,
  model: ModelsModel,
  trans: TranslationBundle
): IModelActions {
  return {
    setAlias: async version => {
      const answer = await InputDialog.getText({
        title: trans.__('Alias for %1 version %2', version.name, version.version),
        label: trans.__('Alias (moved here from any other version)'),
        placeholder: 'champion',
        okLabel: trans.__('Set alias')
      });
      const alias = answer.value?.trim();
      if (!answer.button.accept || !alias) {
        return;
      }
      try {
        await setAlias(version.name, alias, version.version);
      } catch (reason) {
        failure(trans.__('Cannot set alias %1', alias), reason);
      }
      await model.refresh();
    },
    deploy: async (version, detail) => {
      const deployment = await deployDialog(version, detail, trans);
      if (deployment) {
        model.updated(deployment);
        await model.refresh();
      }
    },
    stop: async deployment => {
      try {
        model.updated(await stopDeployment(deployment.name));
      } catch (reason) {
        failure(trans.__('Cannot stop %1', deployment.name), reason);
      }
      await model.refresh();
    },
    invoke: (deployment, req) => invoke(deployment.name, req),
    openRun: runId => void app.commands.execute(CommandIDs.openRun, { runId })
  };
}
