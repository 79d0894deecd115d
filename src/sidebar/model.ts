/**
 * State of the submit sidebar: the project, the chosen entry point and
 * config, the form data, and what a submission answered. No DOM: the React
 * view renders it and calls its methods.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { getBackendConfigSchema, getProject, getRun, rerun, submitRun, submitSweep } from '../api';
import { errorText, HpcmlApiError } from '../errors';
import {
  configForm,
  configOverrides,
  configToFormData,
  IConfigForm,
  sectionsToSave
} from '../forms/configForm';
import { clone, getPath, isObject, JSONObject, setPath } from '../forms/jsonSchema';
import {
  IParameterForm,
  parameterErrors,
  parameterForm,
  parametersFromRun,
  parametersToSubmit
} from '../forms/parameterForm';
import {
  emptyErrors,
  FieldErrors,
  fieldErrorsFrom,
  ISubmitErrors,
  keepUnchanged,
  problemsToErrors
} from '../forms/problems';
import { SweepForm } from '../sweeps/sweepForm';
import { IEntryPoint, IProject, IRun, ISweepRequest, TERMINAL_STATES } from '../types';
import {
  configPathOfRun,
  defaultConfigPath,
  defaultEntryPoint,
  defaultRunName,
  isInside
} from './defaults';
import { AskCredentials, credentialsNeeded, enterCredentials } from './credentials';
import { IProgress, watchUpload } from './progress';
import { listExperiments, saveConfigSections } from './requests';

export interface ISubmitModelOptions {
  /** The defaultBackend setting, read when a project is loaded. */
  defaultBackend: () => string;
  /** The pollInterval setting in seconds (state of the last run). */
  pollInterval: () => number;
  /**
   * The credentials dialog: when a submission answers `credentials_missing`,
   * the model asks, stores the values on the server and submits once more.
   * Without it, that answer is shown like any other error.
   */
  askCredentials?: AskCredentials;
}

export class SubmitModel {
  constructor(private readonly options: ISubmitModelOptions) {}

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  // ------------------------------------------------------------ state
  project: IProject | null = null;
  projectError: string | null = null;
  loading = false;
  /** The file browser moved to another project while the form had edits. */
  pendingPath: string | null = null;
  configForm: IConfigForm | null = null;
  entryPoint: IEntryPoint | null = null;
  paramForm: IParameterForm | null = null;
  params: JSONObject = {};
  /** Config file relative to the project; '' is the built-in local backend. */
  configPath = '';
  /** The chosen config's sections as the form shows them (reset target). */
  configOriginal: JSONObject = {};
  configData: JSONObject = {};
  runName = '';
  experiment = '';
  experiments: string[] = [];
  /** Set while the form is pre-filled from a run (re-run). */
  rerunOf: IRun | null = null;
  errors: ISubmitErrors = emptyErrors();
  submitting = false;
  /** The connection whose credentials the dialog is asking for, while it is open. */
  awaitingCredentials: string | null = null;
  progress: IProgress | null = null;
  saving = false;
  notice: string | null = null;
  lastRun: IRun | null = null;
  dirty = false;
  /** Sweep values of parameters, random samples, max parallel, run count. */
  readonly sweeps = new SweepForm({
    request: () => this.sweepRequest(),
    changed: () => this.emit(),
    edited: () => {
      this.dirty = true;
    }
  });

  /** Errors shown at the parameters: the form's, then the sweep definition's. */
  get paramErrors(): FieldErrors {
    return { ...this.errors.parameters, ...this.sweeps.clientErrors(), ...this.sweeps.problems };
  }

  /** Load the backend-config schema and the experiments (once). */
  async init(): Promise<void> {
    try {
      this.configForm = configForm(await getBackendConfigSchema());
    } catch (error) {
      this.projectError = errorText(error);
    }
    await this.refreshExperiments();
    this.resetConfigData();
    this.emit();
  }

  async refreshExperiments(): Promise<void> {
    try {
      this.experiments = (await listExperiments()).map(e => e.name);
      this.emit();
    } catch {
      this.experiments = [];
    }
  }

