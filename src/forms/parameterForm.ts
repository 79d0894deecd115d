/**
 * The parameter form of an MLflow entry point, generated from the
 * `json_schema` the server derives from the MLproject, and the same checks
 * (and messages) as the server's `project._check_values`.
 */
import { valueText } from '../components/format';
import { IEntryPoint, IParameterSpec } from '../types';
import { isObject, JSONObject } from './jsonSchema';

/** Schema, uiSchema and defaults of one entry point's parameter form. */
export interface IParameterForm {
  schema: JSONObject;
  uiSchema: JSONObject;
  /** Typed defaults (parameters without one are absent). */
  defaults: JSONObject;
}

/** How the server names each type in its messages. */
const TYPE_WORDS: Record<IParameterSpec['type'], string> = {
  int: 'an int',
  float: 'a float',
  string: 'a string',
  path: 'a path',
  uri: 'a URI'
};

const INT_RE = /^[+-]?\d+$/;
const URI_RE = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/** Keywords ajv (draft-07, as rjsf's validator uses) must not see. */
function cleanProperty(prop: JSONObject): JSONObject {
  const out: JSONObject = {};
  for (const [key, value] of Object.entries(prop)) {
    if (key.startsWith('x-') || key === '$schema') {
      continue;
    }
    // "path" is not a JSON Schema format; the server checks paths itself.
    if (key === 'format' && value === 'path') {
      continue;
    }
    out[key] = value;
  }
  return out;
}

/**
 * The form of `ep`: one typed input per parameter, in MLproject order,
 * defaults shown as values and placeholders.
 */
export function parameterForm(ep: IEntryPoint): IParameterForm {
  const source = isObject(ep.json_schema) ? ep.json_schema : {};
  const props = isObject(source.properties) ? source.properties : {};
  const properties: JSONObject = {};
  const uiSchema: JSONObject = { 'ui:order': ep.parameters.map(p => p.name) };
  const defaults: JSONObject = {};
  for (const spec of ep.parameters) {
    const prop = cleanProperty(isObject(props[spec.name]) ? (props[spec.name] as JSONObject) : {});
    // rjsf draws "*" for required; the type hint goes in the label.
    prop.title = `${spec.name} (${spec.type})`;
    properties[spec.name] = prop;
    if (prop.default !== undefined) {
      defaults[spec.name] = prop.default;
    }
    const ui: JSONObject = {};
    if (spec.default === null) {
      ui['ui:placeholder'] = TYPE_WORDS[spec.type];
    }
    if (spec.type === 'uri') {
      // Plain text: MLflow URIs (runs:/…, models:/…) are not browser URLs.
      ui['ui:widget'] = 'text';
    }
    uiSchema[spec.name] = ui;
  }
  const schema: JSONObject = {
    type: 'object',
    properties,
    required: ep.parameters.filter(p => p.required).map(p => p.name),
    additionalProperties: false
  };
  // The command (the schema's description) is shown by the entry point picker.
  return { schema, uiSchema, defaults };
}

function show(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : String(value);
}

function valueError(type: IParameterSpec['type'], value: unknown): boolean {
  if (typeof value === 'boolean') {
    return type !== 'string';
  }
  if (typeof value !== 'string' && typeof value !== 'number') {
    return true;
  }
  switch (type) {
    case 'int':
      return typeof value === 'number' ? !Number.isInteger(value) : !INT_RE.test(value);
    case 'float':
      return typeof value === 'number'
        ? !Number.isFinite(value)
        : value.trim() !== value ||
            value.includes('_') ||
            value === '' ||
            Number.isNaN(Number(value));
    case 'uri':
      return !URI_RE.test(String(value));
    default:
      return false;
  }
}

/**
 * Why `value` is not acceptable for `spec`, worded as the server words it
 * (null when it is). Empty values count as "not given".
 */
export function parameterError(spec: IParameterSpec, value: unknown): string | null {
  if (value === undefined || value === null || (value === '' && spec.type !== 'string')) {
    return spec.default === null
      ? `parameter '${spec.name}' is required (${spec.type}, no default)`
      : null;
  }
  if (valueError(spec.type, value)) {
    return `parameter '${spec.name}' must be ${TYPE_WORDS[spec.type]}, got ${show(value)}`;
  }
  return null;
}

/** Every parameter problem of `values`, by parameter name. */
export function parameterErrors(ep: IEntryPoint, values: JSONObject): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const spec of ep.parameters) {
    const error = parameterError(spec, values[spec.name]);
    if (error) {
      errors[spec.name] = error;
    }
  }
  return errors;
}

/** The `parameters` of a submit request: given values only, as JSON scalars. */
export function parametersToSubmit(
  ep: IEntryPoint,
  values: JSONObject
): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const spec of ep.parameters) {
    const value = values[spec.name];
    if (value === undefined || value === null) {
      continue;
    }
    if (value === '' && spec.type !== 'string') {
      continue;
    }
    out[spec.name] = typeof value === 'number' ? value : valueText(value);
  }
  return out;
}

/**
 * Form values from a run's parameters (strings, as MLflow logs them):
 * numbers for int/float parameters when they parse, the text otherwise.
 */
export function parametersFromRun(ep: IEntryPoint, given: Record<string, string>): JSONObject {
  const out: JSONObject = {};
  for (const spec of ep.parameters) {
    const text = given[spec.name];
    if (text === undefined) {
      continue;
    }
    if (spec.type === 'int' && INT_RE.test(text)) {
      out[spec.name] = Number(text);
    } else if (spec.type === 'float' && text.trim() !== '' && !Number.isNaN(Number(text))) {
      out[spec.name] = Number(text);
    } else {
      out[spec.name] = text;
    }
  }
  return out;
}
