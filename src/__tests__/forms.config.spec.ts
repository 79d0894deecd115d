import validator from '@rjsf/validator-ajv8';

import schema from '../../schema/backend-config.schema.json';
import {
  configForm,
  configOverrides,
  configToFormData,
  sectionsToSave,
  simplifySchema
} from '../forms/configForm';
import { configErrorMessage, errorPath } from '../forms/configMessages';
import { JSONObject } from '../forms/jsonSchema';

const form = configForm(schema);
const props = form.schema.properties as Record<string, JSONObject>;
const resources = props.Resources.properties as Record<string, JSONObject>;
const environment = props.Environment.properties as Record<string, JSONObject>;

describe('configForm (backend-config JSON Schema → form)', () => {
  it('shows Resources and Environment only', () => {
    expect(Object.keys(props)).toEqual(['Resources', 'Environment']);
    expect(form.uiSchema['ui:order']).toEqual(['Resources', 'Environment']);
  });

  it('inlines $defs refs, keeping the property title and description', () => {
    expect(resources.Runtime.title).toBe('Runtime');
    expect(resources.Runtime.description).toMatch(/^Maximum wall-clock time/);
    expect(resources.Runtime.$ref).toBeUndefined();
    expect(resources.Runtime.pattern).toBeDefined();
  });

  it('narrows union types to one rjsf type', () => {
    expect(resources.Runtime.type).toBe('string');
    expect(resources.Runtime.minimum).toBeUndefined();
    expect(resources.MemoryPerNode.type).toBe('string');
    expect(resources.Nodes).toMatchObject({ type: 'integer', minimum: 1 });
    expect(environment.Python).toEqual(expect.objectContaining({ type: 'string', minLength: 1 }));
    expect(environment.Python.properties).toBeUndefined();
    expect(environment.PreRunCommandOnComputeNode.type).toBe('array');
    expect((environment.PreRunCommandOnComputeNode.items as JSONObject).type).toBe('string');
    expect((environment.Variables.additionalProperties as JSONObject).type).toBe('string');
    expect(JSON.stringify(form.schema)).not.toMatch(/"examples"|\$schema|\$ref/);
  });

  it('compiles with rjsf ajv8 validator and reports the schema errors at their path', () => {
    const ok = validator.validateFormData(
      { Resources: { Runtime: '1h30m', Nodes: 2 }, Environment: { Python: '~/venv' } },
      form.schema
    );
    expect(ok.errors).toEqual([]);
    const bad = validator.validateFormData(
      { Resources: { Runtime: 'soon', Nodes: 0 } },
      form.schema
    );
    const paths = bad.errors.map(e => e.property).sort();
    expect(paths).toEqual(['.Resources.Nodes', '.Resources.Runtime']);
  });

  it('leaves single-typed nodes alone', () => {
    expect(simplifySchema({ type: 'integer', minimum: 1 })).toEqual({
      type: 'integer',
      minimum: 1
    });
  });
});

describe('config data', () => {
  const file = {
    Name: 'x',
    Local: {},
    Resources: { Runtime: 3600, MemoryPerNode: '4G', Nodes: 1 },
    Environment: {
      Python: { Path: '/venv' },
      PreRunCommandOnComputeNode: 'nvidia-smi',
      Variables: { OMP_NUM_THREADS: 2 }
    }
  };

  it('converts a file to the form types', () => {
    expect(configToFormData(file, form)).toEqual({
      Resources: { Runtime: '3600', MemoryPerNode: '4G', Nodes: 1 },
      Environment: {
        Python: '/venv',
        PreRunCommandOnComputeNode: ['nvidia-smi'],
        Variables: { OMP_NUM_THREADS: '2' }
      }
    });
    expect(configToFormData(null, form)).toEqual({});
  });

  it('turns edits into per-run overrides (null removes)', () => {
    const original = configToFormData(file, form);
    expect(configOverrides(original, original)).toBeNull();
    const edited = {
      Resources: { Runtime: '2h', MemoryPerNode: '4G' },
      Environment: {
        Python: '/venv',
        PreRunCommandOnComputeNode: ['nvidia-smi', 'hostname'],
        Variables: { OMP_NUM_THREADS: '2', EXTRA: '' }
      }
    };
    expect(configOverrides(original, edited)).toEqual({
      Resources: { Runtime: '2h', Nodes: null },
      Environment: { PreRunCommandOnComputeNode: ['nvidia-smi', 'hostname'] }
    });
  });

  it('saves changed sections whole', () => {
    const original = configToFormData(file, form);
    expect(sectionsToSave(original, { ...original, Resources: { Nodes: 4 } })).toEqual({
      Resources: { Nodes: 4 }
    });
    expect(sectionsToSave(original, { Resources: original.Resources })).toEqual({
      Environment: null
    });
  });
});

describe('configErrorMessage (ajv → server wording)', () => {
  const messages = (data: JSONObject): Record<string, string> => {
    const { errors } = validator.validateFormData(data, form.schema);
    return Object.fromEntries(
      errors.map(e => {
        const path = errorPath(e.property);
        let value: unknown = data;
        for (const key of path) {
          value = (value as JSONObject | undefined)?.[key];
        }
        return [path.join('.'), configErrorMessage(e, value)];
      })
    );
  };

  it('matches the messages of engine/config.py', () => {
    expect(
      messages({ Resources: { Runtime: 'soon', Nodes: 0, MemoryPerNode: 'lots', Queue: '' } })
    ).toEqual({
      'Resources.Runtime':
        "must be a duration such as 1h30m, 90min, 01:30:00, 1-02:00:00 (days-hours:minutes:seconds), 2d, or a number of seconds, got 'soon'",
      'Resources.Nodes': 'must be an integer ≥ 1, got 0',
      'Resources.MemoryPerNode':
        "must be a size such as 64G, 64GB, 64GiB, 65536M, 512MiB, or a number of MiB, got 'lots'",
      'Resources.Queue': 'must not be empty'
    });
  });
});

describe('empty values', () => {
  it('are no overrides (rjsf leaves empty lists and objects behind)', () => {
    expect(
      configOverrides(
        { Resources: { Nodes: 1 } },
        {
          Resources: { Nodes: 1, Queue: '' },
          Environment: { Apptainer: { Options: [] }, Modules: [] }
        }
      )
    ).toBeNull();
  });
});
