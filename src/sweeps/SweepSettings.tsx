/**
 * Below the parameters while some parameter sweeps: random samples, max
 * parallel, and how many runs the sweep will create (the server's preview).
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { SweepForm } from './sweepForm';

function NumberField(props: {
  id: string;
  label: string;
  hint: string;
  value: string;
  disabled: boolean;
  onChange: (text: string) => void;
}): JSX.Element {
  return (
    <div className="jp-hpcml-Field">
      <label htmlFor={props.id} className="jp-hpcml-Field-label">
        {props.label}
      </label>
      <div className="jp-hpcml-Field-input">
        <input
          id={props.id}
          type="text"
          inputMode="numeric"
          className="jp-mod-styled"
          placeholder={props.hint}
          value={props.value}
          disabled={props.disabled}
          onChange={event => props.onChange(event.target.value)}
        />
      </div>
    </div>
  );
}

/** The run count line: what the preview answered, or why there is none. */
export function runCountText(sweeps: SweepForm, trans: TranslationBundle): string {
  if (sweeps.previewing && !sweeps.preview) {
    return trans.__('Counting runs…');
  }
  if (!sweeps.preview) {
    return '';
  }
  const { points, mode } = sweeps.preview;
  const text = trans._n('%1 run', '%1 runs', points);
  return mode === 'random' ? trans.__('%1 (random search)', text) : text;
}

export function SweepSettings(props: {
  sweeps: SweepForm;
  disabled: boolean;
  trans: TranslationBundle;
}): JSX.Element | null {
  const { sweeps, disabled, trans } = props;
  if (!sweeps.active) {
    return null;
  }
  const settingsError = sweeps.settingsError();
  const count = runCountText(sweeps, trans);
  return (
    <div className="jp-hpcml-SweepSettings" aria-label={trans.__('Sweep settings')}>
      <NumberField
        id="hpcml-sweep-random"
        label={trans.__('Random samples')}
        hint={sweeps.needsRandom ? trans.__('required') : trans.__('grid (all points)')}
        value={sweeps.random}
        disabled={disabled}
        onChange={text => sweeps.setRandom(text)}
      />
      <NumberField
        id="hpcml-sweep-max-parallel"
        label={trans.__('Max parallel')}
        hint={trans.__('no cap')}
        value={sweeps.maxParallel}
        disabled={disabled}
        onChange={text => sweeps.setMaxParallel(text)}
      />
      <div className="jp-hpcml-SweepRuns" role="status" aria-live="polite">
        {count}
      </div>
      {settingsError && (
        <div className="jp-hpcml-Field-error" role="alert">
          {settingsError}
        </div>
      )}
      {sweeps.general.length > 0 && (
        <div className="jp-hpcml-Field-error" role="alert">
          {sweeps.general.map((m, i) => (
            <div key={i}>{m}</div>
          ))}
        </div>
      )}
    </div>
  );
}
