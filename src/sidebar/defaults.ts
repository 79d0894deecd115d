/**
 * Default choices of the submit form: entry point, backend config, run name.
 */
import { valueText } from '../components/format';
import { IBackendConfigInfo, IProject } from '../types';

/** `main` when the project has it (MLflow's default), else the first one. */
export function defaultEntryPoint(project: IProject): string {
  const names = project.entry_points.map(ep => ep.name);
  return names.includes('main') ? 'main' : (names[0] ?? '');
}

/**
 * The config preselected for the `defaultBackend` setting: a config whose
 * path, file stem, Name or kind is that value; '' (the built-in local
 * backend) when none is, or for "local" without a local config file.
 */
export function defaultConfigPath(
  configs: readonly IBackendConfigInfo[],
  defaultBackend: string
): string {
  const wanted = defaultBackend.trim().toLowerCase();
  const usable = configs.filter(c => c.config !== null);
  const stem = (path: string): string =>
    (path.split('/').pop() ?? '').replace(/\.(ya?ml|json)$/i, '').toLowerCase();
  const exact = usable.find(
    c =>
      c.path.toLowerCase() === wanted ||
      stem(c.path) === wanted ||
      valueText(c.config?.Name ?? '').toLowerCase() === wanted
  );
  if (exact) {
    return exact.path;
  }
  if (wanted === 'local') {
    return '';
  }
  return usable.find(c => c.kind === wanted)?.path ?? '';
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** `<entry point>-MMDD-HHMMSS`, as the server names runs. */
export function defaultRunName(entryPoint: string, now = new Date()): string {
  const date = `${pad(now.getMonth() + 1)}${pad(now.getDate())}`;
  const time = `${pad(now.getHours())}${pad(now.getMinutes())}${pad(now.getSeconds())}`;
  return `${entryPoint || 'run'}-${date}-${time}`;
}

/** A config path relative to the project of an absolute `config_path` of a run. */
export function configPathOfRun(
  projectPath: string,
  configPath: string | null | undefined
): string {
  if (!configPath) {
    return '';
  }
  const base = projectPath.replace(/\/+$/, '') + '/';
  return configPath.startsWith(base) ? configPath.slice(base.length) : configPath;
}

/** Whether `path` (relative to the server root) is `folder` or inside it. */
export function isInside(path: string, folder: string): boolean {
  const clean = (p: string): string => p.replace(/^\/+|\/+$/g, '');
  const a = clean(path);
  const b = clean(folder);
  return b === '' ? true : a === b || a.startsWith(`${b}/`);
}
