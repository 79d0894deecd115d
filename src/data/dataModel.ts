/**
 * The Data tab's state: the project, the chosen backend config, its datasets
 * on that config's target (fetched again on a timer while the tab is shown),
 * and the staging in progress (one at a time), followed until it ends.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { getProject } from '../api';
import { IProject } from '../types';
import { getData, getStaging, startStaging, stageRequest } from './api';
import { IDataView, IStaging } from './types';

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

/** Which Stage button started the staging: a dataset's name, or ALL. */
export const ALL = '';

export class DataModel {
  /**
   * @param pollMs - milliseconds between refreshes of the listing
   * @param stagePollMs - milliseconds between looks at a staging in progress
   */
  constructor(
    private readonly pollMs: () => number,
    private readonly stagePollMs = 400
  ) {}

  project: IProject | null = null;
  /** Backend config relative to the project; '' is the local backend. */
  config = '';
  view: IDataView | null = null;
  error: string | null = null;
  loaded = false;
  staging: IStaging | null = null;
  /** The Stage button of the staging shown (ALL or a dataset's name). */
  stagingOf: string | null = null;
  stageError: string | null = null;

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get stagingRunning(): boolean {
    return this.staging?.state === 'running' || this._starting;
  }

  /** Show the project at or above `path` (relative to the server root). */
  async setProject(path: string, config?: string): Promise<void> {
    try {
      const project = await getProject(path);
      if (this.disposed) {
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
    this._changed.emit();
    await this.refresh();
  }

  setConfig(config: string): void {
    if (config === this.config) {
      return;
    }
    this.config = config;
    this.view = null;
    this._changed.emit();
    void this.refresh();
  }

  /** Fetch the datasets now. */
  async refresh(): Promise<void> {
    const project = this.project;
    if (!project) {
      return;
    }
    const generation = ++this.generation;
    try {
      const view = await getData(project.path, this.config);
      if (generation !== this.generation || this.disposed) {
        return;
      }
      this.view = view;
      this.error = null;
    } catch (error) {
      if (generation !== this.generation) {
        return;
      }
      this.error = errorText(error);
    }
    this.loaded = true;
    this._changed.emit();
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
    this._changed.emit();
    try {
      let staging = await startStaging(stageRequest(project.path, this.config, names));
      this._starting = false;
      this.staging = staging;
      this._changed.emit();
      while (staging.state === 'running' && !this.disposed) {
        await sleep(this.stagePollMs);
        staging = await getStaging(staging.id);
        this.staging = staging;
        this._changed.emit();
      }
      if (staging.state === 'failed') {
        this.stageError = staging.error ?? staging.state;
      }
    } catch (error) {
      this.stageError = errorText(error);
    }
    this._starting = false;
    this._changed.emit();
    await this.refresh();
  }

  /** Refresh now and then every poll interval, until `stop`. */
  start(): void {
    if (this.running || this.disposed) {
      return;
    }
    this.running = true;
    // A loop stopped while its request was on the way must not go on beside a new one.
    const loop = ++this.loops;
    const tick = async (): Promise<void> => {
      await this.refresh();
      if (this.loops === loop && !this.disposed) {
        this.timer = setTimeout(() => void tick(), this.pollMs());
      }
    };
    void tick();
  }

  stop(): void {
    this.running = false;
    this.loops++;
    clearTimeout(this.timer);
  }

  dispose(): void {
    this.disposed = true;
    this.stop();
    Signal.clearData(this);
  }

  private readonly _changed = new Signal<this, void>(this);
  private _starting = false;
  private generation = 0;
  private running = false;
  private loops = 0;
  private disposed = false;
  private timer: ReturnType<typeof setTimeout> | undefined = undefined;
}
