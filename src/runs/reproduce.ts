/**
 * The shell commands that reproduce a run with the `hpcml` CLI.
 */
import { IRun, Overrides } from '../types';

/** Quote a word for a POSIX shell when needed. */
export function shellQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) {
    return word;
  }
  return `'${word.replace(/'/g, `'"'"'`)}'`;
}

/** Overrides as `Key.Path=value` strings (nested objects flattened). */
export function overrideStrings(overrides: Overrides | null | undefined): string[] {
  if (!overrides) {
    return [];
  }
  if (Array.isArray(overrides)) {
    return overrides;
  }
  const out: string[] = [];
  const walk = (prefix: string, value: unknown): void => {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        walk(prefix ? `${prefix}.${k}` : k, v);
      }
    } else {
      out.push(`${prefix}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
    }
  };
  walk('', overrides);
  return out;
}

/** `hpcml rerun <id>`: the same code snapshot, parameters and resources. */
export function rerunCommand(run: Pick<IRun, 'id'>): string {
  return `hpcml rerun ${shellQuote(run.id)}`;
}

/** `hpcml submit <project> -e .. -P ..`: the same inputs on the current code. */
export function submitCommand(
  run: Pick<
    IRun,
    | 'project_relpath'
    | 'project_path'
    | 'entry_point'
    | 'parameters'
    | 'config_path'
    | 'config_overrides'
    | 'mlflow_experiment_name'
  >
): string {
  const words = ['hpcml', 'submit', shellQuote(run.project_relpath || run.project_path)];
  words.push('-e', shellQuote(run.entry_point));
  for (const [k, v] of Object.entries(run.parameters ?? {})) {
    words.push('-P', shellQuote(`${k}=${v}`));
  }
  if (run.config_path) {
    words.push('-c', shellQuote(run.config_path));
  }
  for (const o of overrideStrings(run.config_overrides)) {
    words.push('--set', shellQuote(o));
  }
  if (run.mlflow_experiment_name) {
    words.push('--experiment-name', shellQuote(run.mlflow_experiment_name));
  }
  return words.join(' ');
}

/** Link to the run in an MLflow UI, or null without a UI URL or MLflow run. */
export function mlflowRunUrl(
  uiUrl: string,
  experimentId: string | null | undefined,
  mlflowRunId: string | null | undefined
): string | null {
  if (!uiUrl || !experimentId || !mlflowRunId) {
    return null;
  }
  return `${uiUrl.replace(/\/+$/, '')}/#/experiments/${encodeURIComponent(
    experimentId
  )}/runs/${encodeURIComponent(mlflowRunId)}`;
}