  /** The file browser's folder changed: load its project unless it would discard edits. */
  followPath(path: string): void {
    if (this.project && isInside(path, this.project.path)) {
      this.pendingPath = null;
      this.emit();
      return;
    }
    if (this.dirty || this.submitting) {
      this.pendingPath = path;
      this.emit();
      return;
    }
    void this.loadProject(path);
  }

  /** Load the project at or above `path` and reset the form to its defaults. */
  async loadProject(path: string): Promise<boolean> {
    this.loading = true;
    this.pendingPath = null;
    this.emit();
    try {
      const project = await getProject(path);
      this.project = project;
      this.projectError = null;
      this.rerunOf = null;
      this.errors = emptyErrors();
      this.notice = null;
      this.setEntryPoint(defaultEntryPoint(project));
      this.setConfigPath(defaultConfigPath(project.backend_configs, this.options.defaultBackend()));
      this.experiment = '';
      this.dirty = false;
      return true;
    } catch (error) {
      this.project = null;
      this.entryPoint = null;
      this.paramForm = null;
      this.projectError = errorText(error);
      return false;
    } finally {
      this.loading = false;
      this.emit();
    }
  }

  setEntryPoint(name: string): void {
    const ep = this.project?.entry_points.find(e => e.name === name) ?? null;
    this.entryPoint = ep;
    this.paramForm = ep ? parameterForm(ep) : null;
    this.params = clone(this.paramForm?.defaults ?? {});
    this.errors = { ...this.errors, parameters: {}, fields: {} };
    this.runName = defaultRunName(name);
    this.touched.clear();
    this.sweeps.reset();
    this.emit();
  }

  setParams(data: JSONObject): void {
    for (const key of new Set([...Object.keys(data), ...Object.keys(this.params)])) {
      if (getPath(data, [key]) !== getPath(this.params, [key])) {
        this.touched.add(key);
      }
    }
    const server = keepUnchanged(this.errors.parameters, this.params, data);
    this.params = data;
    this.errors = { ...this.errors, parameters: { ...server, ...this.clientParamErrors() } };
    this.markDirty();
  }

  resetParam(path: string[]): void {
    this.setParams(setPath(this.params, path, getPath(this.paramForm?.defaults, path)));
  }

  setConfigPath(path: string): void {
    this.configPath = path;
    this.resetConfigData();
    this.errors = { ...this.errors, config: {}, fields: {} };
    this.notice = null;
    this.sweeps.schedulePreview();
    this.emit();
  }

  setConfigData(data: JSONObject): void {
    const server = keepUnchanged(this.errors.config, this.configData, data);
    this.configData = data;
    this.errors = { ...this.errors, config: server };
    this.notice = null;
    this.markDirty();
  }

  resetConfig(path: string[]): void {
    this.setConfigData(setPath(this.configData, path, getPath(this.configOriginal, path)));
  }

  setRunName(name: string): void {
    this.runName = name;
    this.errors = { ...this.errors, fields: { ...this.errors.fields, run_name: [] } };
    this.markDirty();
  }

  setExperiment(name: string): void {
    this.experiment = name;
    this.markDirty();
  }

  /** Whether the config form differs from the chosen config file. */
  get configEdited(): boolean {
    return configOverrides(this.configOriginal, this.configData) !== null;
  }

  /** Pre-fill everything from a run (re-run): its project, entry point, values, config. */
  async prefillFromRun(runId: string): Promise<boolean> {
    let run: IRun;
    try {
      run = await getRun(runId);
    } catch (error) {
      this.projectError = errorText(error);
      this.emit();
      return false;
    }
    if (!(await this.loadProject(run.project_relpath))) {
      return false;
    }
    this.setEntryPoint(run.entry_point);
    if (this.entryPoint) {
      this.params = { ...this.params, ...parametersFromRun(this.entryPoint, run.parameters) };
    }
    this.configPath = configPathOfRun(run.project_path, run.config_path);
    this.rerunOf = run;
    this.resetConfigData();
    this.experiment = run.mlflow_experiment_name ?? '';
    this.dirty = true;
    this.emit();
    return true;
  }

