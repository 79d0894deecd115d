/**
 * The user's settings of the extension (schema/lab/plugin.json).
 */
import type { ISettingRegistry } from '@jupyterlab/settingregistry';

/** Id of the settings plugin: `<npm package>:<schema file name>`. */
export const SETTINGS_PLUGIN_ID = 'jupyterlab-hpcml:plugin';

export interface IHpcmlSettings {
  /** Seconds between refreshes of the run list and active logs. */
  pollInterval: number;
  /** Backend configuration preselected when submitting. */
  defaultBackend: string;
  /** MLflow UI that run links point to; empty for none. */
  mlflowUiUrl: string;
  /** Run list columns, in order. */
  columns: string[];
  /** Load the %hpc_* magics in the lab's Python notebook kernels. */
  loadMagicsInKernels: boolean;
}

/** The defaults, the same as the schema's. */
export const DEFAULT_SETTINGS: Readonly<IHpcmlSettings> = Object.freeze({
  pollInterval: 2,
  defaultBackend: 'local',
  mlflowUiUrl: '',
  columns: ['name', 'state', 'backend', 'entryPoint', 'jobId', 'submitted', 'duration', 'metrics'],
  loadMagicsInKernels: false
});

/** Smallest refresh interval honoured, in seconds. */
export const MIN_POLL_INTERVAL = 0.5;

/**
 * Settings from the registry's composite value, each invalid or missing
 * entry replaced by its default.
 */
export function normalizeSettings(composite: unknown): IHpcmlSettings {
  const raw =
    typeof composite === 'object' && composite !== null
      ? (composite as Record<string, unknown>)
      : {};
  const poll = raw.pollInterval;
  const backend = raw.defaultBackend;
  const columns = raw.columns;
  return {
    pollInterval:
      typeof poll === 'number' && Number.isFinite(poll)
        ? Math.max(MIN_POLL_INTERVAL, poll)
        : DEFAULT_SETTINGS.pollInterval,
    defaultBackend:
      typeof backend === 'string' && backend.trim()
        ? backend.trim()
        : DEFAULT_SETTINGS.defaultBackend,
    mlflowUiUrl:
      typeof raw.mlflowUiUrl === 'string' ? raw.mlflowUiUrl.trim() : DEFAULT_SETTINGS.mlflowUiUrl,
    columns: Array.isArray(columns)
      ? columns.filter((c): c is string => typeof c === 'string' && c !== '')
      : [...DEFAULT_SETTINGS.columns],
    loadMagicsInKernels: raw.loadMagicsInKernels === true
  };
}

/**
 * Call `onChange` with the settings once loaded and again on each change
 * (nothing without a registry: the caller keeps its defaults).
 */
export function watchSettings(
  registry: ISettingRegistry | null,
  onChange: (settings: IHpcmlSettings) => void
): void {
  registry
    ?.load(SETTINGS_PLUGIN_ID)
    .then(setting => {
      const update = (): void => onChange(normalizeSettings(setting.composite));
      update();
      setting.changed.connect(update);
    })
    .catch(reason => console.error('jupyterlab-hpcml: cannot load settings.', reason));
}

/** The pollInterval setting in seconds, kept current (the default until loaded). */
export function pollIntervalSetting(registry: ISettingRegistry | null): () => number {
  let seconds = DEFAULT_SETTINGS.pollInterval;
  watchSettings(registry, settings => {
    seconds = settings.pollInterval;
  });
  return () => seconds;
}
