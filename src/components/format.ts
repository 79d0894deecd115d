/** Text of values whose type the server does not fix (form data, config fields, features). */

/** JSON for objects and arrays, `String()` for everything else. */
export function valueText(value: unknown): string {
  return typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);
}
