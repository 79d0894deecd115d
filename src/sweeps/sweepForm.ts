/**
 * The sweep half of the submit sidebar's state: which parameters sweep and
 * how, the random-sample count, the max-parallel cap, and how many runs the
 * server says the definition makes (preview, debounced). No DOM.
 */
import { previewSweep } from '../api';
import { HpcmlApiError } from '../errors';
import { FieldErrors, problemsToErrors } from '../forms/problems';
import { ISweep, ISweepPreview, ISweepRequest } from '../types';
import { emptySpec, isContinuous, ISweepSpec, missingText, overrideText } from './overrides';

/** Milliseconds of quiet before a preview request. */
export const PREVIEW_DELAY = 400;

export interface ISweepFormOptions {
  /** The request as the sidebar would send it now (null without project/entry point). */
  request: () => ISweepRequest | null;
  /** Something to repaint. */
  changed: () => void;
  /** The user changed a sweep setting (the form has edits). */
  edited?: () => void;
}

function whole(text: string): number | null {
  const t = text.trim();
  return /^\d+$/.test(t) ? Number(t) : null;
}

export class SweepForm {
  constructor(private readonly options: ISweepFormOptions) {}

  /** Swept parameters by name. */
  specs: Record<string, ISweepSpec> = {};
  /** Random samples (text as typed). */
  random = '';
  /** Max parallel children (text as typed; empty: no cap). */
  maxParallel = '';
  preview: ISweepPreview | null = null;
  /** Preview problems at their parameters (`parameters.<name>` keys). */
  problems: FieldErrors = {};
  /** Preview problems no parameter claims. */
  general: string[] = [];
  previewing = false;
  /** The last sweep submitted from here. */
  lastSweep: ISweep | null = null;

  get active(): boolean {
    return Object.keys(this.specs).length > 0;
  }

  /** Some swept parameter needs random search (interval or log). */
  get needsRandom(): boolean {
    return Object.values(this.specs).some(s => isContinuous(s.kind));
  }

  isSwept(name: string): boolean {
    return name in this.specs;
  }

  /** Switch `name` to sweep values (starting from its current value) or back. */
  toggle(name: string, value: unknown = ''): void {
    if (name in this.specs) {
      const { [name]: _dropped, ...rest } = this.specs;
      this.specs = rest;
    } else {
      const text = typeof value === 'string' || typeof value === 'number' ? String(value) : '';
      this.specs = { ...this.specs, [name]: emptySpec('list', text) };
    }
    this.edited();
  }

  setSpec(name: string, patch: Partial<ISweepSpec>): void {
    const spec = this.specs[name];
    if (spec) {
      this.specs = { ...this.specs, [name]: { ...spec, ...patch } };
      this.edited();
    }
  }

  setRandom(text: string): void {
    this.random = text;
    this.edited();
  }

  setMaxParallel(text: string): void {
    this.maxParallel = text;
    this.edited();
  }

  /** Forget every sweep setting (another entry point or project). */
  reset(): void {
    window.clearTimeout(this.timer);
    this.specs = {};
    this.random = '';
    this.maxParallel = '';
    this.clearPreview();
  }

  /** Problems the client sees before asking the server, by parameter or field. */
  clientErrors(): FieldErrors {
    const out: FieldErrors = {};
    for (const [name, spec] of Object.entries(this.specs)) {
      const missing = missingText(spec);
      if (missing) {
        out[name] = [`parameter '${name}': ${missing}`];
      }
    }
    return out;
  }

  /** Why the sweep settings (random, max parallel) cannot be sent, if they cannot. */
  settingsError(): string | null {
    if (this.needsRandom && !whole(this.random)) {
      return 'interval and log values need a number of random samples';
    }
    if (this.random.trim() && !whole(this.random)) {
      return 'random samples must be a whole number';
    }
    if (this.maxParallel.trim() && !whole(this.maxParallel)) {
      return 'max parallel must be a whole number';
    }
    return null;
  }

  /** The sweep part of a request: override texts over the fixed values, random, cap. */
  apply(base: ISweepRequest): ISweepRequest {
    const parameters = { ...base.parameters };
    for (const [name, spec] of Object.entries(this.specs)) {
      const text = overrideText(spec);
      if (text !== null) {
        parameters[name] = text;
      }
    }
    const random = whole(this.random);
    const cap = whole(this.maxParallel);
    return {
      ...base,
      parameters,
      ...(random ? { random } : {}),
      ...(cap ? { max_parallel: cap } : {})
    };
  }

  /** Ask the server for the run count once the user stops typing. */
  schedulePreview(): void {
    window.clearTimeout(this.timer);
    if (!this.active) {
      return;
    }
    this.timer = window.setTimeout(() => void this.fetchPreview(), PREVIEW_DELAY);
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    this.abort?.abort();
  }

  private edited(): void {
    this.problems = {};
    this.general = [];
    this.options.edited?.();
    this.options.changed();
    this.schedulePreview();
  }

  private clearPreview(): void {
    this.abort?.abort();
    this.preview = null;
    this.problems = {};
    this.general = [];
    this.previewing = false;
  }

  private async fetchPreview(): Promise<void> {
    const base = this.options.request();
    if (!base || Object.keys(this.clientErrors()).length || this.settingsError()) {
      this.clearPreview();
      this.options.changed();
      return;
    }
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    this.previewing = true;
    this.options.changed();
    try {
      const preview = await previewSweep(this.apply(base), abort.signal);
      if (abort.signal.aborted) {
        return;
      }
      this.preview = preview;
      this.problems = {};
      this.general = [];
    } catch (error) {
      if (abort.signal.aborted) {
        return;
      }
      this.preview = null;
      if (error instanceof HpcmlApiError && error.problems.length) {
        const errors = problemsToErrors(error.problems);
        this.problems = errors.parameters;
        this.general = [
          ...errors.general,
          ...Object.values(errors.fields).flat(),
          ...Object.values(errors.config).flat()
        ];
      } else {
        this.general = [error instanceof Error ? error.message : String(error)];
      }
    }
    this.previewing = false;
    this.options.changed();
  }

  private timer = 0;
  private abort: AbortController | null = null;
}
