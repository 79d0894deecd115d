/**
 * Typed client of the server extension's REST API (/hpcml/api/).
 */
import { ServerConnection } from '@jupyterlab/services';

import { errorFromResponse } from './errors';
import { IFeaturesResponse } from './types';
import { apiUrl } from './url';

/**
 * Call an API endpoint and return its JSON answer.
 *
 * `ServerConnection.makeRequest` adds the token and XSRF headers.
 *
 * @param path - the endpoint below /hpcml/api/, e.g. `features`
 * @param init - the fetch options (method, body, ...)
 * @param settings - the server connection, the page's own by default
 * @throws {HpcmlApiError} on an error status, with the server's `message`
 *   and `problems`
 * @throws {ServerConnection.NetworkError} when the server cannot be reached
 */
export async function requestAPI<T>(
  path = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = apiUrl(settings.baseUrl, path);
  const headers = new Headers(init.headers);
  if (typeof init.body === 'string' && !headers.has('Content-Type')) {
    headers.set('Content-Type', 'application/json');
  }

  const response = await ServerConnection.makeRequest(
    url,
    { ...init, headers },
    settings
  );
  const text = await response.text();
  if (!response.ok) {
    throw errorFromResponse(response.status, response.statusText, text);
  }
  return (text ? JSON.parse(text) : undefined) as T;
}

/** What each backend kind can do, and the server's version. */
export function getFeatures(
  settings?: ServerConnection.ISettings
): Promise<IFeaturesResponse> {
  return requestAPI<IFeaturesResponse>('features', {}, settings);
}
