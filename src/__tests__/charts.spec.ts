import { runColor, RUN_COLORS } from '../charts/colors';
import {
  align,
  appendPoints,
  groupByMetric,
  IRunHistories,
  lastX,
  replaceRun,
  unionX
} from '../charts/data';
import { compareParams } from '../charts/params';
import { IMetricPoint } from '../types';

const p = (x: number, value: number | null): IMetricPoint => ({ x, value, min: value, max: value });

const runA: IRunHistories = {
  id: 'a',
  error: null,
  metrics: [
    { key: 'loss', total: 3, points: [p(1, 1), p(2, 0.5), p(3, 0.25)] },
    { key: 'acc', total: 2, points: [p(1, 0.5), p(3, 0.9)] }
  ]
};
const runB: IRunHistories = {
  id: 'b',
  error: null,
  metrics: [{ key: 'loss', total: 2, points: [p(2, 0.8), p(4, 0.4)] }]
};

describe('chart data', () => {
  it('groups metrics by key across runs, keys sorted, runs without points left out', () => {
    const g = groupByMetric([runA, runB]);
    expect([...g.keys()]).toEqual(['acc', 'loss']);
    expect(g.get('loss')!.map(s => s.runId)).toEqual(['a', 'b']);
    expect(g.get('acc')!.map(s => s.runId)).toEqual(['a']);
  });

  it('aligns runs on the union of their steps, null where a run has no point', () => {
    const g = groupByMetric([runA, runB]);
    expect(unionX(g.get('loss')!)).toEqual([1, 2, 3, 4]);
    expect(align(g.get('loss')!)).toEqual({
      x: [1, 2, 3, 4],
      ys: [
        [1, 0.5, 0.25, null],
        [null, 0.8, null, 0.4]
      ]
    });
  });

  it('aligns wall-time x values of different runs', () => {
    const s = [
      { runId: 'a', points: [p(100.5, 1), p(101.5, 2)] },
      { runId: 'b', points: [p(100.0, 3), p(101.5, 4)] }
    ];
    expect(align(s)).toEqual({
      x: [100, 100.5, 101.5],
      ys: [
        [null, 1, 2],
        [3, null, 4]
      ]
    });
  });

  it('aligns 100,000 points of several runs fast', () => {
    const n = 100000;
    const pts = (k: number): IMetricPoint[] => Array.from({ length: n }, (_, i) => p(i * k, i));
    const t0 = Date.now();
    const a = align([
      { runId: 'a', points: pts(1) },
      { runId: 'b', points: pts(2) }
    ]);
    expect(a.x.length).toBe(n + n / 2);
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  it('appends live points: later points added, the overlapping tail replaced', () => {
    const held = [p(1, 1), p(2, 2), p(3, 3)];
    expect(appendPoints(held, [p(3, 3.5), p(4, 4)])).toEqual([
      p(1, 1),
      p(2, 2),
      p(3, 3.5),
      p(4, 4)
    ]);
    expect(appendPoints(held, [])).toBe(held);
    expect(appendPoints([], [p(1, 1)])).toEqual([p(1, 1)]);
  });

  it('replaces one run on refresh, keeping order; finds the last x', () => {
    const fresh: IRunHistories = {
      ...runA,
      metrics: [{ key: 'loss', total: 1, points: [p(9, 0)] }]
    };
    const out = replaceRun([runA, runB], fresh);
    expect(out.map(r => r.id)).toEqual(['a', 'b']);
    expect(out[0]).toBe(fresh);
    expect(replaceRun([runB], fresh).map(r => r.id)).toEqual(['b', 'a']);
    expect(lastX(runA)).toBe(3);
    expect(lastX({ id: 'x', error: null, metrics: [] })).toBeNull();
  });

  it('gives runs distinct colours, cycling', () => {
    expect(new Set(RUN_COLORS.map((_, i) => runColor(i))).size).toBe(RUN_COLORS.length);
    expect(runColor(RUN_COLORS.length)).toBe(runColor(0));
  });
});

describe('parameter comparison', () => {
  it('flags the parameters whose values differ, missing ones included', () => {
    const rows = compareParams([
      { id: 'a', name: 'a', parameters: { lr: '0.01', epochs: '10' } },
      { id: 'b', name: 'b', parameters: { lr: '0.05', epochs: '10', seed: '1' } }
    ]);
    expect(rows).toEqual([
      { name: 'epochs', values: ['10', '10'], differs: false },
      { name: 'lr', values: ['0.01', '0.05'], differs: true },
      { name: 'seed', values: [undefined, '1'], differs: true }
    ]);
    expect(compareParams([])).toEqual([]);
  });
});
