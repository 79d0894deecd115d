/**
 * Errors of the REST client, carrying what the server said went wrong.
 */
import { IErrorBody, IProblem } from './types';

/** An answer of the server extension with an error status. */
export class HpcmlApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly problems: IProblem[] = []
  ) {
    super(message);
    this.name = 'HpcmlApiError';
  }
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

/** Read the `message` and `problems` of an error body, tolerating any JSON. */
export function readErrorBody(body: unknown): IErrorBody {
  if (!isRecord(body)) {
    return {};
  }
  const problems = Array.isArray(body.problems)
    ? body.problems
        .map(toProblem)
        .filter((p): p is IProblem => p !== null)
    : [];
  // jupyter_server's own error pages answer {"message": ..., "reason": ...}.
  const message =
    typeof body.message === 'string' && body.message
      ? body.message
      : typeof body.reason === 'string' && body.reason
        ? body.reason
        : undefined;
  return { message, problems };
}

/**
 * Turn an error answer into an `HpcmlApiError`.
 *
 * @param status - the HTTP status
 * @param statusText - the HTTP reason phrase, used when the body says nothing
 * @param text - the raw answer body (JSON or not)
 */
export function errorFromResponse(
  status: number,
  statusText: string,
  text: string
): HpcmlApiError {
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  const { message, problems = [] } = readErrorBody(parsed);
  const details = problems.map(formatProblem).join('\n');
  let summary: string;
  if (!message) {
    summary = details || `${status} ${statusText}`.trim();
  } else if (details && !message.includes(details)) {
    summary = `${message}\n${details}`;
  } else {
    summary = message;
  }
  return new HpcmlApiError(summary, status, problems);
}
