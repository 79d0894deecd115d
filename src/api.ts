/**
 * Typed client of the server extension's REST API (/hpcml/api/).
 */
import { ServerConnection } from '@jupyterlab/services';

import { errorFromResponse } from './errors';
import {
  ICredentialsAnswer,
  ICredentialsRequest,
  IDeleteResult,
  IFeaturesResponse,
  IFileInfo,
  ILogChunk,
  IMetricHistory,
  IMetricSummary,
  IProject,
  IRerunRequest,
  IRun,
  IRunList,
  IRunQuery,
  ISubmitRequest,
  ISweep,
  ISweepPreview,
  ISweepRequest,
  ISweepRerunRequest,
  ISweepView,
  LogStream
} from './types';
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

  const response = await ServerConnection.makeRequest(url, { ...init, headers }, settings);
  const text = await response.text();
  if (!response.ok) {
    throw errorFromResponse(response.status, response.statusText, text);
  }
  return (text ? JSON.parse(text) : undefined) as T;
}

/** What each backend kind can do, and the server's version. */
export function getFeatures(settings?: ServerConnection.ISettings): Promise<IFeaturesResponse> {
  return requestAPI<IFeaturesResponse>('features', {}, settings);
}

function query(params: Record<string, unknown>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') {
      continue;
    }
    for (const item of Array.isArray(value) ? value : [value]) {
      search.append(key, String(item));
    }
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

function post<T>(path: string, body: unknown): Promise<T> {
  return requestAPI<T>(path, { method: 'POST', body: JSON.stringify(body) });
}

const enc = encodeURIComponent;

/** Runs newest first, paged and filtered. */
export function listRuns(q: IRunQuery = {}): Promise<IRunList> {
  return requestAPI<IRunList>(`runs${query({ ...q })}`);
}

export function getRun(id: string): Promise<IRun> {
  return requestAPI<IRun>(`runs/${enc(id)}`);
}

export function submitRun(req: ISubmitRequest): Promise<IRun> {
  return post<IRun>('runs', req);
}

export function cancelRun(id: string): Promise<IRun> {
  return post<IRun>(`runs/${enc(id)}/cancel`, {});
}

export function rerun(id: string, req: IRerunRequest = {}): Promise<IRun> {
  return post<IRun>(`runs/${enc(id)}/rerun`, req);
}

/**
 * Delete an ended run (record, local run directory); `deleteMlflow` also
 * soft-deletes its MLflow run.
 *
 * @throws {HpcmlApiError} 409 while the run is active (cancel it first)
 */
export function deleteRun(id: string, deleteMlflow = false): Promise<IDeleteResult> {
  return requestAPI<IDeleteResult>(
    `runs/${enc(id)}${query({ delete_mlflow: deleteMlflow ? 'true' : undefined })}`,
    { method: 'DELETE' }
  );
}

/** Hide an ended run from default listings, or show it again. */
export function setArchived(id: string, archived: boolean): Promise<IRun> {
  return post<IRun>(`runs/${enc(id)}/${archived ? 'archive' : 'unarchive'}`, {});
}

/** Bytes of a log from `offset`; ask again with `next_offset`. */
export function getLogChunk(
  id: string,
  stream: LogStream,
  offset = 0,
  maxBytes = 256 * 1024
): Promise<ILogChunk> {
  return requestAPI<ILogChunk>(
    `runs/${enc(id)}/logs/${stream}${query({ offset, max_bytes: maxBytes })}`
  );
}

export async function listArtifacts(id: string, path = ''): Promise<IFileInfo[]> {
  const answer = await requestAPI<{ artifacts: IFileInfo[] }>(
    `runs/${enc(id)}/artifacts${query({ path })}`
  );
  return answer.artifacts;
}

/** URL of an artifact file (for a download link; the browser sends the cookie + XSRF). */
export function artifactUrl(
  id: string,
  path: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  return apiUrl(settings.baseUrl, `runs/${enc(id)}/artifacts/download${query({ path })}`);
}

export async function listMetrics(id: string): Promise<IMetricSummary[]> {
  const answer = await requestAPI<{ metrics: IMetricSummary[] }>(`runs/${enc(id)}/metrics`);
  return answer.metrics;
}

export function getMetricHistory(
  id: string,
  key: string,
  maxPoints = 1000,
  x: 'step' | 'time' = 'step'
): Promise<IMetricHistory> {
  return requestAPI<IMetricHistory>(
    `runs/${enc(id)}/metrics/${key.split('/').map(enc).join('/')}${query({
      max_points: maxPoints,
      x
    })}`
  );
}

/** The MLflow project at or above `path` (relative to the server root). */
export function getProject(path: string): Promise<IProject> {
  return requestAPI<IProject>(`project${query({ path })}`);
}

/** The JSON Schema of backend config files. */
export function getBackendConfigSchema(): Promise<Record<string, unknown>> {
  return requestAPI<Record<string, unknown>>('schema/backend-config');
}

/**
 * Hand FirecREST/UNICORE credentials to the server, which keeps them in its
 * memory only (for the connection of `backend_config`) and never echoes them.
 *
 * @throws {HpcmlApiError} 400 with `problems` (keys `values.<field>`) for
 *   missing or unknown fields
 */
export function setCredentials(req: ICredentialsRequest): Promise<ICredentialsAnswer> {
  return requestAPI<ICredentialsAnswer>('credentials', {
    method: 'PUT',
    body: JSON.stringify(req)
  });
}

/** The connections whose credentials the server holds in memory, and where they go. */
export async function listCredentials(): Promise<ICredentialsAnswer[]> {
  const answer = await requestAPI<{ connections: ICredentialsAnswer[] }>('credentials');
  return answer.connections;
}

/** Make the server forget the credentials entered for `connection`. */
export async function forgetCredentials(connection: string): Promise<void> {
  await requestAPI<void>(`credentials${query({ connection })}`, { method: 'DELETE' });
}

/**
 * How many runs a sweep definition makes (and its first points).
 *
 * @throws {HpcmlApiError} 400 with `problems` keyed `parameters.<name>`
 */
export function previewSweep(req: ISweepRequest, signal?: AbortSignal): Promise<ISweepPreview> {
  return requestAPI<ISweepPreview>('sweeps/preview', {
    method: 'POST',
    body: JSON.stringify(req),
    signal
  });
}

/** Submit a sweep: every point is type-checked before anything is created. */
export function submitSweep(req: ISweepRequest): Promise<ISweep> {
  return post<ISweep>('sweeps', req);
}

/** A sweep with its children (by point index). */
export function getSweep(id: string): Promise<ISweepView> {
  return requestAPI<ISweepView>(`sweeps/${enc(id)}`);
}

/** Cancel every child still active. */
export function cancelSweep(id: string): Promise<ISweep> {
  return post<ISweep>(`sweeps/${enc(id)}/cancel`, {});
}

/** Re-run the failed children, as new children of the same sweep. */
export function rerunSweep(
  id: string,
  req: ISweepRerunRequest = { failed: true }
): Promise<ISweep> {
  return post<ISweep>(`sweeps/${enc(id)}/rerun`, req);
}
