/**
 * Shapes of the JSON exchanged with the server extension (/hpcml/api/).
 */

/** What one backend kind can do, so the UI shows only the controls that work. */
export interface IBackendFeatures {
  cancel: boolean;
  logs: boolean;
  log_follow: boolean;
  artifacts: boolean;
  rerun: boolean;
  upload_progress: boolean;
  offline_tracking: boolean;
  /** Resources keys the backend honours. */
  resources: string[];
  /** Features added by newer servers. */
  [feature: string]: unknown;
}

/** Answer of GET /hpcml/api/features. */
export interface IFeaturesResponse {
  /** Backend kind (local, slurm, ...) to its features. */
  backends: Record<string, IBackendFeatures>;
  /** Version of the server extension. */
  version: string;
}

/** One thing wrong with a user's input (mirrors the server's `Problem`). */
export interface IProblem {
  message: string;
  file?: string | null;
  line?: number | null;
  /** Dotted key path, e.g. "Resources.Nodes". */
  key?: string | null;
}

/** JSON body of an error answer. */
export interface IErrorBody {
  message?: string;
  problems?: IProblem[];
}
