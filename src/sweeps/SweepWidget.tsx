/**
 * The parameter form's input with a "sweep values" switch: the usual input
 * while the parameter has one value, else the sweep editor (kind + its
 * inputs). An rjsf widget set per field through the uiSchema; the sweep spec
 * travels in `ui:options` so that rjsf (which skips re-rendering fields whose
 * props are deep-equal) repaints it when the spec changes.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import { HTMLSelect } from '@jupyterlab/ui-components';
import { WidgetProps } from '@rjsf/utils';
import React from 'react';

import { JSONObject } from '../forms/jsonSchema';
import { ISweepSpec, SWEEP_KINDS, SweepKind } from './overrides';
import { SweepForm } from './sweepForm';

/** `ui:options` of a sweepable field. */
export interface ISweepOptions {
  param: string;
  sweep: ISweepSpec | null;
}

function kindLabel(kind: SweepKind, trans: TranslationBundle): string {
  switch (kind) {
    case 'list':
      return trans.__('list');
    case 'range':
      return trans.__('range');
    case 'interval':
      return trans.__('interval (random)');
    case 'log':
      return trans.__('log interval (random)');
  }
}

function SpecInput(props: {
  id: string;
  label: string;
  placeholder: string;
  value: string;
  disabled: boolean;
  onChange: (text: string) => void;
}): JSX.Element {
  return (
    <input
      id={props.id}
      type="text"
      className="jp-mod-styled jp-hpcml-Sweep-input"
      aria-label={props.label}
      placeholder={props.placeholder}
      value={props.value}
      disabled={props.disabled}
      onChange={event => props.onChange(event.target.value)}
    />
  );
}

/** Kind picker and the inputs of that kind. */
export function SweepEditor(props: {
  id: string;
  param: string;
  spec: ISweepSpec;
  disabled: boolean;
  onChange: (patch: Partial<ISweepSpec>) => void;
  trans: TranslationBundle;
}): JSX.Element {
  const { id, param, spec, disabled, onChange, trans } = props;
  const input = (field: keyof ISweepSpec, label: string, placeholder: string): JSX.Element => (
    <SpecInput
      key={field}
      id={`${id}__${field}`}
      label={trans.__('%1 of %2', label, param)}
      placeholder={placeholder}
      value={spec[field]}
      disabled={disabled}
      onChange={text => onChange({ [field]: text })}
    />
  );
  return (
    <div className="jp-hpcml-Sweep-editor" data-kind={spec.kind}>
      <HTMLSelect
        id={id}
        className="jp-hpcml-Sweep-kind"
        aria-label={trans.__('Sweep kind of %1', param)}
        value={spec.kind}
        disabled={disabled}
        onChange={event => onChange({ kind: event.currentTarget.value as SweepKind })}
        options={SWEEP_KINDS.map(kind => ({ value: kind, label: kindLabel(kind, trans) }))}
      />
      {spec.kind === 'list' && input('list', trans.__('Values'), '0.1, 0.01, 0.001')}
      {spec.kind === 'range' && [
        input('start', trans.__('Start'), trans.__('start')),
        input('stop', trans.__('Stop'), trans.__('stop (excl.)')),
        input('step', trans.__('Step'), trans.__('step (1)'))
      ]}
      {(spec.kind === 'interval' || spec.kind === 'log') && [
        input('lo', trans.__('Lower bound'), trans.__('low')),
        input('hi', trans.__('Upper bound'), trans.__('high'))
      ]}
    </div>
  );
}

/** The widget component for one form (stable identity: rjsf remounts on a new one). */
export function sweepableWidget(
  sweeps: SweepForm,
  trans: TranslationBundle
): (props: WidgetProps) => JSX.Element {
  return function SweepableWidget(props: WidgetProps): JSX.Element {
    const options = props.options as unknown as Partial<ISweepOptions>;
    const param = options.param ?? props.name;
    const spec = options.sweep ?? null;
    const disabled = !!(props.disabled || props.readonly);
    const Text = props.registry.widgets.TextWidget;
    return (
      <div className="jp-hpcml-Sweepable" data-swept={spec ? 'true' : 'false'}>
        {spec ? (
          <SweepEditor
            id={props.id}
            param={param}
            spec={spec}
            disabled={disabled}
            onChange={patch => sweeps.setSpec(param, patch)}
            trans={trans}
          />
        ) : (
          <Text {...props} />
        )}
        <button
          type="button"
          className="jp-mod-styled jp-hpcml-Sweep-toggle"
          aria-pressed={!!spec}
          disabled={disabled}
          title={
            spec
              ? trans.__('Use one value for %1', param)
              : trans.__('Sweep several values of %1', param)
          }
          aria-label={spec ? trans.__('One value: %1', param) : trans.__('Sweep %1', param)}
          onClick={() => sweeps.toggle(param, props.value)}
        >
          {spec ? trans.__('value') : trans.__('sweep')}
        </button>
      </div>
    );
  };
}

/** The form's uiSchema with the sweepable widget on every parameter. */
export function withSweepWidget(
  uiSchema: JSONObject,
  params: string[],
  widget: (props: WidgetProps) => JSX.Element,
  specs: Record<string, ISweepSpec>
): JSONObject {
  const out: JSONObject = { ...uiSchema };
  for (const param of params) {
    const own = (uiSchema[param] as JSONObject | undefined) ?? {};
    const ownOptions = (own['ui:options'] as JSONObject | undefined) ?? {};
    const options: ISweepOptions = { param, sweep: specs[param] ?? null };
    out[param] = {
      ...own,
      'ui:widget': widget,
      'ui:options': { ...ownOptions, ...options }
    };
  }
  return out;
}
