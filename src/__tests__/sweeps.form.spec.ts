/**
 * The sidebar's sweep request: override texts over the fixed values, random
 * samples and max parallel; what is missing before anything is sent.
 */
import { emptySpec } from '../sweeps/overrides';
import { SweepForm } from '../sweeps/sweepForm';
import { ISweepRequest } from '../types';

const base: ISweepRequest = {
  project: 'digits',
  entry_point: 'train',
  parameters: { epochs: 2, hidden: 64 },
  backend_config: null,
  run_name: 'grid'
};

function form(): SweepForm {
  return new SweepForm({ request: () => base, changed: () => undefined });
}

describe('sweep request', () => {
  it('swept parameters become override text beside the fixed values', () => {
    const sweeps = form();
    sweeps.specs = {
      learning_rate: { ...emptySpec('list'), list: '0.05, 0.01' },
      seed: { ...emptySpec('range'), start: '0', stop: '3' }
    };
    sweeps.maxParallel = '2';
    expect(sweeps.active).toBe(true);
    expect(sweeps.needsRandom).toBe(false);
    expect(sweeps.settingsError()).toBeNull();
    expect(sweeps.apply(base)).toEqual({
      ...base,
      parameters: { epochs: 2, hidden: 64, learning_rate: '0.05,0.01', seed: 'range(0,3)' },
      max_parallel: 2
    });
  });

  it('interval and log need random samples; bad numbers are named', () => {
    const sweeps = form();
    sweeps.specs = { alpha: { ...emptySpec('log'), lo: '1e-5', hi: '1e-2' } };
    expect(sweeps.needsRandom).toBe(true);
    expect(sweeps.settingsError()).toBe('interval and log values need a number of random samples');
    sweeps.random = '8';
    expect(sweeps.settingsError()).toBeNull();
    expect(sweeps.apply(base)).toMatchObject({
      parameters: { alpha: 'tag(log,interval(1e-5,1e-2))' },
      random: 8
    });
    sweeps.maxParallel = 'two';
    expect(sweeps.settingsError()).toBe('max parallel must be a whole number');
  });

  it('an incomplete sweep is a problem at its parameter, and is not sent', () => {
    const sweeps = form();
    sweeps.specs = { seed: { ...emptySpec('range'), start: '0' } };
    expect(sweeps.clientErrors()).toEqual({
      seed: ["parameter 'seed': give the start and the stop of the range"]
    });
    // The fixed value stays as it is (the submit refuses before sending).
    expect(sweeps.apply({ ...base, parameters: { seed: 0 } }).parameters).toEqual({ seed: 0 });
  });
});
