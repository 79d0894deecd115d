/**
 * Client of the runs-view endpoints (handlers/runs_view.py): one request for a
 * table page, the key metrics of the visible rows, or every chart of several runs.
 */
import { requestAPI } from '../api';
import { IRunHistories } from '../charts/data';
import { IRowPage, IRowQuery } from './rows';

function params(entries: [string, string | number][]): string {
  const search = new URLSearchParams();
  for (const [k, v] of entries) {
    search.append(k, String(v));
  }
  return search.toString();
}

/** A sorted, filtered page of run rows, the total and the change cursor. */
export function listRunRows(query: IRowQuery, offset: number, limit: number): Promise<IRowPage> {
  const entries: [string, string | number][] = [
    ['sort', query.sort],
    ['order', query.descending ? 'desc' : 'asc'],
    ['offset', offset],
    ['limit', limit]
  ];
  if (query.states.length) {
    entries.push(['state', query.states.join(',')]);
  }
  if (query.text.trim()) {
    entries.push(['q', query.text.trim()]);
  }
  if (query.archived) {
    entries.push(['archived', 'true']);
  }
  if (query.schedule) {
    entries.push(['schedule', query.schedule]);
  }
  return requestAPI<IRowPage>(`runs-view/rows?${params(entries)}`);
}

/** Latest value of each metric of several runs: run id → key → value. */
export async function latestMetrics(
  runIds: string[]
): Promise<Record<string, Record<string, number | null>>> {
  const answer = await requestAPI<{
    metrics: Record<string, Record<string, number | null>>;
  }>(`runs-view/metrics?${params([['run', runIds.join(',')]])}`);
  return answer.metrics;
}

/** Every metric history of several runs, downsampled to `maxPoints` each. */
export async function metricHistories(
  runIds: string[],
  maxPoints: number,
  x: 'step' | 'time'
): Promise<IRunHistories[]> {
  const answer = await requestAPI<{ runs: IRunHistories[] }>(
    `runs-view/histories?${params([
      ['run', runIds.join(',')],
      ['max_points', maxPoints],
      ['x', x]
    ])}`
  );
  return answer.runs;
}
