/**
 * The Data tab's state: the project, the chosen backend config, its datasets
 * on that config's target (fetched again on a timer while the tab is shown),
 * and the staging in progress (one at a time), followed until it ends.
 */
import { getProject } from '../api';
import { RefreshingModel } from '../components/refreshingModel';
import { errorText } from '../errors';
import { IProject } from '../types';
import { deleteDataVersion, getData, getStaging, startStaging, stageRequest } from './api';
import { IDataView, IStaging } from './types';

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

/** Which Stage button started the staging: a dataset's name, or ALL. */
export const ALL = '';

export class DataModel extends RefreshingModel {
  /**
   * @param pollMs - milliseconds between refreshes of the listing
   * @param stagePollMs - milliseconds between looks at a staging in progress
   */
  constructor(
    pollMs: () => number,
    private readonly stagePollMs = 400
  ) {
    super(pollMs);
  }

  project: IProject | null = null;
  /** Backend config relative to the project; '' is the local backend. */
  config = '';
  view: IDataView | null = null;
  staging: IStaging | null = null;
  /** The Stage button of the staging shown (ALL or a dataset's name). */
  stagingOf: string | null = null;
  stageError: string | null = null;
  /** Why the last "Free" was refused (e.g. an active run reads the version). */
  freeError: string | null = null;

  get stagingRunning(): boolean {
    return this.staging?.state === 'running' || this._starting;
  }

  /** Show the project at or above `path` (relative to the server root). */
  async setProject(path: string, config?: string): Promise<void> {
    try {
      const project = await getProject(path);
      if (this.isDisposed) {
        return;
      }
      const changed = project.path !== this.project?.path;
      this.project = project;
      if (config !== undefined) {
        this.config = config;
      } else if (changed) {
        this.config = '';
      }
      if (changed) {
        this.view = null;
        this.staging = null;
        this.stageError = null;
      }
      this.error = null;
    } catch (error) {
      this.error = errorText(error);
    }
    this.emitChanged();
    await this.refresh();
  }

  setConfig(config: string): void {
    if (config === this.config) {
      return;
    }
    this.config = config;
    this.view = null;
    this.emitChanged();
    void this.refresh();
  }

  /** Fetch the datasets now. */
  async refresh(): Promise<void> {
    const project = this.project;
    if (!project) {
      return;
    }
    await this.fetchLatest(
      () => getData(project.path, this.config),
      view => {
        this.view = view;
      }
    );
  }

  /** Stage `names` (every declared dataset without), follow it until it ends, refresh. */
  async stage(names?: string[]): Promise<void> {
    const project = this.project;
    if (!project || this.stagingRunning) {
      return;
    }
    this._starting = true;
    this.stagingOf = names?.length === 1 ? names[0] : ALL;
    this.staging = null;
    this.stageError = null;
    this.emitChanged();
    try {
      let staging = await startStaging(stageRequest(project.path, this.config, names));
      this._starting = false;
      this.staging = staging;
      this.emitChanged();
      while (staging.state === 'running' && !this.isDisposed) {
        await sleep(this.stagePollMs);
        staging = await getStaging(staging.id);
        this.staging = staging;
        this.emitChanged();
      }
      if (staging.state === 'failed') {
        this.stageError = staging.error ?? staging.state;
      }
    } catch (error) {
      this.stageError = errorText(error);
    }
    this._starting = false;
    this.emitChanged();
    await this.refresh();
  }

  /** Free a staged version on the config's target, then fetch the datasets again. */
  async freeVersion(digest: string): Promise<void> {
    const project = this.project;
    if (!project) {
      return;
    }
    this.freeError = null;
    try {
      await deleteDataVersion(digest, project.path, this.config);
    } catch (error) {
      this.freeError = errorText(error);
    }
    this.emitChanged();
    await this.refresh();
  }

  private _starting = false;
}
