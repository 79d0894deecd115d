/**
 * What the Models tab's dialogs and Try it send: the register and deploy
 * requests built from their drafts, what is refused before sending, and an
 * invocation's body and Content-Type. Pure.
 */
import { IDeployRequest, IRegisterRequest, PayloadFormat } from './types';

/** The "Register model…" dialog's fields. */
export interface IRegisterDraft {
  name: string;
  path: string;
  alias: string;
  description: string;
}

/** The Deploy dialog's fields ('' config: the local backend). */
export interface IDeployDraft {
  name: string;
  project: string;
  config: string;
  replicas: string;
}

/** Problems of a draft by request key ('' for none in particular). */
export type DraftProblems = Record<string, string>;

const DEPLOYMENT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const MAX_REPLICAS = 8;

export function defaultRegisterDraft(projectName: string): IRegisterDraft {
  return { name: projectName, path: 'model', alias: '', description: '' };
}

/** POST models: trimmed, the optional fields only when given. */
export function registerRequest(runId: string, draft: IRegisterDraft): IRegisterRequest {
  const alias = draft.alias.trim();
  const description = draft.description.trim();
  return {
    run_id: runId,
    name: draft.name.trim(),
    path: draft.path.trim() || 'model',
    ...(alias ? { alias } : {}),
    ...(description ? { description } : {})
  };
}

export function registerProblems(draft: IRegisterDraft): DraftProblems {
  return draft.name.trim() ? {} : { name: 'A model name is needed.' };
}

/** A deployment name the server accepts, made of a model name ("Digits v2" → "digits-v2"). */
export function deploymentName(modelName: string): string {
  const slug = modelName
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return slug || 'model';
}

/** `models:/<name>/<version>`: the exact version, not an alias that may move. */
export function versionUri(name: string, version: string): string {
  return `models:/${name}/${version}`;
}

export function defaultDeployDraft(modelName: string, project: string): IDeployDraft {
  return { name: deploymentName(modelName), project, config: '', replicas: '1' };
}

export function deployProblems(draft: IDeployDraft): DraftProblems {
  const problems: DraftProblems = {};
  const name = draft.name.trim();
  if (name && !DEPLOYMENT_NAME.test(name)) {
    problems.name =
      'Lower-case letters, digits and dashes, starting with a letter or digit (at most 63).';
  }
  const replicas = Number(draft.replicas);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > MAX_REPLICAS) {
    problems.replicas = `A whole number from 1 to ${MAX_REPLICAS}.`;
  }
  return problems;
}

/** POST deployments for one version; project and config only when chosen. */
export function deployRequest(
  modelName: string,
  version: string,
  draft: IDeployDraft
): IDeployRequest {
  const name = draft.name.trim();
  const project = draft.project.trim();
  return {
    model_uri: versionUri(modelName, version),
    ...(name ? { name } : {}),
    ...(project ? { project } : {}),
    ...(project && draft.config ? { backend_config: draft.config } : {}),
    replicas: Number(draft.replicas)
  };
}

/** The body of an invocation and its Content-Type. */
export interface IInvocation {
  contentType: 'application/json' | 'text/csv';
  body: string;
}

/**
 * What Send posts for `text` in `format`.
 *
 * @throws {Error} for an empty payload or JSON that does not parse (said
 *   here rather than by the scoring server)
 */
export function invocation(format: PayloadFormat, text: string): IInvocation {
  const body = text.trim();
  if (!body) {
    throw new Error('Nothing to send: enter a payload.');
  }
  if (format === 'csv') {
    return { contentType: 'text/csv', body: `${body}\n` };
  }
  try {
    JSON.parse(body);
  } catch (error) {
    throw new Error(`Not valid JSON: ${(error as Error).message}`);
  }
  return { contentType: 'application/json', body };
}