  /**
   * Submit (or re-run); the new run, or null when it was refused. While a
   * parameter sweeps, submit the sweep instead (null: see `sweeps.lastSweep`).
   */
  async submit(): Promise<IRun | null> {
    const project = this.project;
    const ep = this.entryPoint;
    if (!project || !ep || this.submitting) {
      return null;
    }
    if (this.sweeps.active) {
      await this.submitSweep();
      return null;
    }
    ep.parameters.forEach(p => this.touched.add(p.name));
    const clientErrors = this.clientParamErrors();
    if (Object.keys(clientErrors).length > 0) {
      this.errors = { ...emptyErrors(), parameters: clientErrors };
      this.emit();
      return null;
    }
    if (!this.runName.trim()) {
      this.runName = defaultRunName(ep.name);
    }
    const parameters = parametersToSubmit(ep, this.params);
    const overrides = configOverrides(this.configOriginal, this.configData) ?? [];
    const experiment = this.experiment.trim() || null;
    const runName = this.runName.trim();
    const rerunOf = this.rerunOf;
    const sameSource =
      rerunOf !== null &&
      rerunOf.entry_point === ep.name &&
      configPathOfRun(rerunOf.project_path, rerunOf.config_path) === this.configPath;
    const configPath = this.configPath;
    const send = (): Promise<IRun> =>
      sameSource
        ? rerun(rerunOf.id, {
            parameters,
            overrides,
            run_name: runName,
            experiment_name: experiment
          })
        : submitRun({
            project: project.path,
            entry_point: ep.name,
            parameters,
            backend_config: configPath || null,
            overrides,
            run_name: runName,
            experiment_name: experiment
          });
    const upload = (): Promise<IRun> =>
      watchUpload(send(), runName, Date.now() / 1000, progress => {
        this.progress = progress;
        this.emit();
      });
    this.submitting = true;
    this.progress = null;
    this.errors = emptyErrors();
    this.notice = null;
    this.emit();
    try {
      const run = await this.withCredentials(upload, project.path, configPath);
      this.lastRun = run;
      this.dirty = false;
      this.runName = defaultRunName(ep.name);
      this.watchLastRun(run.id);
      void this.refreshExperiments();
      return run;
    } catch (error) {
      this.errors = this.errorsOf(error);
      return null;
    } finally {
      this.submitting = false;
      this.progress = null;
      this.emit();
    }
  }

  /** Submit the sweep the form defines (a new sweep, also when pre-filled from a run). */
  private async submitSweep(): Promise<void> {
    const ep = this.entryPoint;
    ep?.parameters.forEach(p => this.touched.add(p.name));
    const clientErrors = { ...this.clientParamErrors(), ...this.sweeps.clientErrors() };
    const settingsError = this.sweeps.settingsError();
    const base = this.sweepRequest();
    if (!base || !ep || Object.keys(clientErrors).length > 0 || settingsError) {
      const general = settingsError ? [settingsError] : [];
      this.errors = { ...emptyErrors(), parameters: clientErrors, general };
      this.emit();
      return;
    }
    const request = this.sweeps.apply(base);
    this.submitting = true;
    this.errors = emptyErrors();
    this.notice = null;
    this.emit();
    try {
      this.sweeps.lastSweep = await this.withCredentials(
        () => submitSweep(request),
        base.project,
        base.backend_config ?? ''
      );
      this.dirty = false;
      this.runName = defaultRunName(ep.name);
      void this.refreshExperiments();
    } catch (error) {
      this.errors = this.errorsOf(error);
    } finally {
      this.submitting = false;
      this.emit();
    }
  }

  /** The sweep request without its sweep part (fixed values, config, names). */
  private sweepRequest(): ISweepRequest | null {
    const project = this.project;
    const ep = this.entryPoint;
    if (!project || !ep) {
      return null;
    }
    const swept = (name: string): boolean => this.sweeps.isSwept(name);
    const fixed = parametersToSubmit(ep, this.params);
    return {
      project: project.path,
      entry_point: ep.name,
      parameters: Object.fromEntries(Object.entries(fixed).filter(([name]) => !swept(name))),
      backend_config: this.configPath || null,
      overrides: configOverrides(this.configOriginal, this.configData) ?? [],
      run_name: this.runName.trim() || defaultRunName(ep.name),
      experiment_name: this.experiment.trim() || null
    };
  }

