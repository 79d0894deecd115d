/**
 * Small JSON helpers shared by the form modules (no React, no JupyterLab).
 */

/** A JSON Schema (or any JSON object). */
export type JSONObject = Record<string, unknown>;

export function isObject(value: unknown): value is JSONObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Structural equality of JSON values (key order ignored). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) {
    return true;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a).filter(k => a[k] !== undefined);
    const other = Object.keys(b).filter(k => b[k] !== undefined);
    return keys.length === other.length && keys.every(k => deepEqual(a[k], b[k]));
  }
  return false;
}

/** Deep copy of a JSON value. */
export function clone<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/** The value at a dotted-path (as an array of keys), or undefined. */
export function getPath(data: unknown, path: readonly string[]): unknown {
  let node: unknown = data;
  for (const key of path) {
    if (!isObject(node)) {
      return undefined;
    }
    node = node[key];
  }
  return node;
}

/**
 * A copy of `data` with `path` set to `value` (removed when undefined);
 * emptied parent objects are removed too.
 */
export function setPath(data: JSONObject, path: readonly string[], value: unknown): JSONObject {
  if (path.length === 0) {
    return isObject(value) ? clone(value) : {};
  }
  const [head, ...rest] = path;
  const out: JSONObject = { ...data };
  if (rest.length === 0) {
    if (value === undefined) {
      delete out[head];
    } else {
      out[head] = clone(value);
    }
    return out;
  }
  const child = isObject(out[head]) ? out[head] : {};
  const updated = setPath(child, rest, value);
  if (Object.keys(updated).length === 0 && value === undefined) {
    delete out[head];
  } else {
    out[head] = updated;
  }
  return out;
}
