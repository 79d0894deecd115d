/**
 * Server problems (`{message, file, line, key}`) → errors shown next to the
 * field they concern, and the rjsf error schemas that display them.
 */
import { formatProblem } from '../errors';
import { IProblem } from '../types';
import { deepEqual, getPath, JSONObject } from './jsonSchema';
import { CONFIG_SECTIONS } from './configForm';

/** Messages by dotted path inside one form (e.g. "Resources.Nodes"). */
export type FieldErrors = Record<string, string[]>;

/** Where each problem of a submission goes. */
export interface ISubmitErrors {
  /** Parameter form, by parameter name. */
  parameters: FieldErrors;
  /** Resources/Environment form, by dotted path. */
  config: FieldErrors;
  /** The sidebar's own fields: entry_point, backend_config, run_name, experiment_name, project. */
  fields: FieldErrors;
  /** Anything else, formatted with file:line and key. */
  general: string[];
}

export const OWN_FIELDS = [
  'project',
  'entry_point',
  'backend_config',
  'run_name',
  'experiment_name'
] as const;

export function emptyErrors(): ISubmitErrors {
  return { parameters: {}, config: {}, fields: {}, general: [] };
}

function add(map: FieldErrors, key: string, message: string): void {
  const messages = (map[key] ??= []);
  if (!messages.includes(message)) {
    messages.push(message);
  }
}

/** Sort each problem to the field it names (`parameters.epochs`, `Resources.Nodes`, …). */
export function problemsToErrors(problems: readonly IProblem[]): ISubmitErrors {
  const out = emptyErrors();
  for (const problem of problems) {
    let key = problem.key ?? '';
    if (key.startsWith('overrides.')) {
      key = key.slice('overrides.'.length);
    }
    const [head, ...rest] = key.split('.');
    if (head === 'parameters' && rest.length > 0) {
      add(out.parameters, rest.join('.'), problem.message);
    } else if ((CONFIG_SECTIONS as readonly string[]).includes(head)) {
      add(out.config, key, problem.message);
    } else if ((OWN_FIELDS as readonly string[]).includes(key)) {
      add(out.fields, key, problem.message);
    } else {
      out.general.push(formatProblem(problem));
    }
  }
  return out;
}

/** Client-side parameter errors (by name) in the same shape. */
export function fieldErrorsFrom(record: Record<string, string>): FieldErrors {
  return Object.fromEntries(Object.entries(record).map(([key, message]) => [key, [message]]));
}

/** The rjsf `extraErrors` schema of a form's field errors. */
export function toErrorSchema(errors: FieldErrors): JSONObject {
  const root: JSONObject = {};
  for (const [key, messages] of Object.entries(errors)) {
    let node = root;
    for (const part of key.split('.').filter(p => p)) {
      node = (node[part] ??= {}) as JSONObject;
    }
    const list = ((node.__errors as string[] | undefined) ??= []);
    list.push(...messages);
  }
  return root;
}

/** The errors whose field kept its value (edited fields lose their error). */
export function keepUnchanged(errors: FieldErrors, before: unknown, after: unknown): FieldErrors {
  const out: FieldErrors = {};
  for (const [key, messages] of Object.entries(errors)) {
    const path = key.split('.');
    if (deepEqual(getPath(before, path), getPath(after, path))) {
      out[key] = messages;
    }
  }
  return out;
}

/** Count of all messages. */
export function errorCount(errors: ISubmitErrors): number {
  const sum = (map: FieldErrors): number =>
    Object.values(map).reduce((n, list) => n + list.length, 0);
  return sum(errors.parameters) + sum(errors.config) + sum(errors.fields) + errors.general.length;
}
