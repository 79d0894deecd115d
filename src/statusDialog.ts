/**
 * The dialog of the `hpcml:show-status` command: server version and what each
 * backend kind can do.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { FeatureCell, featureTable } from './featureTable';
import { IFeaturesResponse } from './types';

function featureLabel(name: string, trans: TranslationBundle): string {
  const labels: Record<string, string> = {
    cancel: trans.__('Cancel'),
    logs: trans.__('Logs'),
    log_follow: trans.__('Follow logs'),
    artifacts: trans.__('Artifacts'),
    rerun: trans.__('Rerun'),
    upload_progress: trans.__('Upload progress'),
    offline_tracking: trans.__('Offline tracking'),
    resources: trans.__('Resources')
  };
  return labels[name] ?? name;
}

function renderCell(cell: FeatureCell, trans: TranslationBundle): HTMLTableCellElement {
  const td = document.createElement('td');
  if (typeof cell === 'boolean') {
    td.textContent = cell ? '✓' : '–';
    td.title = cell ? trans.__('supported') : trans.__('not supported');
    td.className = cell ? 'jp-hpcml-Status-yes' : 'jp-hpcml-Status-no';
  } else {
    td.textContent = cell || '–';
  }
  return td;
}

/** The dialog's body. */
export function createStatusBody(
  status: IFeaturesResponse,
  defaultBackend: string,
  trans: TranslationBundle
): Widget {
  const body = new Widget();
  body.addClass('jp-hpcml-Status');

  const summary = document.createElement('p');
  summary.textContent = trans.__(
    'Server extension version %1. Default backend: %2.',
    status.version,
    defaultBackend
  );
  body.node.appendChild(summary);

  const { columns, rows } = featureTable(status.backends ?? {});
  if (rows.length === 0) {
    const none = document.createElement('p');
    none.textContent = trans.__('The server reports no backends.');
    body.node.appendChild(none);
    return body;
  }

  const table = document.createElement('table');
  table.className = 'jp-hpcml-Status-table';
  const head = table.createTHead().insertRow();
  for (const text of [trans.__('Backend'), ...columns.map(c => featureLabel(c, trans))]) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = text;
    head.appendChild(th);
  }
  const tbody = table.createTBody();
  for (const row of rows) {
    const tr = tbody.insertRow();
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = row.backend;
    tr.appendChild(th);
    row.cells.forEach(cell => tr.appendChild(renderCell(cell, trans)));
  }
  body.node.appendChild(table);
  return body;
}

/** Show the server's status in a dialog with a single close button. */
export async function showStatusDialog(
  status: IFeaturesResponse,
  defaultBackend: string,
  trans: TranslationBundle
): Promise<void> {
  await showDialog({
    title: trans.__('HPC ML Status'),
    body: createStatusBody(status, defaultBackend, trans),
    buttons: [Dialog.okButton({ label: trans.__('Close') })]
  });
}
