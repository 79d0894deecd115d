/**
 * The cron preview of the "Schedule…" dialog: one question once typing
 * pauses (about the last text), answers to older questions dropped, the
 * server's problems kept at their field, and the dialog's errors per field.
 */
import { errorFromResponse } from '../errors';
import { CronPreview, PREVIEW_DELAY } from '../schedules/cronPreview';
import { defaultDraft } from '../schedules/request';
import { ScheduleForm } from '../schedules/scheduleForm';
import { ICronPreview, IWhen } from '../schedules/types';

interface IAsked {
  when: IWhen;
  signal: AbortSignal;
  resolve: (answer: ICronPreview) => void;
  reject: (error: unknown) => void;
}

/** A preview endpoint answered by hand. */
function endpoint(): {
  asked: IAsked[];
  fetch: (when: IWhen, signal: AbortSignal) => Promise<ICronPreview>;
} {
  const asked: IAsked[] = [];
  return {
    asked,
    fetch: (when, signal) =>
      new Promise<ICronPreview>((resolve, reject) => asked.push({ when, signal, resolve, reject }))
  };
}

const badCron = errorFromResponse(
  400,
  'Bad Request',
  JSON.stringify({
    message: 'invalid schedule',
    problems: [{ message: "bad cron expression: '61' out of range", key: 'cron' }]
  })
);

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

describe('cron preview', () => {
  it('asks once typing pauses, about the last text only', async () => {
    const server = endpoint();
    let repaints = 0;
    const preview = new CronPreview(server.fetch, () => repaints++);
    for (const cron of ['*', '*/', '*/5', '*/5 * * * *']) {
      preview.update({ cron, timezone: 'UTC' });
      await jest.advanceTimersByTimeAsync(PREVIEW_DELAY / 2);
    }
    expect(server.asked).toHaveLength(0);
    expect(preview.pending).toBe(true);
    await jest.advanceTimersByTimeAsync(PREVIEW_DELAY);
    expect(server.asked.map(a => a.when.cron)).toEqual(['*/5 * * * *']);

    server.asked[0].resolve({ cron: '*/5 * * * *', timezone: 'UTC', next_times: [300, 600] });
    await jest.advanceTimersByTimeAsync(0);
    expect(preview.pending).toBe(false);
    expect(preview.times).toEqual([300, 600]);
    expect(preview.timezone).toBe('UTC');
    expect(preview.hasErrors).toBe(false);
    expect(repaints).toBeGreaterThan(0);
  });

  it('drops the answer to an older question', async () => {
    const server = endpoint();
    const preview = new CronPreview(server.fetch, () => undefined);
    preview.update({ cron: '@hourly' });
    await jest.advanceTimersByTimeAsync(PREVIEW_DELAY);
    preview.update({ cron: '@daily' });
    expect(server.asked[0].signal.aborted).toBe(true);
    await jest.advanceTimersByTimeAsync(PREVIEW_DELAY);
    server.asked[1].resolve({ timezone: 'UTC', next_times: [86400] });
    server.asked[0].resolve({ timezone: 'UTC', next_times: [3600] });
    await jest.advanceTimersByTimeAsync(0);
    expect(preview.times).toEqual([86400]);
  });

  it("keeps the server's problems by key, and clears them when the text is gone", async () => {
    const server = endpoint();
    const preview = new CronPreview(server.fetch, () => undefined);
    preview.update({ cron: '61 * * * *' });
    await jest.advanceTimersByTimeAsync(PREVIEW_DELAY);
    server.asked[0].reject(badCron);
    await jest.advanceTimersByTimeAsync(0);
    expect(preview.errors).toEqual({ cron: ["bad cron expression: '61' out of range"] });
    expect(preview.times).toEqual([]);
    expect(preview.pending).toBe(false);

    preview.update(null);
    expect(preview.hasErrors).toBe(false);
    expect(preview.pending).toBe(false);
    await jest.advanceTimersByTimeAsync(PREVIEW_DELAY * 2);
    expect(server.asked).toHaveLength(1);
  });

  it('names a failure without problems under no key', async () => {
    const preview = new CronPreview(
      () => Promise.reject(new Error('offline')),
      () => undefined
    );
    preview.update({ cron: '@daily' });
    await jest.advanceTimersByTimeAsync(PREVIEW_DELAY);
    expect(preview.errors).toEqual({ '': ['offline'] });
  });
});

describe('schedule dialog state', () => {
  it('asks the preview when the when changes, not for other fields', async () => {
    const server = endpoint();
    const form = new ScheduleForm(defaultDraft('Europe/Zurich'), server.fetch);
    form.set({ name: 'nightly', overlap: 'allow' });
    await jest.advanceTimersByTimeAsync(PREVIEW_DELAY);
    expect(server.asked).toHaveLength(0);
    form.set({ cron: '0 3 * * *' });
    await jest.advanceTimersByTimeAsync(PREVIEW_DELAY);
    expect(server.asked.map(a => a.when)).toEqual([
      { cron: '0 3 * * *', timezone: 'Europe/Zurich' }
    ]);
    form.set({ kind: 'once', at: '2026-12-24T18:00' });
    await jest.advanceTimersByTimeAsync(PREVIEW_DELAY);
    expect(server.asked[1].when).toEqual({ at: '2026-12-24T18:00', timezone: 'Europe/Zurich' });
    form.dispose();
  });

  it("shows the attempt's problems at their field until it is edited, the rest apart", async () => {
    const server = endpoint();
    const form = new ScheduleForm(defaultDraft('UTC'), server.fetch);
    form.set({ cron: '61 * * * *' });
    await jest.advanceTimersByTimeAsync(PREVIEW_DELAY);
    server.asked[0].reject(badCron);
    await jest.advanceTimersByTimeAsync(0);
    // The preview's problem shows at the cron field.
    expect(form.errorsOf('cron')).toEqual(["bad cron expression: '61' out of range"]);

    form.errors = {
      run_name: ['unknown field {x}'],
      'parameters.epochs': ["'x' is not an int"],
      '': ['project vanished']
    };
    expect(form.errorsOf('runName')).toEqual(['unknown field {x}']);
    expect(form.generalErrors).toEqual([
      "parameters.epochs: 'x' is not an int",
      'project vanished'
    ]);
    form.set({ runName: '{schedule}' });
    expect(form.errorsOf('runName')).toEqual([]);
    expect(form.generalErrors).toHaveLength(2);
    form.dispose();
  });
});
