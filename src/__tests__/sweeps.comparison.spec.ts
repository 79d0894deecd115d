/**
 * The sweep comparison's data mapping: children to points of one metric, the
 * varied parameters as axes (numeric, log, categorical), and the best child.
 */
import {
  axisFraction,
  axisOf,
  bestChild,
  comparisonData,
  IChildPoint,
  metricKeys,
  variedParameters
} from '../sweeps/comparison';

function child(id: string, parameters: Record<string, string>): IChildPoint {
  return { id, name: `run ${id}`, state: 'FINISHED', parameters };
}

const children = [
  child('a', { lr: '0.1', opt: 'adam', epochs: '5' }),
  child('b', { lr: '0.01', opt: 'adam', epochs: '5' }),
  child('c', { lr: '0.001', opt: 'sgd', epochs: '5' }),
  child('d', { lr: '0.0001', opt: 'sgd', epochs: '5' })
];
const metrics = {
  a: { val_accuracy: 0.81, loss: 0.9 },
  b: { val_accuracy: 0.95, loss: 0.2 },
  c: { val_accuracy: 0.9, loss: 0.1 }
  // d: no metrics yet (still running, or failed before logging)
};

describe('sweep comparison data', () => {
  it('the best child is the max (or min) of the chosen metric; children without it are skipped', () => {
    const max = comparisonData(children, metrics, 'val_accuracy', 'max');
    expect(max.best).toBe('b');
    expect(max.points.map(p => p.value)).toEqual([0.81, 0.95, 0.9, null]);
    expect(max.valueDomain).toEqual([0.81, 0.95]);
    expect(comparisonData(children, metrics, 'val_accuracy', 'min').best).toBe('a');
    expect(comparisonData(children, metrics, 'loss', 'min').best).toBe('c');
    expect(comparisonData(children, metrics, 'nothing', 'max').best).toBeNull();
  });

  it('ties go to the first child; NaN and infinities are not values', () => {
    const points = [
      { ...children[0], value: 1 },
      { ...children[1], value: 1 },
      { ...children[2], value: NaN },
      { ...children[3], value: Infinity }
    ];
    expect(bestChild(points, 'max')).toBe('a');
    expect(bestChild(points, 'min')).toBe('a');
    const data = comparisonData(children, { a: { m: NaN }, b: { m: 2 } }, 'm', 'max');
    expect(data.points[0].value).toBeNull();
    expect(data.best).toBe('b');
  });

  it('axes are the parameters that vary, the definition order first', () => {
    expect(variedParameters(children)).toEqual(['lr', 'opt']);
    expect(variedParameters(children, ['opt', 'lr'])).toEqual(['opt', 'lr']);
    const data = comparisonData(children, metrics, 'loss', 'min', ['lr']);
    expect(data.axes.map(a => [a.name, a.numeric, a.log])).toEqual([
      ['lr', true, true], // 1e-4 … 1e-1: log
      ['opt', false, false]
    ]);
  });

  it('values map to fractions of their axis', () => {
    const lr = axisOf('lr', ['0.1', '0.01', '0.001']);
    expect(axisFraction(lr, '0.001')).toBeCloseTo(0);
    expect(axisFraction(lr, '0.01')).toBeCloseTo(0.5);
    expect(axisFraction(lr, '0.1')).toBeCloseTo(1);
    const seed = axisOf('seed', ['0', '1', '2', '4']);
    expect(seed.log).toBe(false);
    expect(axisFraction(seed, '1')).toBeCloseTo(0.25);
    const opt = axisOf('opt', ['adam', 'sgd', 'adam', 'rmsprop']);
    expect(opt.categories).toEqual(['adam', 'sgd', 'rmsprop']);
    expect(axisFraction(opt, 'sgd')).toBeCloseTo(0.5);
    expect(axisFraction(opt, 'other')).toBeNull();
    expect(axisFraction(axisOf('one', ['3', '3']), '3')).toBe(0.5);
  });

  it('metric keys: validation and test metrics first, then by name', () => {
    expect(metricKeys({ a: { loss: 1, val_loss: 2 }, b: { accuracy: 1, test_acc: 1 } })).toEqual([
      'test_acc',
      'val_loss',
      'accuracy',
      'loss'
    ]);
  });
});
