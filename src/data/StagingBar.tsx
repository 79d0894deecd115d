/**
 * A staging's progress bar with bytes, files, rate and ETA; what it staged
 * once done, or why it failed.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { shortDigest, stagingFraction, stagingText } from './format';
import { IStaging } from './types';

export function StagingBar(props: {
  staging: IStaging | null;
  error: string | null;
  trans: TranslationBundle;
}): JSX.Element {
  const { staging, error, trans } = props;
  if (error) {
    return (
      <div className="jp-hpcml-Staging jp-hpcml-Field-error" role="alert" data-state="failed">
        {trans.__('Staging failed: %1', error)}
      </div>
    );
  }
  if (!staging || staging.state !== 'done') {
    const fraction = staging ? stagingFraction(staging.progress) : null;
    return (
      <div className="jp-hpcml-Staging jp-hpcml-Progress" data-state="running" role="status">
        <progress max={1} value={fraction ?? undefined} aria-label={trans.__('Data staging')} />
        <span className="jp-hpcml-Muted">
          {staging ? stagingText(staging.progress, trans) : trans.__('Starting…')}
        </span>
      </div>
    );
  }
  return (
    <div className="jp-hpcml-Staging" data-state="done" role="status">
      {staging.datasets.length === 0
        ? trans.__('Nothing to stage.')
        : staging.datasets.map(use => (
            <div key={use.name}>
              {use.sent_files || use.sent_bytes
                ? trans.__(
                    'Staged %1 (%2): %3 files sent.',
                    use.name,
                    shortDigest(use.digest),
                    use.sent_files
                  )
                : trans.__(
                    'Staged %1 (%2): already there, nothing sent.',
                    use.name,
                    shortDigest(use.digest)
                  )}
            </div>
          ))}
    </div>
  );
}
