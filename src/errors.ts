/**
 * Errors of the REST client, carrying what the server said went wrong.
 */
import { IErrorBody, IProblem } from './types';

/** Fields of an error body besides `message` and `problems`. */
export type ErrorDetails = Pick<
  IErrorBody,
  'reason' | 'kind' | 'connection' | 'fields' | 'api_url' | 'token_url'
>;

/** An answer of the server extension with an error status. */
export class HpcmlApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly problems: IProblem[] = [],
    details: ErrorDetails = {}
  ) {
    super(message);
    this.name = 'HpcmlApiError';
    this.reason = details.reason;
    this.kind = details.kind;
    this.connection = details.connection;
    this.fields = details.fields;
    this.apiUrl = details.api_url;
    this.tokenUrl = details.token_url;
  }

  /** Machine-readable cause, e.g. `credentials_missing`. */
  readonly reason?: string;
  /** With `credentials_missing`: the backend kind (`firecrest`, `unicore`). */
  readonly kind?: string;
  /** With `credentials_missing`: the connection that lacks credentials. */
  readonly connection?: string;
  /** With `credentials_missing`: alternative complete sets of field names. */
  readonly fields?: string[][];
  /** With `credentials_missing`: the API the credentials (or their token) go to. */
  readonly apiUrl?: string;
  /** With `credentials_missing` (FirecREST): the token endpoint a client secret goes to. */
  readonly tokenUrl?: string;
}

/** One problem as one line, like the server's `str(Problem)`. */
export function formatProblem(problem: IProblem): string {
  let where = problem.file ?? '';
  if (problem.line !== null && problem.line !== undefined) {
    where += `:${problem.line}`;
  }
  const prefix = [where, problem.key ?? ''].filter(part => part).join(': ');
  return prefix ? `${prefix}: ${problem.message}` : problem.message;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function toProblem(value: unknown): IProblem | null {
  if (typeof value === 'string') {
    return { message: value };
  }
  if (isRecord(value) && typeof value.message === 'string') {
    return {
      message: value.message,
      file: typeof value.file === 'string' ? value.file : null,
      line: typeof value.line === 'number' ? value.line : null,
      key: typeof value.key === 'string' ? value.key : null
    };
  }
  return null;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value ? value : undefined;
}

/** A list of lists of strings, else undefined. */
function fieldSets(value: unknown): string[][] | undefined {
  const isSet = (v: unknown): v is string[] =>
    Array.isArray(v) && v.length > 0 && v.every(f => typeof f === 'string' && f);
  return Array.isArray(value) && value.length > 0 && value.every(isSet)
    ? value.map(set => [...set])
    : undefined;
}

/** Read an error body (`message`, `problems`, `reason`, ...), tolerating any JSON. */
export function readErrorBody(body: unknown): IErrorBody {
  if (!isRecord(body)) {
    return {};
  }
  const problems = Array.isArray(body.problems)
    ? body.problems.map(toProblem).filter((p): p is IProblem => p !== null)
    : [];
  // jupyter_server's own error pages answer {"message": ..., "reason": ...}.
  const message =
    typeof body.message === 'string' && body.message
      ? body.message
      : typeof body.reason === 'string' && body.reason
        ? body.reason
        : undefined;
  return {
    message,
    problems,
    reason: text(body.reason),
    kind: text(body.kind),
    connection: text(body.connection),
    fields: fieldSets(body.fields),
    api_url: text(body.api_url),
    token_url: text(body.token_url)
  };
}

/**
 * Turn an error answer into an `HpcmlApiError`.
 *
 * @param status - the HTTP status
 * @param statusText - the HTTP reason phrase, used when the body says nothing
 * @param text - the raw answer body (JSON or not)
 */
export function errorFromResponse(status: number, statusText: string, text: string): HpcmlApiError {
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  const { message, problems = [], ...extra } = readErrorBody(parsed);
  const details = problems.map(formatProblem).join('\n');
  let summary: string;
  if (!message) {
    summary = details || `${status} ${statusText}`.trim();
  } else if (details && !message.includes(details)) {
    summary = `${message}\n${details}`;
  } else {
    summary = message;
  }
  return new HpcmlApiError(summary, status, problems, extra);
}

/** What an error says, for a status line (anything thrown, not only Errors). */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
