/**
 * How datasets read: short digests, sizes, staging progress (bytes, files,
 * rate, ETA), where a version is.
 */
import { TranslationBundle } from '@jupyterlab/translation';

import { formatDuration } from '../runs/rows';
import { formatBytes } from '../sidebar/progress';
import { IDataVersion, IDatasetUse, IStagingProgress } from './types';

/** The first 12 hex digits: enough to tell versions apart, as the CLI shows them. */
export function shortDigest(digest: string): string {
  return digest.slice(0, 12);
}

/** "1.2 MB" (empty when unknown). */
export function sizeText(bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined ? '' : formatBytes(bytes);
}

/** Fraction done in [0, 1] (null while the total is not known yet). */
export function stagingFraction(progress: IStagingProgress): number | null {
  if (progress.total_bytes > 0) {
    return Math.min(1, progress.sent_bytes / progress.total_bytes);
  }
  if (progress.total_files > 0) {
    return Math.min(1, progress.sent_files / progress.total_files);
  }
  return null;
}

/** "1.0 MB of 4.0 MB · 3 of 12 files · 512 KB/s · 6s left" (parts known so far). */
export function stagingText(progress: IStagingProgress, trans: TranslationBundle): string {
  const parts: string[] = [];
  if (progress.dataset) {
    parts.push(progress.dataset);
  }
  parts.push(
    trans.__('%1 of %2', formatBytes(progress.sent_bytes), formatBytes(progress.total_bytes))
  );
  if (progress.total_files > 0) {
    parts.push(trans.__('%1 of %2 files', progress.sent_files, progress.total_files));
  }
  if (progress.rate && progress.rate > 0) {
    parts.push(trans.__('%1/s', formatBytes(progress.rate)));
  }
  if (progress.eta !== null && progress.eta !== undefined && progress.eta > 0) {
    parts.push(trans.__('%1 left', formatDuration(progress.eta)));
  }
  return parts.join(' · ');
}

/** The badges of a version: current (the project's data now), staged (on the target). */
export function versionBadges(version: IDataVersion, trans: TranslationBundle): string[] {
  const badges: string[] = [];
  if (version.current) {
    badges.push(trans.__('current'));
  }
  if (version.staged) {
    badges.push(trans.__('staged'));
  }
  if (version.version === 'listing') {
    badges.push(trans.__('in place'));
  }
  return badges;
}

/** What staging a run's dataset sent: "nothing (already there)" or "1.2 MB, 3 files". */
export function sentText(use: IDatasetUse, trans: TranslationBundle): string {
  if (use.version === 'listing') {
    return trans.__('nothing (used in place)');
  }
  if (!use.sent_bytes && !use.sent_files) {
    return trans.__('nothing (already there)');
  }
  return trans._n('%2, %1 file', '%2, %1 files', use.sent_files, formatBytes(use.sent_bytes));
}
