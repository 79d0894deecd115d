/**
 * A plugin whose job is one main-area tab (Schedules, Models): the optional
 * services such a tab uses, resolved once, and the setup that adds the tab
 * (see `addMainAreaTab`) and any commands of its own.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator, TranslationBundle } from '@jupyterlab/translation';

import { pollIntervalSetting } from '../settings';

const TRANSLATION_DOMAIN = 'jupyterlab_hpcml';

export interface ITabPluginContext {
  palette: ICommandPalette | null;
  restorer: ILayoutRestorer | null;
  trans: TranslationBundle;
  /** The settings' poll interval in seconds, as it is now. */
  pollSeconds: () => number;
}

export function tabPlugin(
  id: string,
  description: string,
  setUp: (app: JupyterFrontEnd, context: ITabPluginContext) => void
): JupyterFrontEndPlugin<void> {
  return {
    id,
    description,
    autoStart: true,
    optional: [ICommandPalette, ISettingRegistry, ITranslator, ILayoutRestorer],
    activate: (
      app: JupyterFrontEnd,
      palette: ICommandPalette | null,
      settingRegistry: ISettingRegistry | null,
      translator: ITranslator | null,
      restorer: ILayoutRestorer | null
    ): void => {
      const trans = (translator ?? nullTranslator).load(TRANSLATION_DOMAIN);
      setUp(app, { palette, restorer, trans, pollSeconds: pollIntervalSetting(settingRegistry) });
    }
  };
}
