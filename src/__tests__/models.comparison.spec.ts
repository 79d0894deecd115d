/**
 * The metric comparison across a model's versions: one row per metric any
 * version's run has (validation/test metrics first), the versions side by
 * side in the order shown, blanks where a run lacks a metric or is not
 * loaded, rows where the versions differ marked.
 */
import { metricComparison } from '../models/comparison';
import { IModelVersionDetail } from '../models/types';

function detail(version: string, metrics: Record<string, number>): IModelVersionDetail {
  return {
    version: {
      name: 'digits',
      version,
      source: `models:/m-${version}`,
      mlflow_run_id: `run${version}`,
      model_id: `m-${version}`,
      aliases: [],
      description: null,
      created_at: 0,
      status: 'READY'
    },
    run: null,
    metrics,
    flavors: ['python_function', 'sklearn'],
    servable: true,
    input_example: null,
    deployments: []
  };
}

describe('metric comparison', () => {
  it('puts the versions side by side, metric by metric', () => {
    const details = new Map([
      ['3', detail('3', { train_accuracy: 1, val_accuracy: 0.97, epochs_run: 5 })],
      ['2', detail('2', { train_accuracy: 1, val_accuracy: 0.95 })]
    ]);
    const table = metricComparison(['3', '2', '1'], details);
    expect(table.versions).toEqual(['3', '2', '1']);
    expect(table.rows).toEqual([
      { key: 'val_accuracy', values: [0.97, 0.95, null], differs: true },
      { key: 'epochs_run', values: [5, null, null], differs: true },
      { key: 'train_accuracy', values: [1, 1, null], differs: true }
    ]);
  });

  it('marks equal rows as not differing, and has no rows without metrics', () => {
    const details = new Map([
      ['2', detail('2', { loss: 0.1 })],
      ['1', detail('1', { loss: 0.1 })]
    ]);
    expect(metricComparison(['2', '1'], details).rows).toEqual([
      { key: 'loss', values: [0.1, 0.1], differs: false }
    ]);
    expect(metricComparison(['2'], new Map()).rows).toEqual([]);
  });
});
