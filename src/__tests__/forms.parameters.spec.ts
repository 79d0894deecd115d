import { IEntryPoint } from '../types';
import {
  parameterError,
  parameterErrors,
  parameterForm,
  parametersFromRun,
  parametersToSubmit
} from '../forms/parameterForm';
import digits from './forms.digits.json';

const [train, evaluate] = digits as unknown as IEntryPoint[];

describe('parameterForm (MLproject json_schema → form)', () => {
  it('has one typed field per parameter, in MLproject order, defaults typed', () => {
    const form = parameterForm(train);
    const props = form.schema.properties as Record<string, Record<string, unknown>>;
    expect(form.uiSchema['ui:order']).toEqual([
      'learning_rate',
      'epochs',
      'hidden',
      'alpha',
      'batch_size',
      'seed',
      'epoch_delay',
      'run_label'
    ]);
    expect(props.epochs).toMatchObject({ type: 'integer', default: 10, title: 'epochs (int)' });
    expect(props.learning_rate).toMatchObject({ type: 'number', default: 0.01 });
    expect(props.run_label).toMatchObject({ type: 'string', default: '' });
    expect(form.defaults).toMatchObject({ epochs: 10, learning_rate: 0.01, run_label: '' });
    expect(form.schema.required).toEqual([]);
    // ajv (draft-07) must not see the 2020-12 meta-schema or vendor keywords.
    expect(JSON.stringify(form.schema)).not.toMatch(/\$schema|x-mlflow-type/);
  });

  it('marks parameters without default as required, with a type placeholder', () => {
    const form = parameterForm(evaluate);
    expect(form.schema.required).toEqual(['model_uri']);
    expect(form.defaults).toEqual({});
    expect(form.uiSchema.model_uri).toEqual({ 'ui:placeholder': 'a URI', 'ui:widget': 'text' });
  });
});

describe('parameter checks (same messages as the server)', () => {
  const epochs = train.parameters.find(p => p.name === 'epochs')!;
  const rate = train.parameters.find(p => p.name === 'learning_rate')!;
  const uri = evaluate.parameters[0];

  it('words type errors as project._check_values does', () => {
    expect(parameterError(epochs, 2.5)).toBe("parameter 'epochs' must be an int, got 2.5");
    expect(parameterError(epochs, 'ten')).toBe("parameter 'epochs' must be an int, got 'ten'");
    expect(parameterError(rate, '1e-3')).toBeNull();
    expect(parameterError(rate, 'fast')).toBe(
      "parameter 'learning_rate' must be a float, got 'fast'"
    );
    expect(parameterError(uri, 'no-scheme')).toBe(
      "parameter 'model_uri' must be a URI, got 'no-scheme'"
    );
    expect(parameterError(uri, undefined)).toBe(
      "parameter 'model_uri' is required (uri, no default)"
    );
    expect(parameterError(epochs, undefined)).toBeNull();
    expect(parameterError(epochs, 2)).toBeNull();
  });

  it('collects every problem by name', () => {
    expect(parameterErrors(train, { epochs: 1.5, hidden: 3, learning_rate: 'x' })).toEqual({
      epochs: "parameter 'epochs' must be an int, got 1.5",
      learning_rate: "parameter 'learning_rate' must be a float, got 'x'"
    });
  });
});

describe('parameter values', () => {
  it('submits given values only', () => {
    expect(
      parametersToSubmit(train, { epochs: 2, learning_rate: undefined, run_label: '', hidden: '' })
    ).toEqual({ epochs: 2, run_label: '' });
  });

  it('types the strings of a run for re-run', () => {
    expect(
      parametersFromRun(train, { epochs: '2', learning_rate: '0.05', run_label: 'x', seed: 'oops' })
    ).toEqual({ epochs: 2, learning_rate: 0.05, run_label: 'x', seed: 'oops' });
  });
});
