/**
 * The dialog asking for FirecREST/UNICORE credentials the server lacks: one
 * of the alternative sets of fields, secrets in password inputs. The values
 * stay in the inputs (uncontrolled) until OK reads them once for the PUT
 * request; the dialog is disposed right after.
 */
import { Dialog, InputDialog, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { forgetCredentials, listCredentials } from '../api';
import { formatProblem } from '../errors';
import { IProblem } from '../types';
import {
  destinationText,
  fieldLabel,
  fieldSetLabel,
  ICredentialsEntry,
  ICredentialsNeeded,
  isSecretField,
  kindLabel,
  problemField
} from './credentials';
import { DialogBody } from '../components/dialogBody';

const ID = 'jp-hpcml-credential-';

class CredentialsBody extends DialogBody implements Dialog.IBodyWidget<ICredentialsEntry> {
  constructor(
    private readonly needed: ICredentialsNeeded,
    private readonly problems: IProblem[],
    private choice: number,
    private readonly trans: TranslationBundle
  ) {
    super();
    this.addClass('jp-hpcml-Credentials');
  }

  getValue(): ICredentialsEntry {
    const values: Record<string, string> = {};
    this.node.querySelectorAll<HTMLInputElement>('input[data-field]').forEach(input => {
      values[input.dataset.field as string] = input.value;
    });
    return { choice: this.choice, values };
  }

  protected render(): JSX.Element {
    const { needed, trans } = this;
    const set = needed.fields[this.choice] ?? needed.fields[0];
    const fieldProblems = (f: string) => this.problems.filter(p => problemField(p) === f);
    // Problems of another set's fields no longer apply once the user switched.
    const known = needed.fields.flat();
    const general = this.problems.filter(p => !known.includes(problemField(p) ?? ''));
    const destination = destinationText(needed, set, trans);
    return (
      <>
        <p>
          {trans.__('The server has no %1 credentials for the connection', kindLabel(needed.kind))}{' '}
          <code className="jp-hpcml-Credentials-connection">{needed.connection}</code>.{' '}
          {trans.__('They are kept in the server’s memory only, until it stops.')}
        </p>
        {destination && (
          <p className="jp-hpcml-Credentials-destination">
            <strong>{destination}</strong>
          </p>
        )}
        <p className="jp-hpcml-Muted">{needed.message}</p>
        {general.length > 0 && (
          <div className="jp-hpcml-Field-error" role="alert">
            {general.map((p, i) => (
              <div key={i}>{formatProblem(p)}</div>
            ))}
          </div>
        )}
        {needed.fields.length > 1 && (
          <div role="radiogroup" aria-label={trans.__('Sign in with')} className="jp-hpcml-Field">
            {needed.fields.map((s, i) => (
              <label key={i} style={{ display: 'block' }}>
                <input
                  type="radio"
                  name={`${ID}choice`}
                  checked={i === this.choice}
                  onChange={() => {
                    this.choice = i;
                    this.update();
                  }}
                />{' '}
                {fieldSetLabel(s, trans)}
              </label>
            ))}
          </div>
        )}
        {set.map(f => (
          <div className="jp-hpcml-Field" key={`${this.choice}:${f}`}>
            <label htmlFor={ID + f} className="jp-hpcml-Field-label">
              {fieldLabel(f, trans)}
            </label>
            <input
              id={ID + f}
              data-field={f}
              className="jp-mod-styled"
              type={isSecretField(f) ? 'password' : 'text'}
              autoComplete="off"
              spellCheck={false}
              required
              style={{ width: '100%', boxSizing: 'border-box' }}
            />
            {fieldProblems(f).map((p, i) => (
              <div key={i} className="jp-hpcml-Field-error" role="alert">
                {p.message}
              </div>
            ))}
          </div>
        ))}
      </>
    );
  }
}

/** Ask for the credentials of `needed.connection`; null on Cancel. */
export async function askCredentials(
  needed: ICredentialsNeeded,
  problems: IProblem[],
  choice: number,
  trans: TranslationBundle
): Promise<ICredentialsEntry | null> {
  const result = await showDialog<ICredentialsEntry>({
    title: trans.__('%1 credentials', kindLabel(needed.kind)),
    body: new CredentialsBody(needed, problems, choice, trans),
    buttons: [
      Dialog.cancelButton({ label: trans.__('Cancel') }),
      Dialog.okButton({ label: trans.__('Submit') })
    ],
    focusNodeSelector: 'input[data-field]'
  });
  return result.button.accept && result.value ? result.value : null;
}

/**
 * Ask which connection's credentials the server should forget, and forget
 * them (e.g. after the cluster refused them: the next submission asks again).
 */
export async function forgetCredentialsDialog(trans: TranslationBundle): Promise<void> {
  const title = trans.__('Forget credentials');
  const stored = await listCredentials();
  if (stored.length === 0) {
    await showDialog({
      title,
      body: trans.__('The server holds no credentials entered in the lab.'),
      buttons: [Dialog.okButton({ label: trans.__('Close') })]
    });
    return;
  }
  // Each item says where that connection's secret is sent.
  const items = stored.map(c =>
    c.secret_sent_to
      ? trans.__('%1 (secret sent to %2)', c.connection, c.secret_sent_to)
      : c.connection
  );
  const answer = await InputDialog.getItem({
    title,
    label: trans.__('Connection whose credentials the server forgets:'),
    items,
    okLabel: trans.__('Forget')
  });
  const chosen = stored[items.indexOf(answer.value ?? '')];
  if (answer.button.accept && chosen) {
    await forgetCredentials(chosen.connection);
  }
}
