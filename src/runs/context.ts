/**
 * What the runs, detail, log and chart views share: the app, strings, the
 * user's settings and the backends' features.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { TranslationBundle } from '@jupyterlab/translation';
import { ISignal, Signal } from '@lumino/signaling';

import { getFeatures } from '../api';
import { DEFAULT_SETTINGS, IHpcmlSettings } from '../settings';
import { IBackendFeatures, IFeaturesResponse } from '../types';

/** A run left or joined the listings: deleted, or archived/unarchived. */
export interface IRunsChange {
  id: string;
  deleted: boolean;
}

export class RunsContext {
  constructor(
    readonly app: JupyterFrontEnd,
    readonly trans: TranslationBundle
  ) {}

  get settings(): IHpcmlSettings {
    return this._settings;
  }

  set settings(value: IHpcmlSettings) {
    this._settings = value;
    this._settingsChanged.emit(value);
  }

  get settingsChanged(): ISignal<this, IHpcmlSettings> {
    return this._settingsChanged;
  }

  /** A run was deleted, archived or unarchived here: views reload, tabs of a deleted run close. */
  get runsChanged(): ISignal<this, IRunsChange> {
    return this._runsChanged;
  }

  notifyRunsChanged(change: IRunsChange): void {
    this._runsChanged.emit(change);
  }

  /** The run whose row was last right-clicked (set by the runs tab), for context-menu actions. */
  contextRunId = '';

  /** Milliseconds between refreshes. */
  get pollMs(): number {
    return Math.max(500, this._settings.pollInterval * 1000);
  }

  /** The features answer, fetched once (again after a failure). */
  features(): Promise<IFeaturesResponse> {
    if (!this._features) {
      this._features = getFeatures().catch(reason => {
        this._features = null;
        throw reason;
      });
      void this._features.then(f => (this._known = f)).catch(() => undefined);
    }
    return this._features;
  }

  /** Features of a backend kind if already known (synchronous, for enabling actions). */
  featuresOf(kind: string): IBackendFeatures | undefined {
    if (!this._known) {
      void this.features().catch(() => undefined);
    }
    return this._known?.backends[kind];
  }

  private _settings: IHpcmlSettings = { ...DEFAULT_SETTINGS };
  private _settingsChanged = new Signal<this, IHpcmlSettings>(this);
  private _runsChanged = new Signal<this, IRunsChange>(this);
  private _features: Promise<IFeaturesResponse> | null = null;
  private _known: IFeaturesResponse | null = null;
}
