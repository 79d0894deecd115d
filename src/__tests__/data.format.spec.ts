/**
 * How datasets read in the Data tab and the run detail: short digests, sizes,
 * staging progress (bytes, files, rate, ETA), version badges, what staging
 * sent, the backend-config choices; the requests built from the tab's state.
 */
import type { TranslationBundle } from '@jupyterlab/translation';

import { dataQuery, stageRequest } from '../data/api';
import {
  sentText,
  shortDigest,
  sizeText,
  stagingFraction,
  stagingText,
  versionBadges
} from '../data/format';
import { IDatasetUse, IStagingProgress } from '../data/types';
import { configChoices } from '../sidebar/configChoices';
import { IBackendConfigInfo } from '../types';

const fill = (text: string, args: unknown[]): string =>
  args.reduce<string>((out, arg, i) => out.replace(`%${i + 1}`, String(arg)), text);
const trans = {
  __: (text: string, ...args: unknown[]) => fill(text, args),
  _n: (one: string, many: string, n: number, ...args: unknown[]) =>
    fill(n === 1 ? one : many, [n, ...args])
} as unknown as TranslationBundle;

const DIGEST = '0123456789abcdef'.repeat(4);

function progress(extra: Partial<IStagingProgress> = {}): IStagingProgress {
  return { sent_bytes: 0, total_bytes: 0, sent_files: 0, total_files: 0, ...extra };
}

function use(extra: Partial<IDatasetUse> = {}): IDatasetUse {
  return {
    name: 'digits-csv',
    source: 'data/digits-csv',
    path: 'data/digits-csv',
    digest: DIGEST,
    size: 2048,
    files: 3,
    sent_bytes: 0,
    sent_files: 0,
    ...extra
  };
}

describe('data format', () => {
  it('shortens digests to 12 digits and sizes to units', () => {
    expect(shortDigest(DIGEST)).toBe('0123456789ab');
    expect(sizeText(2048)).toBe('2.0 KB');
    expect(sizeText(null)).toBe('');
    expect(sizeText(undefined)).toBe('');
  });

  it('tells staging progress in bytes, files, rate and time left', () => {
    const p = progress({
      dataset: 'digits-csv',
      sent_bytes: 1024 * 1024,
      total_bytes: 4 * 1024 * 1024,
      sent_files: 3,
      total_files: 12,
      rate: 512 * 1024,
      eta: 6
    });
    expect(stagingText(p, trans)).toBe(
      'digits-csv · 1.0 MB of 4.0 MB · 3 of 12 files · 512.0 KB/s · 6s left'
    );
    expect(stagingFraction(p)).toBe(0.25);
    // Before anything is known: no files, rate or ETA; no fraction.
    expect(stagingText(progress(), trans)).toBe('0 B of 0 B');
    expect(stagingFraction(progress())).toBeNull();
    // Empty files only: the files count.
    expect(stagingFraction(progress({ sent_files: 1, total_files: 4 }))).toBe(0.25);
    expect(stagingFraction(progress({ sent_bytes: 9, total_bytes: 3 }))).toBe(1);
  });

  it('badges a version current, staged, in place', () => {
    expect(versionBadges({ digest: DIGEST, runs: [] }, trans)).toEqual([]);
    expect(versionBadges({ digest: DIGEST, runs: [], current: true, staged: true }, trans)).toEqual(
      ['current', 'staged']
    );
    expect(versionBadges({ digest: DIGEST, runs: [], version: 'listing' }, trans)).toEqual([
      'in place'
    ]);
  });

  it("says what staging a run's dataset sent", () => {
    expect(sentText(use(), trans)).toBe('nothing (already there)');
    expect(sentText(use({ sent_bytes: 2048, sent_files: 3 }), trans)).toBe('2.0 KB, 3 files');
    expect(sentText(use({ sent_bytes: 10, sent_files: 1 }), trans)).toBe('10 B, 1 file');
    expect(sentText(use({ version: 'listing' }), trans)).toBe('nothing (used in place)');
  });

  it('offers the local backend, then the configs, invalid ones disabled', () => {
    const configs: IBackendConfigInfo[] = [
      {
        path: 'backend-configs/slurm.yaml',
        kind: 'ssh',
        connection: 'daint',
        config: { Name: 'Daint' },
        problems: []
      },
      { path: 'broken.yaml', kind: null, connection: null, config: null, problems: [] }
    ];
    expect(configChoices(configs, trans)).toEqual([
      { value: '', label: 'Local (built-in default)' },
      { value: 'backend-configs/slurm.yaml', label: 'Daint — ssh', disabled: false },
      { value: 'broken.yaml', label: 'broken.yaml (invalid)', disabled: true }
    ]);
  });
});

describe('data requests', () => {
  it('names the config only when one is chosen', () => {
    expect(dataQuery('examples/digits', '')).toBe('project=examples%2Fdigits');
    expect(dataQuery('my project', 'cfg/a b.yaml')).toBe(
      'project=my+project&config=cfg%2Fa+b.yaml'
    );
  });

  it('stages every dataset unless names are given', () => {
    expect(stageRequest('digits', '')).toEqual({ project: 'digits', backend_config: null });
    expect(stageRequest('digits', 'slurm.yaml', ['digits-csv'])).toEqual({
      project: 'digits',
      backend_config: 'slurm.yaml',
      names: ['digits-csv']
    });
  });
});
