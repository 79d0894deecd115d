/**
 * A labelled <select> with its errors (entry point and backend config pickers).
 */
import { HTMLSelect } from '@jupyterlab/ui-components';
import React from 'react';

export interface IPickerOption {
  value: string;
  label: string;
  disabled?: boolean;
}

export function Picker(props: {
  id: string;
  label: string;
  value: string;
  options: IPickerOption[];
  onChange: (value: string) => void;
  errors?: string[];
  hint?: string;
  disabled?: boolean;
}): JSX.Element {
  const errors = props.errors ?? [];
  const describedBy = [
    props.hint ? `${props.id}__description` : '',
    errors.length ? `${props.id}__error` : ''
  ]
    .filter(x => x)
    .join(' ');
  return (
    <div className={`jp-hpcml-Field${errors.length ? ' jp-hpcml-mod-error' : ''}`}>
      <label htmlFor={props.id} className="jp-hpcml-Field-label">
        {props.label}
      </label>
      <HTMLSelect
        id={props.id}
        value={props.value}
        disabled={props.disabled}
        aria-describedby={describedBy || undefined}
        onChange={event => props.onChange(event.currentTarget.value)}
        options={props.options}
      />
      {props.hint && (
        <div id={`${props.id}__description`} className="jp-hpcml-Field-description">
          {props.hint}
        </div>
      )}
      {errors.length > 0 && (
        <div id={`${props.id}__error`} className="jp-hpcml-Field-error" role="alert">
          {errors.map((message, i) => (
            <div key={i}>{message}</div>
          ))}
        </div>
      )}
    </div>
  );
}