  /** Write the edited Resources/Environment into the chosen config file. */
  async saveConfig(): Promise<boolean> {
    if (!this.project || !this.configPath || this.saving) {
      return false;
    }
    const sections = sectionsToSave(this.configOriginal, this.configData);
    this.saving = true;
    this.emit();
    try {
      const answer = await saveConfigSections(this.project.path, this.configPath, sections);
      this.project = { ...this.project, backend_configs: answer.backend_configs };
      this.resetConfigData();
      this.errors = { ...this.errors, config: {} };
      this.notice = this.configPath;
      return true;
    } catch (error) {
      this.errors = this.errorsOf(error);
      return false;
    } finally {
      this.saving = false;
      this.emit();
    }
  }

  dispose(): void {
    this.disposed = true;
    this.sweeps.dispose();
    window.clearTimeout(this.watchTimer);
    Signal.clearData(this);
  }

  // ------------------------------------------------------------ helpers

  /**
   * `send()`; when the server lacks credentials, ask for them, store them on
   * the server and send once more. On Cancel, the first error is thrown.
   */
  private async withCredentials<T>(
    send: () => Promise<T>,
    project: string,
    configPath: string
  ): Promise<T> {
    try {
      return await send();
    } catch (error) {
      const needed = credentialsNeeded(error);
      const ask = this.options.askCredentials;
      if (!needed || !ask || !configPath) {
        throw error;
      }
      this.awaitingCredentials = needed.connection;
      this.emit();
      let entered: boolean;
      try {
        entered = await enterCredentials(needed, { project, backend_config: configPath }, ask);
      } finally {
        this.awaitingCredentials = null;
        this.emit();
      }
      if (!entered) {
        throw error;
      }
      return send();
    }
  }

  private clientParamErrors(): Record<string, string[]> {
    if (!this.entryPoint) {
      return {};
    }
    const all = parameterErrors(this.entryPoint, this.params);
    const shown = Object.fromEntries(
      Object.entries(all).filter(([name]) => this.touched.has(name) && !this.sweeps.isSwept(name))
    );
    return fieldErrorsFrom(shown);
  }

  private errorsOf(error: unknown): ISubmitErrors {
    if (error instanceof HpcmlApiError && error.problems.length > 0) {
      return problemsToErrors(error.problems);
    }
    return { ...emptyErrors(), general: [errorText(error)] };
  }

  /** Config sections of the rerun's run, else of the chosen file. */
  private resetConfigData(): void {
    const form = this.configForm;
    if (!form) {
      return;
    }
    let source: JSONObject | null = null;
    if (this.rerunOf) {
      source = this.rerunOf.backend_config;
    } else if (this.configPath) {
      const info = this.project?.backend_configs.find(c => c.path === this.configPath);
      source = info?.config ?? null;
    }
    this.configOriginal = configToFormData(isObject(source) ? source : null, form);
    this.configData = clone(this.configOriginal);
  }

  private watchLastRun(id: string): void {
    window.clearTimeout(this.watchTimer);
    const tick = async (): Promise<void> => {
      if (this.disposed || this.lastRun?.id !== id) {
        return;
      }
      try {
        this.lastRun = await getRun(id);
        this.emit();
      } catch {
        // Keep the last known state; try again.
      }
      if (this.lastRun && !TERMINAL_STATES.has(this.lastRun.state)) {
        this.watchTimer = window.setTimeout(
          () => void tick(),
          Math.max(0.5, this.options.pollInterval()) * 1000
        );
      }
    };
    this.watchTimer = window.setTimeout(() => void tick(), 300);
  }

  private markDirty(): void {
    this.dirty = true;
    this.sweeps.schedulePreview();
    this.emit();
  }

  private emit(): void {
    if (!this.disposed) {
      this._changed.emit();
    }
  }

  private readonly _changed = new Signal<this, void>(this);
  private readonly touched = new Set<string>();
  private watchTimer = 0;
  private disposed = false;
}
