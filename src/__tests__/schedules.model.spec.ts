/**
 * The Schedules tab's data: the list and the selected schedule's history,
 * fetched again each poll interval while shown and not after; a deleted
 * schedule leaves at once; a failed fetch is shown, the last list kept.
 */
import { SchedulesModel } from '../schedules/schedulesModel';

const requested: string[] = [];
let failing = false;

function schedule(id: string, firings = 1): Record<string, unknown> {
  return {
    id,
    name: `s-${id}`,
    status: 'active',
    next_times: [],
    firings: Array.from({ length: firings }, (_, i) => ({ scheduled_at: i, run_id: `r${i}` }))
  };
}

jest.mock('@jupyterlab/services', () => ({
  ServerConnection: {
    makeSettings: () => ({ baseUrl: 'http://lab/' }),
    makeRequest: async (url: string) => {
      const path = new URL(url).pathname.replace('/hpcml/api/', '');
      requested.push(path);
      if (failing) {
        return new Response(JSON.stringify({ message: 'server gone' }), { status: 503 });
      }
      const body =
        path === 'schedules'
          ? { schedules: [schedule('tA'), schedule('tB')] }
          : schedule(path.split('/')[1], 3);
      return new Response(JSON.stringify(body), { status: 200 });
    }
  }
}));

beforeEach(() => {
  requested.length = 0;
  failing = false;
  jest.useFakeTimers();
});
afterEach(() => jest.useRealTimers());

describe('schedules model', () => {
  it('fetches at once, then each interval while started, never after stop', async () => {
    const model = new SchedulesModel(() => 1000);
    model.start();
    model.start(); // shown twice (attach and show): one loop
    await jest.advanceTimersByTimeAsync(0);
    expect(requested).toEqual(['schedules']);
    expect(model.schedules.map(s => s.id)).toEqual(['tA', 'tB']);
    await jest.advanceTimersByTimeAsync(1000);
    expect(requested).toHaveLength(2);
    model.stop();
    await jest.advanceTimersByTimeAsync(5000);
    expect(requested).toHaveLength(2);
    model.dispose();
  });

  it("fetches the selected schedule's history too; a deleted one leaves at once", async () => {
    const model = new SchedulesModel(() => 1000);
    model.select('tB');
    await jest.advanceTimersByTimeAsync(0);
    expect(requested).toEqual(['schedules', 'schedules/tB']);
    expect(model.selected?.firings).toHaveLength(3);
    model.removed('tB');
    expect(model.selectedId).toBeNull();
    expect(model.selected).toBeNull();
    expect(model.schedules.map(s => s.id)).toEqual(['tA']);
    model.dispose();
  });

  it('shows why a refresh failed and keeps the last list', async () => {
    const model = new SchedulesModel(() => 1000);
    await model.refresh();
    failing = true;
    await model.refresh();
    expect(model.error).toBe('server gone');
    expect(model.schedules).toHaveLength(2);
    failing = false;
    await model.refresh();
    expect(model.error).toBeNull();
    model.dispose();
  });
});
