/**
 * Client of the registry and deployment endpoints (handlers/models.py,
 * handlers/deployments.py).
 */
import { requestAPI } from '../api';
import { IInvocation } from './request';
import {
  IDeployment,
  IDeployRequest,
  IModelVersion,
  IModelVersionDetail,
  IRegisteredModel,
  IRegisterRequest
} from './types';

const enc = encodeURIComponent;

function post<T>(path: string, body: unknown): Promise<T> {
  return requestAPI<T>(path, { method: 'POST', body: JSON.stringify(body) });
}

/** Every registered model (without versions). */
export async function listModels(): Promise<IRegisteredModel[]> {
  return (await requestAPI<{ models: IRegisteredModel[] }>('models')).models;
}

/** A model with its versions, newest first. @throws {HpcmlApiError} 404 unknown */
export function getModel(name: string): Promise<IRegisteredModel> {
  return requestAPI<IRegisteredModel>(`models/${enc(name)}`);
}

/** A version with its source run, metrics, flavors, input example and deployments. */
export function getModelVersion(name: string, version: string): Promise<IModelVersionDetail> {
  return requestAPI<IModelVersionDetail>(`models/${enc(name)}/versions/${enc(version)}`);
}

/**
 * Register a run's logged model as a new version of `name`.
 *
 * @throws {HpcmlApiError} 400 when the run has no model at that path
 */
export function registerModel(req: IRegisterRequest): Promise<IModelVersion> {
  return post<IModelVersion>('models', req);
}

/** Point `alias` at `version` (moved from wherever it was). */
export function setAlias(name: string, alias: string, version: string): Promise<IModelVersion> {
  return requestAPI<IModelVersion>(`models/${enc(name)}/aliases/${enc(alias)}`, {
    method: 'PUT',
    body: JSON.stringify({ version })
  });
}

/** Every deployment, newest first. */
export async function listDeployments(): Promise<IDeployment[]> {
  return (await requestAPI<{ deployments: IDeployment[] }>('deployments')).deployments;
}

/**
 * Start a serving job.
 *
 * @throws {HpcmlApiError} 409 when an active deployment has that name; 400
 *   for an unknown model or alias, a model that cannot be served, a backend
 *   that cannot tunnel
 */
export function deploy(req: IDeployRequest): Promise<IDeployment> {
  return post<IDeployment>('deployments', req);
}

export function stopDeployment(name: string): Promise<IDeployment> {
  return post<IDeployment>(`deployments/${enc(name)}/stop`, {});
}

/**
 * Score a payload with a READY deployment: the scoring server's answer.
 *
 * @throws {HpcmlApiError} the scoring server's 4xx with its message; 409 when
 *   not READY; 413 too large; 504 timeout
 */
export function invoke(name: string, invocation: IInvocation): Promise<unknown> {
  return requestAPI<unknown>(`deployments/${enc(name)}/invocations`, {
    method: 'POST',
    headers: { 'Content-Type': invocation.contentType },
    body: invocation.body
  });
}
