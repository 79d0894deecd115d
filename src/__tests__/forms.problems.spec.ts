import { errorCount, keepUnchanged, problemsToErrors, toErrorSchema } from '../forms/problems';

describe('problemsToErrors (server problems → fields)', () => {
  const errors = problemsToErrors([
    { message: "parameter 'epochs' must be an int, got 'x'", key: 'parameters.epochs' },
    { message: 'must be at least 1', key: 'Resources.Nodes', file: 'local.yaml', line: 4 },
    { message: 'unknown entry point', key: 'entry_point' },
    { message: 'bad override', key: 'overrides.Environment.Python' },
    { message: 'Local: unknown key', key: 'Local.Foo', file: 'c.yaml', line: 2 },
    { message: 'no key at all' }
  ]);

  it('sorts each problem to its field', () => {
    expect(errors.parameters).toEqual({
      epochs: ["parameter 'epochs' must be an int, got 'x'"]
    });
    expect(errors.config).toEqual({
      'Resources.Nodes': ['must be at least 1'],
      'Environment.Python': ['bad override']
    });
    expect(errors.fields).toEqual({ entry_point: ['unknown entry point'] });
    expect(errors.general).toEqual(['c.yaml:2: Local.Foo: Local: unknown key', 'no key at all']);
    expect(errorCount(errors)).toBe(6);
  });

  it('builds rjsf extraErrors', () => {
    expect(toErrorSchema(errors.config)).toEqual({
      Resources: { Nodes: { __errors: ['must be at least 1'] } },
      Environment: { Python: { __errors: ['bad override'] } }
    });
  });

  it('drops the error of a field once it is edited', () => {
    const before = { Resources: { Nodes: 0 }, Environment: { Python: 'a' } };
    const after = { Resources: { Nodes: 2 }, Environment: { Python: 'a' } };
    expect(keepUnchanged(errors.config, before, after)).toEqual({
      'Environment.Python': ['bad override']
    });
  });
});
