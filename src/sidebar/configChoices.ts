/**
 * The backend-config picker's choices, the same in the submit sidebar and the
 * Data tab.
 */
import { TranslationBundle } from '@jupyterlab/translation';

import { valueText } from '../components/format';
import { IBackendConfigInfo } from '../types';
import { IPickerOption } from './Picker';

/** The local backend, then the project's configs (an invalid one shown, not choosable). */
export function configChoices(
  configs: readonly IBackendConfigInfo[],
  trans: TranslationBundle
): IPickerOption[] {
  return [
    { value: '', label: trans.__('Local (built-in default)') },
    ...configs.map(c => ({
      value: c.path,
      label: c.config
        ? `${valueText(c.config.Name ?? c.path)} — ${c.kind ?? ''}`
        : trans.__('%1 (invalid)', c.path),
      disabled: c.config === null
    }))
  ];
}
