import { errorFromResponse, formatProblem, HpcmlApiError } from '../errors';

describe('formatProblem', () => {
  it('prefixes file, line and key like the server', () => {
    expect(
      formatProblem({
        message: 'must be a positive integer',
        file: 'hpc.yaml',
        line: 4,
        key: 'Resources.Nodes'
      })
    ).toBe('hpc.yaml:4: Resources.Nodes: must be a positive integer');
    expect(formatProblem({ message: 'bad', key: 'Queue' })).toBe('Queue: bad');
    expect(formatProblem({ message: 'bad' })).toBe('bad');
  });
});

describe('errorFromResponse', () => {
  it("carries the server's message and problems", () => {
    const body = JSON.stringify({
      message: 'Invalid backend configuration',
      problems: [{ message: 'unknown key', file: 'hpc.yaml', line: 2, key: 'Nodez' }]
    });
    const error = errorFromResponse(400, 'Bad Request', body);
    expect(error).toBeInstanceOf(HpcmlApiError);
    expect(error).toBeInstanceOf(Error);
    expect(error.status).toBe(400);
    expect(error.problems).toEqual([
      { message: 'unknown key', file: 'hpc.yaml', line: 2, key: 'Nodez' }
    ]);
    expect(error.message).toBe('Invalid backend configuration\nhpc.yaml:2: Nodez: unknown key');
  });

  it('does not repeat problems already in the message', () => {
    const body = JSON.stringify({
      message: 'Queue: bad',
      problems: [{ message: 'bad', key: 'Queue' }]
    });
    expect(errorFromResponse(400, 'Bad Request', body).message).toBe('Queue: bad');
  });

  it("falls back to jupyter_server's reason, then to the status line", () => {
    const reason = JSON.stringify({ message: '', reason: 'Not Found' });
    expect(errorFromResponse(404, '', reason).message).toBe('Not Found');
    const html = '<html>Bad Gateway</html>';
    const error = errorFromResponse(502, 'Bad Gateway', html);
    expect(error.message).toBe('502 Bad Gateway');
    expect(error.problems).toEqual([]);
  });
});
