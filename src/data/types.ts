/**
 * Datasets as the server sends them (engine/data_service.py, DatasetUse in
 * engine/models.py; docs/openapi.yaml).
 */
import { RunState } from '../types';

/** Which version of a dataset a run read, and where it was on the target. */
export interface IDatasetUse {
  name: string;
  source: string;
  /** Where the job saw it, relative to its working directory. */
  path: string;
  digest: string;
  /** 'listing': data mapped to a path on the target (size + mtime, not content). */
  version?: 'content' | 'listing';
  size: number;
  files: number;
  location?: string | null;
  /** What staging it for this run sent (0: it was there already). */
  sent_bytes: number;
  sent_files: number;
}

/** Bytes and files sent so far, rate in bytes/s, ETA in seconds. */
export interface IStagingProgress {
  dataset?: string;
  sent_bytes: number;
  total_bytes: number;
  sent_files: number;
  total_files: number;
  rate?: number;
  eta?: number | null;
}

export type StagingState = 'running' | 'done' | 'failed';

/** A staging started with POST data/stage. */
export interface IStaging {
  id: string;
  state: StagingState;
  progress: IStagingProgress;
  datasets: IDatasetUse[];
  error?: string | null;
}

export interface IDataRunRef {
  id: string;
  name: string;
  state: RunState;
  created_at: number;
}

export interface IDataVersion {
  digest: string;
  version?: 'content' | 'listing';
  size?: number | null;
  files?: number | null;
  /** The project's data is this version now. */
  current?: boolean;
  /** Held by the target's data store. */
  staged?: boolean;
  location?: string | null;
  staged_at?: number | null;
  /** The runs that read it, newest first. */
  runs: IDataRunRef[];
}

export interface IDataset {
  name: string;
  kind: string;
  source: string;
  path: string;
  /** HPCML_DATA_<NAME>: the variable holding its absolute path in the job. */
  env: string;
  description?: string | null;
  /** The config maps it to this path on the target (nothing is copied). */
  mapped_to?: string | null;
  /** The current version first. */
  versions: IDataVersion[];
  note?: string | null;
}

/** GET data?project=P&config=C */
export interface IDataView {
  project: string;
  project_relpath: string;
  config: string | null;
  backend: string;
  connection: string;
  can_stage: boolean;
  datasets: IDataset[];
  other_staged: IDataVersion[];
  notes: string[];
}

/** Body of POST data/stage. */
export interface IDataStageRequest {
  project: string;
  backend_config?: string | null;
  names?: string[] | null;
}
