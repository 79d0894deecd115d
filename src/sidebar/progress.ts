/**
 * Upload progress of a submission in flight. POST /runs answers once the
 * code is uploaded and the job submitted; meanwhile the run exists in state
 * SUBMITTING, so its `upload_progress` is polled from the runs changed since
 * the submission started.
 */
import { listRuns } from '../api';
import { IRun } from '../types';

export interface IProgress {
  sent: number;
  total: number;
}

/**
 * Poll until `done` settles; `onProgress` gets the progress of the
 * SUBMITTING run named `runName`.
 */
export async function watchUpload<T>(
  done: Promise<T>,
  runName: string,
  startedAt: number,
  onProgress: (progress: IProgress | null) => void,
  intervalMs = 500
): Promise<T> {
  let finished = false;
  const settle = done.finally(() => {
    finished = true;
  });
  const poll = async (): Promise<void> => {
    while (!finished) {
      await Promise.race([
        settle.catch(() => undefined),
        new Promise(resolve => setTimeout(resolve, intervalMs))
      ]);
      if (finished) {
        return;
      }
      try {
        const { runs } = await listRuns({ since: startedAt - 1 });
        const run = runs.find((r: IRun) => r.name === runName && r.state === 'SUBMITTING');
        if (!finished && run?.upload_progress) {
          onProgress(run.upload_progress);
        }
      } catch {
        // Progress is best effort; the submission's own answer decides.
      }
    }
  };
  void poll();
  return settle;
}

/** "1.2 MB of 3.4 MB" style figures. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
