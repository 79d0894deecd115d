/**
 * The refresh machinery the Data and Schedules tabs share: the latest fetch's
 * answer wins whatever order answers arrive in; a loop stopped while its
 * request is on the way does not go on beside a new one; nothing after dispose.
 */
import { RefreshingModel } from '../components/refreshingModel';

/** A model whose fetches answer only when the test says so. */
class Model extends RefreshingModel {
  shown: string | null = null;
  readonly pending: { resolve: (v: string) => void; reject: (e: Error) => void }[] = [];

  refresh(): Promise<void> {
    return this.fetchLatest(
      () => new Promise<string>((resolve, reject) => this.pending.push({ resolve, reject })),
      answer => {
        this.shown = answer;
      }
    );
  }
}

type Pending = Model['pending'][number];

/** Two refreshes; the second answers 'new' first, then `settleOlder` settles the first. */
async function newerThenOlder(settleOlder: (older: Pending) => void): Promise<Model> {
  const model = new Model(() => 1000);
  const older = model.refresh();
  const newer = model.refresh();
  model.pending[1].resolve('new');
  await newer;
  settleOlder(model.pending[0]);
  await older;
  return model;
}

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

describe('refreshing model', () => {
  it('keeps the latest answer when an older one arrives last', async () => {
    const model = await newerThenOlder(older => older.resolve('old'));
    expect(model.shown).toBe('new');
    expect(model.loaded).toBe(true);
  });

  it('drops an older failure that arrives after a newer answer', async () => {
    const model = await newerThenOlder(older => older.reject(new Error('late and stale')));
    expect(model.error).toBeNull();
    expect(model.shown).toBe('new');
  });

  it('says why the latest fetch failed', async () => {
    const model = new Model(() => 1000);
    const done = model.refresh();
    model.pending[0].reject(new Error('server gone'));
    await done;
    expect(model.error).toBe('server gone');
    expect(model.loaded).toBe(true);
  });

  it('runs one loop: one stopped mid-request does not go on beside a restarted one', async () => {
    const model = new Model(() => 1000);
    model.start();
    model.stop(); // hidden while the first request is on the way
    model.start(); // shown again: a new loop, its own request
    expect(model.pending).toHaveLength(2);
    model.pending.forEach((p, i) => p.resolve(`answer ${i}`));
    await jest.advanceTimersByTimeAsync(0);
    await jest.advanceTimersByTimeAsync(1000);
    expect(model.pending).toHaveLength(3); // the new loop's next tick only
    model.dispose();
  });

  it('fetches nothing and applies nothing once disposed', async () => {
    const model = new Model(() => 1000);
    let heard = 0;
    model.changed.connect(() => heard++);
    model.start();
    model.dispose();
    model.pending[0].resolve('after dispose');
    await jest.advanceTimersByTimeAsync(5000);
    expect(model.shown).toBeNull();
    expect(heard).toBe(0);
    model.start();
    expect(model.pending).toHaveLength(1);
  });
});
