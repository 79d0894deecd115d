/**
 * Expanded sweep groups in the runs table: display positions of rows and of
 * the children shown under their sweep's row, and child updates.
 */
import { IRunRow } from '../runs/rows';
import { SweepGroups } from '../sweeps/groups';
import { countEntries, pointText } from '../sweeps/sweepRow';

function row(id: string, extra: Partial<IRunRow> = {}): IRunRow {
  return { id, name: id, state: 'FINISHED', ...extra } as IRunRow;
}

// Top-level rows: r0, s1 (a sweep), r2, s3 (a sweep), r4.
const ids = ['r0', 's1', 'r2', 's3', 'r4'];
const rows = {
  total: ids.length,
  positionOf: (id: string) => {
    const i = ids.indexOf(id);
    return i < 0 ? undefined : i;
  }
};

describe('sweep groups', () => {
  it('collapsed: display positions are row positions', () => {
    const groups = new SweepGroups();
    expect(groups.total(rows)).toBe(5);
    expect(groups.at(3, rows)).toEqual({ kind: 'row', position: 3 });
  });

  it('expanded groups insert their children under their row', () => {
    const groups = new SweepGroups();
    expect(groups.toggle('s1')).toBe(true);
    // Children not loaded yet: nothing inserted.
    expect(groups.total(rows)).toBe(5);
    groups.setChildren('s1', [row('c0', { sweep_id: 's1' }), row('c1', { sweep_id: 's1' })]);
    groups.toggle('s3');
    groups.setChildren('s3', [row('c2', { sweep_id: 's3' })]);
    expect(groups.total(rows)).toBe(8);
    const shown = Array.from({ length: 8 }, (_, i) => groups.at(i, rows));
    expect(shown).toEqual([
      { kind: 'row', position: 0 },
      { kind: 'row', position: 1 },
      { kind: 'child', sweepId: 's1', index: 0 },
      { kind: 'child', sweepId: 's1', index: 1 },
      { kind: 'row', position: 2 },
      { kind: 'row', position: 3 },
      { kind: 'child', sweepId: 's3', index: 0 },
      { kind: 'row', position: 4 }
    ]);
    expect([0, 1, 2, 3, 4].map(p => groups.displayOf(p, rows))).toEqual([0, 1, 4, 5, 7]);
    // The rows a display window needs.
    expect(groups.rowRange(2, 5, rows)).toEqual([1, 3]);
    expect(groups.rowRange(6, 8, rows)).toEqual([3, 5]);

    expect(groups.toggle('s1')).toBe(false);
    expect(groups.total(rows)).toBe(6);
    // Children set after a collapse are dropped.
    groups.setChildren('s1', [row('c0')]);
    expect(groups.isExpanded('s1')).toBe(false);
  });

  it('a newer row of a shown child replaces it, keeping its point', () => {
    const groups = new SweepGroups();
    groups.toggle('s1');
    groups.setChildren('s1', [
      row('c0', { sweep_id: 's1', parameters: { lr: '0.1' }, state: 'RUNNING' })
    ]);
    expect(groups.updateChild(row('c0', { sweep_id: 's1', state: 'FAILED' }))).toBe(true);
    expect(groups.childrenOf('s1')[0]).toMatchObject({
      state: 'FAILED',
      parameters: { lr: '0.1' }
    });
    // A new child (re-run) is not shown yet: the group is fetched again.
    expect(groups.updateChild(row('c9', { sweep_id: 's1' }))).toBe(false);
    expect(groups.updateChild(row('c0', { sweep_id: 's3' }))).toBe(false);
  });

  it('count badges in lifecycle order, only non-zero; a point by parameter name', () => {
    expect(countEntries({ FINISHED: 3, RUNNING: 2, FAILED: 0, QUEUED: 1 })).toEqual([
      ['QUEUED', 1],
      ['RUNNING', 2],
      ['FINISHED', 3]
    ]);
    expect(countEntries(null)).toEqual([]);
    expect(pointText({ seed: '2', lr: '0.1', epochs: '5' }, ['lr', 'seed'])).toBe('lr=0.1 seed=2');
  });
});

describe('a child point in its row', () => {
  it('long floats (random draws) are shortened, other values kept', () => {
    expect(pointText({ alpha: '6.336192507277147e-05', lr: '0.05', opt: 'adam' })).toBe(
      'alpha=6.34e-5 lr=0.05 opt=adam'
    );
    expect(pointText({ a: '0.0029433725481480', b: '123456789', c: '1e-4' })).toBe(
      'a=0.002943 b=123456789 c=1e-4'
    );
  });
});
