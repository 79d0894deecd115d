/**
 * Where the REST API lives.
 */

/** Path of the API below the server's base URL. */
export const API_ROOT = 'hpcml/api';

/**
 * Build the absolute URL of an API endpoint.
 *
 * @param baseUrl - the Jupyter server's base URL, e.g. `http://host/user/me/`
 * @param path - the endpoint below /hpcml/api/, e.g. `runs/abc?x=1`
 */
export function apiUrl(baseUrl: string, path: string): string {
  const base = baseUrl.replace(/\/+$/, '');
  const endpoint = path.replace(/^\/+/, '');
  return endpoint ? `${base}/${API_ROOT}/${endpoint}` : `${base}/${API_ROOT}`;
}
