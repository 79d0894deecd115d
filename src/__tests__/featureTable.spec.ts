import { featureTable } from '../featureTable';
import { IBackendFeatures } from '../types';

const base: IBackendFeatures = {
  cancel: true,
  logs: true,
  log_follow: true,
  artifacts: true,
  rerun: true,
  upload_progress: false,
  offline_tracking: true,
  resources: []
};

describe('featureTable', () => {
  it('orders known features first and backends by name', () => {
    const table = featureTable({
      slurm: { ...base, resources: ['Nodes', 'Runtime'], gpu: 'a100' },
      local: base
    });
    expect(table.columns).toEqual([
      'cancel',
      'logs',
      'log_follow',
      'artifacts',
      'rerun',
      'upload_progress',
      'offline_tracking',
      'resources',
      'gpu'
    ]);
    expect(table.rows.map(r => r.backend)).toEqual(['local', 'slurm']);
    expect(table.rows[1].cells.slice(5)).toEqual([false, true, 'Nodes, Runtime', 'a100']);
    expect(table.rows[0].cells[8]).toBe('');
  });
});
