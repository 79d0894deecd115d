/**
 * Shapes of the JSON exchanged with the server extension (/hpcml/api/).
 */
import { IDatasetUse, IStagingProgress } from './data/types';

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
  /** Machine-readable cause, e.g. `credentials_missing`. */
  reason?: string;
  /** With `credentials_missing`: the backend kind (`firecrest`, `unicore`). */
  kind?: string;
  /** With `credentials_missing`: the connection that lacks credentials. */
  connection?: string;
  /** With `credentials_missing`: alternative complete sets of field names. */
  fields?: string[][];
  /** With `credentials_missing`: the API the credentials (or their token) go to. */
  api_url?: string;
  /** With `credentials_missing` (FirecREST): the token endpoint a client secret goes to. */
  token_url?: string;
}

/** Body of PUT /hpcml/api/credentials (values are never echoed back). */
export interface ICredentialsRequest {
  /** The project path, as in a submission. */
  project: string;
  /** The backend config path, as in a submission. */
  backend_config: string;
  /** One complete set of fields, e.g. {username, password}. */
  values: Record<string, string>;
}

/**
 * Credentials the server holds for one connection (answer of PUT, items of
 * GET /hpcml/api/credentials): never their values, but where they go.
 */
export interface ICredentialsAnswer {
  connection: string;
  kind: string;
  /** The names of the fields stored (never their values). */
  fields: string[];
  /** The API of the connection. */
  api_url?: string;
  /** FirecREST: the OIDC token endpoint. */
  token_url?: string;
  /** The URL the stored secret is sent to (and no other). */
  secret_sent_to?: string | null;
}

/** Run states (mirrors the server's RunState). */
export type RunState =
  | 'STAGING'
  | 'SUBMITTING'
  | 'QUEUED'
  | 'RUNNING'
  | 'FINISHED'
  | 'FAILED'
  | 'CANCELLED'
  | 'TIMEOUT'
  | 'UNKNOWN';

export const TERMINAL_STATES: ReadonlySet<RunState> = new Set<RunState>([
  'FINISHED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT'
]);

/** Per-run changes to the backend config: dotted strings or a nested object. */
export type Overrides = string[] | Record<string, unknown>;

export interface IStateChange {
  state: RunState;
  /** Epoch seconds. */
  at: number;
  message?: string | null;
}

export interface ICodeIdentity {
  git_commit?: string | null;
  git_dirty_hash?: string | null;
  content_hash: string;
}

/** A run record (GET /hpcml/api/runs/{id}). */
export interface IRun {
  id: string;
  name: string;
  project_path: string;
  project_relpath: string;
  project_name: string;
  entry_point: string;
  command: string;
  parameters: Record<string, string>;
  backend: string;
  connection?: string | null;
  config_path?: string | null;
  backend_config: Record<string, unknown>;
  config_overrides: Overrides;
  resources: Record<string, unknown>;
  tracking_mode: 'direct' | 'offline';
  backend_job_id?: string | null;
  run_dir?: string | null;
  state: RunState;
  state_history: IStateChange[];
  exit_code?: number | null;
  cancel_requested: boolean;
  mlflow_experiment_id?: string | null;
  mlflow_experiment_name?: string | null;
  mlflow_run_id?: string | null;
  code?: ICodeIdentity | null;
  snapshot_id?: string | null;
  rerun_of?: string | null;
  notes: string[];
  /** Hidden from default listings (archive/unarchive). */
  archived?: boolean;
  created_at: number;
  updated_at: number;
  started_at?: number | null;
  ended_at?: number | null;
  upload_progress?: { sent: number; total: number } | null;
  /** The data versions it read (datasets.yaml). */
  datasets?: IDatasetUse[];
  /** While its datasets are being staged (state STAGING). */
  staging_progress?: IStagingProgress | null;
  /** The sweep this run is a child of (null for a single run). */
  sweep_id?: string | null;
  /** The child's point index in its sweep. */
  sweep_index?: number | null;
  /** Times the scheduler requeued it. */
  restarts?: number | null;
  /** The schedule that created it (null otherwise). */
  schedule_id?: string | null;
}

export interface IRunList {
  runs: IRun[];
  total: number;
}

