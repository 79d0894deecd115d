/**
 * The resources and environment form, generated from the backend-config JSON
 * Schema (schema/backend-config.schema.json, served by the API), and the
 * conversions between a config file's sections, the form's data and the
 * per-run `overrides` of a submit request.
 */
import { valueText } from '../components/format';
import { clone, deepEqual, isObject, JSONObject } from './jsonSchema';

/** Top-level sections of a backend config the sidebar edits. */
export const CONFIG_SECTIONS = ['Resources', 'Environment'] as const;
export type ConfigSection = (typeof CONFIG_SECTIONS)[number];

export interface IConfigForm {
  schema: JSONObject;
  uiSchema: JSONObject;
}

/** Meta keywords ajv's draft-07 mode does not know (or rjsf cannot render). */
const DROPPED = new Set(['$schema', '$id', 'examples']);

/**
 * One form type for a union type: rjsf renders a single type per field.
 * Arrays win (a command list also takes one command); then strings (a
 * Runtime "1h" also takes 3600, a Python venv {Path} also a path string).
 */
function formType(types: string[]): string {
  const concrete = types.filter(t => t !== 'null');
  if (concrete.includes('array')) {
    return 'array';
  }
  if (concrete.includes('string')) {
    return 'string';
  }
  return concrete[0] ?? 'string';
}

const KEYWORDS_BY_TYPE: Record<string, string[]> = {
  string: ['minLength', 'maxLength', 'pattern', 'format', 'enum', 'const'],
  array: ['items', 'minItems', 'maxItems', 'uniqueItems'],
  object: ['properties', 'required', 'additionalProperties', 'propertyNames'],
  integer: ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'],
  number: ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']
};
const TYPED_KEYWORDS = new Set(Object.values(KEYWORDS_BY_TYPE).flat());

/**
 * A copy of a schema node that rjsf can render: union types narrowed to one
 * form type (keywords of the other types dropped), meta keywords removed.
 */
export function simplifySchema(node: unknown): unknown {
  if (Array.isArray(node)) {
    return node.map(simplifySchema);
  }
  if (!isObject(node)) {
    return node;
  }
  let type = node.type;
  let allowed: Set<string> | null = null;
  if (Array.isArray(type)) {
    type = formType(type as string[]);
    allowed = new Set(KEYWORDS_BY_TYPE[type as string] ?? []);
  }
  const out: JSONObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (DROPPED.has(key)) {
      continue;
    }
    if (allowed && TYPED_KEYWORDS.has(key) && !allowed.has(key)) {
      continue;
    }
    if (key === 'properties' && isObject(value)) {
      out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, simplifySchema(v)]));
    } else if (key === '$defs' && isObject(value)) {
      out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, simplifySchema(v)]));
    } else {
      out[key] = simplifySchema(value);
    }
  }
  if (type !== undefined) {
    out.type = type;
  }
  return out;
}

/**
 * The Resources + Environment form of the backend-config schema. `$ref`s
 * into `$defs` are inlined so that each field is rendered with the title
 * and description the property gives it.
 */
export function configForm(fullSchema: JSONObject): IConfigForm {
  const defs = isObject(fullSchema.$defs) ? fullSchema.$defs : {};
  const props = isObject(fullSchema.properties) ? fullSchema.properties : {};
  const inline = (node: unknown): unknown => {
    if (Array.isArray(node)) {
      return node.map(inline);
    }
    if (!isObject(node)) {
      return node;
    }
    let out: JSONObject = {};
    for (const [key, value] of Object.entries(node)) {
      out[key] = inline(value);
    }
    const ref = node.$ref;
    if (typeof ref === 'string' && ref.startsWith('#/$defs/')) {
      const target = defs[ref.slice('#/$defs/'.length)];
      const { $ref: _ignored, ...rest } = out;
      void _ignored;
      out = { ...(inline(target) as JSONObject), ...rest };
    }
    return out;
  };
  const properties: JSONObject = {};
  const uiSchema: JSONObject = { 'ui:order': [...CONFIG_SECTIONS] };
  for (const section of CONFIG_SECTIONS) {
    if (props[section] !== undefined) {
      properties[section] = simplifySchema(inline(props[section]));
    }
  }
  const env = properties.Environment;
  if (isObject(env) && isObject(env.properties)) {
    // Multi-line inputs for shell commands.
    const ui: JSONObject = {};
    for (const key of Object.keys(env.properties)) {
      if (key.endsWith('Command') || /CommandOn/.test(key)) {
        ui[key] = { items: { 'ui:widget': 'textarea' } };
      }
    }
    uiSchema.Environment = ui;
  }
  return {
    schema: { type: 'object', properties, additionalProperties: false },
    uiSchema
  };
}

