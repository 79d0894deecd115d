/**
 * The controls every RefreshingModel's tab has: a Refresh button (not to wait
 * for the timer) and a status line with the last error or what is shown.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { RefreshingModel } from './refreshingModel';

export function RefreshButton(props: {
  model: RefreshingModel;
  trans: TranslationBundle;
}): JSX.Element {
  return (
    <button
      type="button"
      className="jp-mod-styled jp-hpcml-button"
      onClick={() => void props.model.refresh()}
    >
      {props.trans.__('Refresh')}
    </button>
  );
}

/** The model's error, else `text` (e.g. "3 schedules"); read out as it changes. */
export function RefreshStatus(props: {
  model: RefreshingModel;
  text: string;
  trans: TranslationBundle;
}): JSX.Element {
  const { error } = props.model;
  return (
    <span className={`jp-hpcml-Runs-status${error ? ' jp-mod-error' : ''}`} aria-live="polite">
      {error ? props.trans.__('Error: %1', error) : props.text}
    </span>
  );
}
