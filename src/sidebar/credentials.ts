/**
 * Credentials the server asks for (FirecREST, UNICORE): recognising its
 * `credentials_missing` answer, plain-word labels of the fields, and the
 * ask → PUT → ask again (with the server's problems) loop. No DOM: the
 * dialog is passed in. Values live only in the dialog's inputs and the PUT
 * request; nothing here keeps, stores or logs them.
 */
import type { TranslationBundle } from '@jupyterlab/translation';

import { setCredentials } from '../api';
import { HpcmlApiError } from '../errors';
import { IProblem } from '../types';

/** What the server said it lacks. */
export interface ICredentialsNeeded {
  /** Backend kind: `firecrest` or `unicore`. */
  kind: string;
  connection: string;
  /** Alternative complete sets of fields, e.g. [[username, password], [token]]. */
  fields: string[][];
  /** The server's own words (which environment variables would do too). */
  message: string;
  /** The API the credentials (or the token they yield) are sent to. */
  apiUrl?: string;
  /** FirecREST: the OIDC token endpoint a client secret is posted to. */
  tokenUrl?: string;
}

/** What the dialog answers on OK: the chosen set (index) and its values. */
export interface ICredentialsEntry {
  choice: number;
  values: Record<string, string>;
}

/** Open the dialog; null when the user cancels. */
export type AskCredentials = (
  needed: ICredentialsNeeded,
  problems: IProblem[],
  choice: number
) => Promise<ICredentialsEntry | null>;

/** The `credentials_missing` details of a failed request, else null. */
export function credentialsNeeded(error: unknown): ICredentialsNeeded | null {
  if (
    !(error instanceof HpcmlApiError) ||
    error.status !== 400 ||
    error.reason !== 'credentials_missing'
  ) {
    return null;
  }
  const { kind, connection, fields, apiUrl, tokenUrl } = error;
  if (!kind || !connection || !fields?.length) {
    return null;
  }
  return { kind, connection, fields, message: error.message, apiUrl, tokenUrl };
}

/**
 * Where the secret of a set of fields is sent: a FirecREST client secret to
 * the token endpoint, anything else (API key, password, token) to the API.
 * Null when the server did not say.
 */
export function secretDestination(needed: ICredentialsNeeded, set: string[]): string | null {
  if (set.includes('client_secret') && needed.tokenUrl) {
    return needed.tokenUrl;
  }
  return needed.apiUrl ?? null;
}

/**
 * The dialog's sentence saying where the entered secret goes (and that it goes
 * nowhere else); empty when the server did not say.
 */
export function destinationText(
  needed: ICredentialsNeeded,
  set: string[],
  trans: TranslationBundle
): string {
  const to = secretDestination(needed, set);
  if (!to) {
    return '';
  }
  if (set.includes('client_secret') && to === needed.tokenUrl) {
    return needed.apiUrl
      ? trans.__(
          'The client secret is sent only to the token endpoint %1; the access token it yields, only to the API %2.',
          to,
          needed.apiUrl
        )
      : trans.__('The client secret is sent only to the token endpoint %1.', to);
  }
  if (set.includes('password')) {
    return trans.__('The password is sent only to %1.', to);
  }
  if (set.includes('token')) {
    return trans.__('The bearer token is sent only to %1.', to);
  }
  if (set.includes('api_key')) {
    return trans.__('The API key is sent only to %1.', to);
  }
  return trans.__('These credentials are sent only to %1.', to);
}

/**
 * Fields typed into a password input: password, client_secret, token,
 * api_key, and any field the UI does not know.
 */
export function isSecretField(name: string): boolean {
  return !['username', 'client_id'].includes(name);
}

export function kindLabel(kind: string): string {
  return { firecrest: 'FirecREST', unicore: 'UNICORE' }[kind] ?? kind;
}

export function fieldLabel(name: string, trans: TranslationBundle): string {
  const labels: Record<string, string> = {
    username: trans.__('User name'),
    password: trans.__('Password'),
    token: trans.__('Bearer token'),
    client_id: trans.__('Client ID'),
    client_secret: trans.__('Client secret'),
    api_key: trans.__('API key')
  };
  return labels[name] ?? name;
}

export function fieldSetLabel(set: string[], trans: TranslationBundle): string {
  const key = set.join('+');
  if (key === 'username+password') {
    return trans.__('User name and password');
  }
  if (key === 'client_id+client_secret') {
    return trans.__('Client ID and secret');
  }
  return set.map(name => fieldLabel(name, trans)).join(', ');
}

/** The field a problem of PUT credentials is about (key `values.<field>`), if any. */
export function problemField(problem: IProblem): string | null {
  const match = /^values\.(.+)$/.exec(problem.key ?? '');
  return match ? match[1] : null;
}

/**
 * Ask for credentials and hand them to the server until it accepts them
 * (true) or the user cancels (false). A 400 answer re-opens the dialog with
 * its problems; any other failure is thrown.
 *
 * @param target - project and backend config, as in the submission
 */
export async function enterCredentials(
  needed: ICredentialsNeeded,
  target: { project: string; backend_config: string },
  ask: AskCredentials
): Promise<boolean> {
  let problems: IProblem[] = [];
  let choice = 0;
  for (;;) {
    const entry = await ask(needed, problems, choice);
    if (!entry) {
      return false;
    }
    choice = entry.choice;
    try {
      await setCredentials({ ...target, values: entry.values });
      return true;
    } catch (error) {
      if (!(error instanceof HpcmlApiError) || error.status !== 400) {
        throw error;
      }
      problems = error.problems.length > 0 ? error.problems : [{ message: error.message }];
    }
  }
}