/** Form data of one value: what the form's single type can show. */
function coerce(value: unknown, schema: unknown): unknown {
  if (value === undefined || value === null || !isObject(schema)) {
    return value === null ? undefined : value;
  }
  switch (schema.type) {
    case 'array': {
      const items = Array.isArray(value) ? value : [value];
      return items.map(item => coerce(item, schema.items));
    }
    case 'string':
      if (isObject(value) && typeof value.Path === 'string') {
        return value.Path; // Environment.Python: {Path: …}
      }
      return valueText(value);
    case 'object': {
      if (!isObject(value)) {
        return value;
      }
      const props = isObject(schema.properties) ? schema.properties : {};
      const out: JSONObject = {};
      for (const [key, item] of Object.entries(value)) {
        const sub = props[key] ?? schema.additionalProperties;
        const coerced = coerce(item, sub);
        if (coerced !== undefined) {
          out[key] = coerced;
        }
      }
      return out;
    }
    default:
      return value;
  }
}

/**
 * The form data of a config (as read from its file, or a run's
 * `backend_config`): its Resources and Environment, converted to the form's
 * types (a Runtime of 3600 becomes "3600", one command a list of one).
 */
export function configToFormData(
  config: JSONObject | null | undefined,
  form: IConfigForm
): JSONObject {
  const props = isObject(form.schema.properties) ? form.schema.properties : {};
  const out: JSONObject = {};
  for (const section of CONFIG_SECTIONS) {
    const value = config?.[section];
    if (isObject(value)) {
      out[section] = coerce(value, props[section]);
    }
  }
  return out;
}

function isEmpty(value: unknown): boolean {
  return (
    value === undefined ||
    value === null ||
    value === '' ||
    (Array.isArray(value) && value.length === 0) ||
    (isObject(value) && Object.keys(value).length === 0)
  );
}

/** Drop empty strings, lists and objects, and undefined values (rjsf leaves them). */
export function pruneEmpty(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(pruneEmpty).filter(item => item !== undefined && item !== '');
  }
  if (isObject(value)) {
    const out: JSONObject = {};
    for (const [key, item] of Object.entries(value)) {
      const pruned = pruneEmpty(item);
      if (!isEmpty(pruned)) {
        out[key] = pruned;
      }
    }
    return out;
  }
  return value;
}

/**
 * The per-run `overrides` (nested form) that turn `original` into `edited`:
 * changed leaves with their new value, removed keys with null (the server's
 * "remove"); arrays are replaced whole. Null when nothing changed.
 */
export function configOverrides(original: JSONObject, edited: JSONObject): JSONObject | null {
  const diff = (a: unknown, b: unknown): unknown => {
    if (deepEqual(a, b)) {
      return undefined;
    }
    if (isObject(a) && isObject(b)) {
      const out: JSONObject = {};
      for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
        const d = diff(a[key], b[key]);
        if (d !== undefined) {
          out[key] = d;
        }
      }
      return out;
    }
    return b === undefined ? null : clone(b);
  };
  const result = diff(pruneEmpty(original), pruneEmpty(edited));
  return isObject(result) && Object.keys(result).length > 0 ? result : null;
}

/**
 * The sections to write with "Save to config file": each edited section
 * whole (null when the user emptied it), only those that changed.
 */
export function sectionsToSave(
  original: JSONObject,
  edited: JSONObject
): Partial<Record<ConfigSection, JSONObject | null>> {
  const a = pruneEmpty(original) as JSONObject;
  const b = pruneEmpty(edited) as JSONObject;
  const out: Partial<Record<ConfigSection, JSONObject | null>> = {};
  for (const section of CONFIG_SECTIONS) {
    if (!deepEqual(a[section], b[section])) {
      out[section] = isObject(b[section]) ? b[section] : null;
    }
  }
  return out;
}
