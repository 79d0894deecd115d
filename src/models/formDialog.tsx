/**
 * A dialog over a draft: fields drawn from the draft, client checks before
 * sending, and the server's refusal shown in the dialog (by field where it
 * names one) until the user sends something it accepts or cancels.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { UseSignal } from '@jupyterlab/ui-components';
import { ISignal, Signal } from '@lumino/signaling';
import React from 'react';

import { errorsByKey } from '../schedules/cronPreview';
import { FieldErrors } from '../components/fields';
import { DraftProblems } from './request';
import { DialogBody } from '../components/dialogBody';

/** A draft and the problems of the last attempt, by request key. */
export class DraftForm<T extends object> {
  /** @param requestKeys - the request key of each field (problems come back by it) */
  constructor(
    public draft: T,
    private readonly requestKeys: Record<keyof T, string>
  ) {}

  errors: Record<string, string[]> = {};

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  set(patch: Partial<T>): void {
    this.draft = { ...this.draft, ...patch };
    for (const field of Object.keys(patch) as (keyof T)[]) {
      delete this.errors[this.requestKeys[field]];
    }
    this._changed.emit();
  }

  errorsOf(field: keyof T): string[] {
    return this.errors[this.requestKeys[field]] ?? [];
  }

  /** Problems no field shows (the server's message, other keys). */
  get generalErrors(): string[] {
    const shown = new Set(Object.values(this.requestKeys));
    return Object.entries(this.errors)
      .filter(([key]) => !shown.has(key))
      .flatMap(([key, messages]) => messages.map(m => (key ? `${key}: ${m}` : m)));
  }

  refused(problems: Record<string, string[]>): void {
    this.errors = problems;
    this._changed.emit();
  }

  dispose(): void {
    Signal.clearData(this);
  }

  private readonly _changed = new Signal<this, void>(this);
}

class FormBody<T extends object> extends DialogBody implements Dialog.IBodyWidget<T> {
  constructor(
    private readonly form: DraftForm<T>,
    private readonly fields: (form: DraftForm<T>) => JSX.Element,
    private readonly bodyClass: string
  ) {
    super();
    this.addClass(bodyClass);
  }

  getValue(): T {
    return this.form.draft;
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this.form.changed}>
        {() => (
          <>
            <FieldErrors id={`${this.bodyClass}__general`} errors={this.form.generalErrors} />
            {this.fields(this.form)}
          </>
        )}
      </UseSignal>
    );
  }
}

export interface IFormDialogOptions<T extends object, R> {
  title: string;
  acceptLabel: string;
  className: string;
  form: DraftForm<T>;
  fields: (form: DraftForm<T>) => JSX.Element;
  problems: (draft: T) => DraftProblems;
  submit: (draft: T) => Promise<R>;
  focus?: string;
}

/** Show the dialog until `submit` succeeds (its answer) or the user cancels (null). */
export async function formDialog<T extends object, R>(
  options: IFormDialogOptions<T, R>
): Promise<R | null> {
  const { form } = options;
  try {
    for (;;) {
      const result = await showDialog<T>({
        title: options.title,
        body: new FormBody(form, options.fields, options.className),
        buttons: [Dialog.cancelButton(), Dialog.okButton({ label: options.acceptLabel })],
        focusNodeSelector: options.focus
      });
      if (!result.button.accept) {
        return null;
      }
      const problems = options.problems(form.draft);
      if (Object.keys(problems).length) {
        form.refused(Object.fromEntries(Object.entries(problems).map(([k, m]) => [k, [m]])));
        continue;
      }
      try {
        return await options.submit(form.draft);
      } catch (error) {
        form.refused(errorsByKey(error));
      }
    }
  } finally {
    form.dispose();
  }
}
