/**
 * ajv's errors on the resources/environment form, worded as the server
 * words them (engine/config.py `_type_message`, `_pattern_message`), so the
 * inline message is the one a submission would answer.
 */
import { valueText } from '../components/format';

/** The parts of an rjsf/ajv validation error used here. */
export interface IAjvError {
  name?: string;
  property?: string;
  message?: string;
  params?: Record<string, unknown>;
  stack: string;
}

const RUNTIME_HINT =
  'must be a duration such as 1h30m, 90min, 01:30:00, 1-02:00:00 (days-hours:minutes:seconds), 2d, or a number of seconds';
const MEMORY_HINT = 'must be a size such as 64G, 64GB, 64GiB, 65536M, 512MiB, or a number of MiB';
const TYPE_WORDS: Record<string, string> = {
  integer: 'an integer',
  number: 'a number',
  string: 'a string',
  object: 'a mapping',
  array: 'a list',
  boolean: 'true/false'
};

/** Python-like rendering of a value, as the server's `_describe`. */
export function describe(value: unknown): string {
  if (value === undefined || value === null) {
    return 'nothing (empty value)';
  }
  if (typeof value === 'string') {
    const text = value.length <= 60 ? value : `${value.slice(0, 57)}...`;
    return `'${text}'`;
  }
  if (Array.isArray(value)) {
    return 'a list';
  }
  if (typeof value === 'object') {
    return 'a mapping';
  }
  return valueText(value);
}

/** "Resources.Nodes" of ajv's ".Resources.Nodes" (or "['Resources']…"). */
export function errorPath(property: string | undefined): string[] {
  return (property ?? '')
    .replace(/\[['"]?([^\]'"]+)['"]?\]/g, '.$1')
    .split('.')
    .filter(part => part);
}

/** The server's message for one ajv error on `value`. */
export function configErrorMessage(error: IAjvError, value: unknown): string {
  const path = errorPath(error.property);
  const name = path[path.length - 1] ?? '';
  const params = error.params ?? {};
  if (name === 'Runtime' && (error.name === 'pattern' || error.name === 'type')) {
    return `${RUNTIME_HINT}, got ${describe(value)}`;
  }
  if (name === 'MemoryPerNode' && (error.name === 'pattern' || error.name === 'type')) {
    return `${MEMORY_HINT}, got ${describe(value)}`;
  }
  switch (error.name) {
    case 'minimum':
      return `must be an integer ≥ ${String(params.limit)}, got ${describe(value)}`;
    case 'minLength':
      return 'must not be empty';
    case 'type':
      return `must be ${TYPE_WORDS[String(params.type)] ?? params.type}, got ${describe(value)}`;
    case 'pattern':
      if (path.includes('Apptainer') && name === 'Path') {
        return `must be an absolute path on the cluster when Type is remote, got ${describe(value)}`;
      }
      return `has an invalid format: ${describe(value)}`;
    case 'propertyNames':
      return `'${String(params.propertyName)}' is not a valid environment variable name (letters, digits and _, not starting with a digit)`;
    case 'not':
      if (name === 'Environment') {
        return 'only one of Apptainer, Python may be given, found Apptainer and Python';
      }
      return error.message ?? error.stack;
    default:
      return error.message ?? error.stack;
  }
}
