/**
 * Command ids shared by the sidebar/submit half and the runs/logs/charts half.
 *
 * Argument shapes are documented next to each id; the `I…Args` interfaces are
 * what `app.commands.execute(id, args)` receives.
 */
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

export namespace CommandIDs {
  /** Show the server extension version and backend features (dialog). */
  export const showStatus = 'hpcml:show-status';
  /**
   * Open the submit sidebar. Args: {@link IOpenSubmitArgs}
   * (`path`: an MLproject file or a folder, relative to the server root;
   * `runId`: pre-fill from that run, for a re-run).
   */
  export const openSubmit = 'hpcml:open-submit';
  /** Make the server forget FirecREST/UNICORE credentials entered in the lab (asks which). No args. */
  export const forgetCredentials = 'hpcml:forget-credentials';
  /**
   * Open (or reveal) the runs tab. Args: {@link IOpenRunsArgs} (`schedule`:
   * show only that schedule's runs).
   */
  export const openRuns = 'hpcml:open-runs';
  /** Open the detail view of one run. Args: {@link IOpenRunArgs}. */
  export const openRun = 'hpcml:open-run';
  /** Open the log viewer of one run. Args: {@link IOpenLogsArgs}. */
  export const openLogs = 'hpcml:open-logs';
  /** Open the metric charts of one or more runs. Args: {@link IOpenChartsArgs}. */
  export const openCharts = 'hpcml:open-charts';
  /** Open (or reveal) the Schedules tab. Args: {@link IOpenSchedulesArgs}. */
  export const openSchedules = 'hpcml:open-schedules';
  /** Open (or reveal) the Data tab. Args: {@link IOpenDataArgs}. */
  export const openData = 'hpcml:open-data';
  /** Open (or reveal) the Models tab. Args: {@link IOpenModelsArgs}. */
  export const openModels = 'hpcml:open-models';
  /** Register a finished run's logged model (asks name, path, alias). Args: {@link IRegisterModelArgs}. */
  export const registerModel = 'hpcml:register-model';
}

/** Args of `hpcml:open-models`. */
export interface IOpenModelsArgs extends ReadonlyPartialJSONObject {
  /** Select this registered model. */
  model?: string;
}

/** Args of `hpcml:register-model`. */
export interface IRegisterModelArgs extends ReadonlyPartialJSONObject {
  runId: string;
}

/** Args of `hpcml:open-data`. */
export interface IOpenDataArgs extends ReadonlyPartialJSONObject {
  /** A project folder (or a folder in it), relative to the server root; default: the file browser's. */
  project?: string;
  /** Backend config relative to the project ('' : the local backend). */
  config?: string;
}

/** Args of `hpcml:open-runs`. */
export interface IOpenRunsArgs extends ReadonlyPartialJSONObject {
  /** Filter the table to the runs this schedule created ('' clears the filter). */
  schedule?: string;
  /** The schedule's name, shown in the filter. */
  scheduleName?: string;
}

/** Args of `hpcml:open-schedules`. */
export interface IOpenSchedulesArgs extends ReadonlyPartialJSONObject {
  /** Select this schedule (its history shows). */
  scheduleId?: string;
}

/** Args of `hpcml:open-submit`. */
export interface IOpenSubmitArgs extends ReadonlyPartialJSONObject {
  /** An MLproject file or a folder (relative to the server root). */
  path?: string;
  /** Pre-fill the form from this run (re-run). */
  runId?: string;
  /** Internal: invoked from the file browser's context menu (uses its selection). */
  fromFileBrowser?: boolean;
}

/** Args of `hpcml:open-run`. */
export interface IOpenRunArgs extends ReadonlyPartialJSONObject {
  runId: string;
}

/** Args of `hpcml:open-logs`. */
export interface IOpenLogsArgs extends ReadonlyPartialJSONObject {
  runId: string;
  /** Which stream to show first; both when omitted. */
  stream?: 'stdout' | 'stderr';
}

/** Args of `hpcml:open-charts`. */
export interface IOpenChartsArgs extends ReadonlyPartialJSONObject {
  runIds: string[];
}
