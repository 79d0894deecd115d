/**
 * How the Models tab shows metric values, input examples and predictions.
 */
import { exampleText, metricText, predictionsText, sortedAliases } from '../models/format';

describe('models format', () => {
  it('shows metrics with 4 significant digits, tiny and huge ones in exponent form', () => {
    expect(metricText(0.973333333)).toBe('0.9733');
    expect(metricText(12)).toBe('12');
    expect(metricText(1234.5678)).toBe('1235');
    expect(metricText(0.00001234)).toBe('1.23e-5');
    expect(metricText(2512345678.9)).toBe('2.51e+9');
    expect(metricText(2500000000)).toBe('2500000000');
    expect(metricText(null)).toBe('—');
    expect(metricText(Number.NaN)).toBe('—');
  });

  it('prefills Try it with the input example as pretty JSON, nothing without one', () => {
    const example = { dataframe_split: { columns: ['a'], data: [[1]] } };
    expect(exampleText(example)).toBe(JSON.stringify(example, null, 2));
    expect(JSON.parse(exampleText(example))).toEqual(example);
    expect(exampleText(null)).toBe('');
    expect(exampleText(undefined)).toBe('');
  });

  it('shows the predictions alone when that is all the answer has', () => {
    expect(predictionsText({ predictions: [3, 1, 4] })).toBe('[3,1,4]');
    expect(predictionsText({ predictions: [1], extra: true })).toBe(
      JSON.stringify({ predictions: [1], extra: true }, null, 2)
    );
    expect(predictionsText([0, 1])).toBe('[\n  0,\n  1\n]');
  });

  it('orders aliases', () => {
    expect(sortedAliases(['prod', 'champion'])).toEqual(['champion', 'prod']);
  });
});
