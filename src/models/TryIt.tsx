/**
 * Try it: send a payload (JSON or CSV; prefilled with the version's input
 * example) to a READY deployment and show its predictions, or why not.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React, { useEffect, useState } from 'react';

import { errorText } from '../errors';
import { predictionsText } from './format';
import { IInvocation, invocation } from './request';
import { IDeployment, PayloadFormat } from './types';

type Outcome = { ok: boolean; text: string } | null;

export function TryIt(props: {
  deployment: IDeployment;
  /** The input example as pretty JSON ('' when none). */
  example: string;
  send: (deployment: IDeployment, req: IInvocation) => Promise<unknown>;
  trans: TranslationBundle;
}): JSX.Element {
  const { deployment, example, trans } = props;
  const [format, setFormat] = useState<PayloadFormat>('json');
  const [text, setText] = useState(example);
  const [sending, setSending] = useState(false);
  const [outcome, setOutcome] = useState<Outcome>(null);
  // The example may arrive after the panel opened: fill it in if nothing was typed.
  useEffect(() => {
    if (!text && example) {
      setText(example);
    }
  }, [example]);

  const send = async (): Promise<void> => {
    setSending(true);
    try {
      const answer = await props.send(deployment, invocation(format, text));
      setOutcome({ ok: true, text: predictionsText(answer) });
    } catch (error) {
      setOutcome({ ok: false, text: errorText(error) });
    }
    setSending(false);
  };

  const id = `hpcml-tryit-${deployment.name}`;
  return (
    <div className="jp-hpcml-TryIt" data-deployment={deployment.name}>
      <div className="jp-hpcml-TryIt-controls" role="radiogroup" aria-label={trans.__('Format')}>
        {(['json', 'csv'] as PayloadFormat[]).map(f => (
          <label key={f}>
            <input
              type="radio"
              name={`${id}-format`}
              value={f}
              checked={format === f}
              onChange={() => setFormat(f)}
            />
            {f === 'json' ? 'JSON' : 'CSV'}
          </label>
        ))}
      </div>
      <label htmlFor={id} className="jp-hpcml-Field-label">
        {format === 'json'
          ? trans.__('Payload (MLflow JSON: dataframe_split, dataframe_records, inputs…)')
          : trans.__('Payload (CSV with a header row)')}
      </label>
      <textarea
        id={id}
        className="jp-mod-styled jp-hpcml-TryIt-payload"
        rows={8}
        spellCheck={false}
        value={text}
        onChange={event => setText(event.target.value)}
      />
      <button
        type="button"
        className="jp-mod-styled jp-mod-accept jp-hpcml-TryIt-send"
        disabled={sending}
        onClick={() => void send()}
      >
        {sending ? trans.__('Sending…') : trans.__('Send')}
      </button>
      {outcome && (
        <pre
          className={`jp-hpcml-TryIt-result${outcome.ok ? '' : ' jp-mod-error'}`}
          data-ok={outcome.ok ? 'true' : 'false'}
          aria-live="polite"
        >
          {outcome.text}
        </pre>
      )}
    </div>
  );
}