export interface IRunQuery {
  state?: RunState[];
  project?: string;
  experiment?: string;
  q?: string;
  limit?: number;
  offset?: number;
  /** Only runs changed after this epoch time. */
  since?: number;
  /** 'false' (default): archived runs left out; 'true': archived too; 'only'. */
  archived?: 'false' | 'true' | 'only';
}

/** Answer of DELETE /hpcml/api/runs/{id}: what was removed and what was kept. */
export interface IDeleteResult {
  id: string;
  run_dir_removed: boolean;
  mlflow_run_deleted: boolean;
  snapshot_removed: boolean;
  /** Human notes: what stayed and where (a remote run directory, the MLflow run). */
  kept: string[];
}

export interface ISubmitRequest {
  project: string;
  entry_point?: string;
  parameters?: Record<string, string | number>;
  backend_config?: string | null;
  overrides?: Overrides;
  run_name?: string | null;
  experiment_name?: string | null;
}

export interface IRerunRequest {
  parameters?: Record<string, string | number>;
  overrides?: Overrides;
  fresh_code?: boolean;
  run_name?: string | null;
  experiment_name?: string | null;
}

export type LogStream = 'stdout' | 'stderr';

export interface ILogChunk {
  stream: LogStream;
  data: string;
  offset: number;
  next_offset: number;
  /** File size now; null when not created yet. */
  size: number | null;
  /** The run may still write more. */
  running: boolean;
}

export interface IFileInfo {
  path: string;
  is_dir: boolean;
  size?: number | null;
  mtime?: number | null;
}

export interface IMetricSummary {
  key: string;
  value: number | null;
  step: number;
  timestamp: number;
}

export interface IMetricPoint {
  x: number;
  value: number | null;
  min: number | null;
  max: number | null;
}

export interface IMetricHistory {
  key: string;
  total: number;
  points: IMetricPoint[];
}

export interface IParameterSpec {
  name: string;
  type: 'string' | 'float' | 'int' | 'path' | 'uri';
  default: string | null;
  required: boolean;
}

export interface IEntryPoint {
  name: string;
  command: string;
  parameters: IParameterSpec[];
  /** JSON Schema of the parameter form. */
  json_schema: Record<string, unknown>;
}

export interface IBackendConfigInfo {
  /** Path relative to the project. */
  path: string;
  kind: string | null;
  connection: string | null;
  /** Redacted config, null when invalid. */
  config: Record<string, unknown> | null;
  problems: IProblem[];
}

/** GET /hpcml/api/project?path=... */
export interface IProject {
  name: string;
  /** Relative to the server root. */
  path: string;
  mlproject_file: string | null;
  entry_points: IEntryPoint[];
  env_note: string | null;
  backend_configs: IBackendConfigInfo[];
}

/** Body of POST /hpcml/api/sweeps and sweeps/preview. */
export interface ISweepRequest {
  project: string;
  entry_point?: string;
  /** Fixed values, or override text (`0.1,0.01`, `range(0,5)`, `interval(1e-4,1e-1)`). */
  parameters: Record<string, string | number>;
  /** Random search: draw this many points. */
  random?: number | null;
  seed?: number | null;
  max_parallel?: number | null;
  backend_config?: string | null;
  overrides?: Overrides;
  run_name?: string | null;
  experiment_name?: string | null;
}

/** Answer of POST sweeps/preview. */
export interface ISweepPreview {
  points: number;
  mode: 'grid' | 'random' | 'rows';
  /** The first points (parameter → value text). */
  sample: Record<string, string>[];
}

/** A sweep record (GET sweeps, and the head of GET sweeps/{id}). */
export interface ISweep {
  id: string;
  name: string;
  project_path: string;
  project_name: string;
  entry_point: string;
  definition: {
    parameters: Record<string, string | number>;
    mode: 'grid' | 'random' | 'rows';
    samples?: number | null;
    seed?: number | null;
    points?: number | null;
  };
  max_parallel?: number | null;
  backend: string;
  connection?: string | null;
  mlflow_run_id?: string | null;
  created_at: number;
  updated_at: number;
  /** Children by state. */
  counts: Partial<Record<RunState, number>>;
  state: RunState | null;
}

/** GET sweeps/{id}: the sweep and its children, by point index. */
export interface ISweepView extends ISweep {
  children: IRun[];
}

/** Body of POST sweeps/{id}/rerun. */
export interface ISweepRerunRequest {
  failed: boolean;
  parameters?: Record<string, string | number>;
  overrides?: Overrides;
}
