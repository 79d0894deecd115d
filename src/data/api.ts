/**
 * Client of the data endpoints (handlers/data.py).
 */
import { requestAPI } from '../api';
import { IDataStageRequest, IDataView, IStaging } from './types';

const enc = encodeURIComponent;

/** `?project=P[&config=C]`: the local backend when no config is chosen. */
export function dataQuery(project: string, config: string): string {
  const query = new URLSearchParams({ project });
  if (config) {
    query.set('config', config);
  }
  return query.toString();
}

/** What Stage sends: every declared dataset unless `names` is given. */
export function stageRequest(project: string, config: string, names?: string[]): IDataStageRequest {
  return {
    project,
    backend_config: config || null,
    ...(names ? { names } : {})
  };
}

/** The project's datasets and their versions on the config's target. */
export function getData(project: string, config: string): Promise<IDataView> {
  return requestAPI<IDataView>(`data?${dataQuery(project, config)}`);
}

/**
 * Start staging (in the background on the server).
 *
 * @throws {HpcmlApiError} 400 for an unknown dataset, a missing source, a
 *   backend that cannot stage
 */
export function startStaging(req: IDataStageRequest): Promise<IStaging> {
  return requestAPI<IStaging>('data/stage', { method: 'POST', body: JSON.stringify(req) });
}

export function getStaging(id: string): Promise<IStaging> {
  return requestAPI<IStaging>(`data/stage/${enc(id)}`);
}

/**
 * Free a staged version on the config's target.
 *
 * @throws {HpcmlApiError} 409 while an active run reads it
 */
export async function deleteDataVersion(
  digest: string,
  project: string,
  config: string
): Promise<void> {
  await requestAPI<void>(`data/versions/${enc(digest)}?${dataQuery(project, config)}`, {
    method: 'DELETE'
  });
}
