/**
 * The run detail view's "Data" section: the versions the run read (name,
 * short digest, size, files, what staging sent) and, while it is in STAGING,
 * the staging's progress.
 */
import { TranslationBundle } from '@jupyterlab/translation';

import { el } from '../components/dom';
import { IRun } from '../types';
import { sentText, shortDigest, sizeText, stagingFraction, stagingText } from './format';

function stagingProgress(run: IRun, trans: TranslationBundle): HTMLElement | null {
  const progress = run.staging_progress;
  if (!progress) {
    return null;
  }
  const box = el('div', 'jp-hpcml-Progress jp-hpcml-Staging');
  const bar = el('progress');
  bar.max = 1;
  const fraction = stagingFraction(progress);
  if (fraction !== null) {
    bar.value = fraction;
  }
  bar.setAttribute('aria-label', trans.__('Data staging'));
  box.append(bar, el('span', 'jp-hpcml-Muted', stagingText(progress, trans)));
  return box;
}

/** The section's body, or null when the run read no datasets and stages none. */
export function runDataBody(run: IRun, trans: TranslationBundle): HTMLElement | null {
  const uses = run.datasets ?? [];
  const progress = stagingProgress(run, trans);
  if (!uses.length && !progress) {
    return null;
  }
  const body = el('div', 'jp-hpcml-RunData');
  if (progress) {
    body.appendChild(progress);
  }
  if (uses.length) {
    const table = el('table', 'jp-hpcml-table jp-hpcml-RunData-table');
    const head = el('tr');
    for (const h of [
      trans.__('Dataset'),
      trans.__('Version'),
      trans.__('Size'),
      trans.__('Files'),
      trans.__('Sent'),
      trans.__('Path')
    ]) {
      const th = el('th', '', h);
      th.scope = 'col';
      head.appendChild(th);
    }
    const thead = el('thead');
    thead.appendChild(head);
    const tbody = el('tbody');
    for (const use of uses) {
      const tr = el('tr', 'jp-hpcml-RunData-row');
      tr.dataset.dataset = use.name;
      tr.dataset.digest = use.digest;
      const digest = el('code', '', shortDigest(use.digest));
      digest.title = `${use.digest}\n${use.source}${use.location ? `\n${use.location}` : ''}`;
      const version = el('td');
      version.appendChild(digest);
      tr.append(
        el('td', '', use.name),
        version,
        el('td', '', sizeText(use.size)),
        el('td', '', String(use.files)),
        el('td', '', sentText(use, trans)),
        el('td', '', use.path)
      );
      tbody.appendChild(tr);
    }
    table.append(thead, tbody);
    body.appendChild(table);
  }
  return body;
}
