/**
 * The model registry and deployments as the server sends them
 * (handlers/models.py, handlers/deployments.py; docs/openapi.yaml).
 */
import { IRun } from '../types';

/** One version of a registered model (MLflow's registry). */
export interface IModelVersion {
  name: string;
  /** MLflow numbers versions as strings: "1", "2", … */
  version: string;
  source: string;
  mlflow_run_id: string | null;
  model_id: string | null;
  aliases: string[];
  description: string | null;
  /** Epoch seconds. */
  created_at: number | null;
  status: string | null;
}

/** GET models (versions empty) and GET models/{name} (versions newest first). */
export interface IRegisteredModel {
  name: string;
  description: string | null;
  /** Alias → version. */
  aliases: Record<string, string>;
  versions: IModelVersion[];
  updated_at: number | null;
}

export type DeploymentState = 'STARTING' | 'READY' | 'FAILED' | 'STOPPED';

/** A serving job of one model version. */
export interface IDeployment {
  name: string;
  model_uri: string;
  model_name: string;
  model_version: string;
  state: DeploymentState;
  message: string | null;
  backend: string;
  connection: string | null;
  config_path: string | null;
  replicas: number;
  run_ids: string[];
  invocations_url: string;
  created_at: number;
  ready_at: number | null;
  stopped_at: number | null;
}

/** GET models/{name}/versions/{version}: the version and where it came from. */
export interface IModelVersionDetail {
  version: IModelVersion;
  /** The hpcml run that trained it; null when hpcml does not know the run. */
  run: IRun | null;
  /** Latest values of the source MLflow run's metrics. */
  metrics: Record<string, number>;
  flavors: string[];
  /** Has the python_function flavor (a scoring server can load it). */
  servable: boolean;
  /** A body ready for invocations, e.g. {"dataframe_split": {...}}. */
  input_example: unknown;
  deployments: IDeployment[];
}

/** Body of POST models. */
export interface IRegisterRequest {
  run_id: string;
  name: string;
  path?: string;
  alias?: string;
  description?: string;
}

/** Body of POST deployments. */
export interface IDeployRequest {
  model_uri: string;
  project?: string;
  backend_config?: string;
  name?: string;
  replicas?: number;
}

/** What Try it sends: JSON (MLflow's dataframe_split, inputs, …) or CSV with a header row. */
export type PayloadFormat = 'json' | 'csv';
