/**
 * rjsf field template: label, input, description, "Default: …", a reset
 * button when the value differs from its default, and the field's errors
 * (ids as rjsf's `aria-describedby` expects: `<id>__error`, `<id>__description`).
 */
import { TranslationBundle } from '@jupyterlab/translation';
import { FieldTemplateProps } from '@rjsf/utils';
import React from 'react';

import { deepEqual, getPath, JSONObject } from './jsonSchema';

/** What the forms pass through rjsf's `formContext`. */
export interface IFormContext {
  /** Values the reset buttons restore (MLproject defaults, the config file's values). */
  defaults: JSONObject;
  onReset: (path: string[]) => void;
  trans: TranslationBundle;
  /** Separator of rjsf ids, to read a field's path from its id. */
  idSeparator: string;
}

function show(value: unknown): string {
  if (value === undefined) {
    return '';
  }
  return typeof value === 'string' ? (value === '' ? '""' : value) : JSON.stringify(value);
}

export function FieldTemplate(props: FieldTemplateProps): JSX.Element {
  const { id, label, required, children, rawErrors, schema, displayLabel, hidden } = props;
  const formData: unknown = props.formData;
  const context = props.formContext as IFormContext;
  if (hidden) {
    return <div className="jp-hpcml-hidden">{children}</div>;
  }
  const path = id.split(context.idSeparator).slice(1);
  const isRoot = path.length === 0;
  const isContainer = schema.type === 'object';
  const defaultValue = isRoot ? undefined : getPath(context.defaults, path);
  const modified =
    !isRoot &&
    (defaultValue !== undefined || formData !== undefined) &&
    !deepEqual(formData, defaultValue);
  const errors = (rawErrors ?? []).filter(e => e);
  const trans = context.trans;
  const title = String(label || path[path.length - 1] || '');
  const className = [
    'jp-hpcml-Field',
    isContainer ? 'jp-hpcml-Field-group' : '',
    errors.length ? 'jp-hpcml-mod-error' : '',
    modified ? 'jp-hpcml-mod-modified' : ''
  ]
    .filter(c => c)
    .join(' ');
  return (
    <div className={className} data-path={path.join('.')}>
      {displayLabel && !isContainer && !isRoot && (
        <label htmlFor={id} className="jp-hpcml-Field-label">
          {title}
          {required ? <span aria-hidden="true"> *</span> : null}
        </label>
      )}
      <div className="jp-hpcml-Field-input">
        {children}
        {modified && !isContainer && (
          <button
            type="button"
            className="jp-hpcml-Field-reset jp-mod-styled"
            onClick={() => context.onReset(path)}
            title={
              defaultValue === undefined
                ? trans.__('Clear %1', title)
                : trans.__('Reset %1 to %2', title, show(defaultValue))
            }
            aria-label={trans.__('Reset %1 to default', title)}
          >
            ↺
          </button>
        )}
      </div>
      {!isContainer && !isRoot && schema.type !== 'array' && schema.description && (
        <div id={`${id}__description`} className="jp-hpcml-Field-description">
          {schema.description}
        </div>
      )}
      {modified && defaultValue !== undefined && !isContainer && (
        <div className="jp-hpcml-Field-default">{trans.__('Default: %1', show(defaultValue))}</div>
      )}
      {errors.length > 0 && (
        <div id={`${id}__error`} className="jp-hpcml-Field-error" role="alert">
          {errors.map((message, i) => (
            <div key={i}>{message}</div>
          ))}
        </div>
      )}
    </div>
  );
}
