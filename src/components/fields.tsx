/**
 * Labelled inputs of the lab's dialogs (Schedule…, Deploy…, Register model…):
 * each with its description and the errors of its request key, wired for
 * screen readers.
 */
import React from 'react';

export const FIELD_ID = 'hpcml-field-';

export function FieldErrors(props: { id: string; errors: string[] }): JSX.Element | null {
  return props.errors.length ? (
    <div id={props.id} className="jp-hpcml-Field-error" role="alert">
      {props.errors.map((m, i) => (
        <div key={i}>{m}</div>
      ))}
    </div>
  ) : null;
}

/** A label, one control (given its id and describedby), a description and the errors. */
export function Field(props: {
  name: string;
  label: string;
  description?: string;
  errors: string[];
  children: (id: string, describedBy: string | undefined) => JSX.Element;
}): JSX.Element {
  const id = FIELD_ID + props.name;
  const described = [
    props.description ? `${id}__description` : '',
    props.errors.length ? `${id}__error` : ''
  ]
    .filter(Boolean)
    .join(' ');
  return (
    <div className="jp-hpcml-Field" data-field={props.name}>
      <label htmlFor={id} className="jp-hpcml-Field-label">
        {props.label}
      </label>
      {props.children(id, described || undefined)}
      {props.description && (
        <div id={`${id}__description`} className="jp-hpcml-Field-description">
          {props.description}
        </div>
      )}
      <FieldErrors id={`${id}__error`} errors={props.errors} />
    </div>
  );
}

/** A select of fixed choices (value → label). */
export function Choice<T extends string>(props: {
  id: string;
  describedBy: string | undefined;
  value: T;
  choices: [T, string][];
  onChange: (value: T) => void;
}): JSX.Element {
  return (
    <select
      id={props.id}
      className="jp-mod-styled"
      value={props.value}
      aria-describedby={props.describedBy}
      onChange={event => props.onChange(event.target.value as T)}
    >
      {props.choices.map(([value, label]) => (
        <option key={value} value={value}>
          {label}
        </option>
      ))}
    </select>
  );
}
