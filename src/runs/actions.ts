/**
 * Row actions as commands taking `{runId}`: the runs table's menu, the
 * detail view's toolbar and the context menu all use them. Each is shown only
 * when the run's backend supports it (GET features → backends[kind]).
 */
import {
  Clipboard,
  Dialog,
  Notification,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

import { cancelRun, deleteRun, getRun, listArtifacts, artifactUrl, setArchived } from '../api';
import { CommandIDs } from '../commands';
import { IFileInfo, IRun, TERMINAL_STATES } from '../types';
import { RunsContext } from './context';
import { mlflowRunUrl, rerunCommand, submitCommand } from './reproduce';
import { IRunRow, rowFromRun } from './rows';

/** Ids of the row action commands (private to the runs half). */
export namespace ActionIDs {
  export const cancel = 'hpcml:cancel-run';
  export const rerun = 'hpcml:rerun-run';
  export const artifacts = 'hpcml:show-artifacts';
  export const copyRerun = 'hpcml:copy-rerun-command';
  export const copySubmit = 'hpcml:copy-submit-command';
  export const openMlflow = 'hpcml:open-in-mlflow';
  export const archive = 'hpcml:archive-run';
  export const unarchive = 'hpcml:unarchive-run';
  export const remove = 'hpcml:delete-run';
}

/** The actions of a row's menu, in order (null: separator). */
export const ROW_MENU: (string | null)[] = [
  CommandIDs.openRun,
  CommandIDs.openLogs,
  CommandIDs.openCharts,
  null,
  ActionIDs.cancel,
  ActionIDs.rerun,
  ActionIDs.artifacts,
  null,
  ActionIDs.copyRerun,
  ActionIDs.copySubmit,
  ActionIDs.openMlflow,
  null,
  ActionIDs.archive,
  ActionIDs.unarchive,
  ActionIDs.remove
];

/** Rows last seen, by id, so actions know a run's state and backend synchronously. */
export class RunDirectory {
  get(id: string): IRunRow | undefined {
    return this._rows.get(id);
  }
  set(row: IRunRow): void {
    this._rows.set(row.id, row);
  }
  private _rows = new Map<string, IRunRow>();
}

function runIdOf(args: ReadonlyPartialJSONObject, ctx: RunsContext): string {
  if (typeof args.runId === 'string' && args.runId) {
    return args.runId;
  }
  // From a context menu: the row under the pointer. The hit test fails once the table has
  // repainted (it walks up from a node no longer in the page): then the row the runs tab
  // saw right-clicked.
  const node = ctx.app.contextMenuHitTest(n => !!n.dataset.hpcmlRunId);
  return node?.dataset.hpcmlRunId ?? ctx.contextRunId;
}

/** Ask before cancelling; true when confirmed. */
export async function confirmCancel(
  ctx: RunsContext,
  row: Pick<IRunRow, 'id' | 'name'>
): Promise<boolean> {
  const { trans } = ctx;
  const result = await showDialog({
    title: trans.__('Cancel run?'),
    body: trans.__(
      'Stop run "%1" (%2)? The job is killed and the run ends CANCELLED.',
      row.name,
      row.id
    ),
    buttons: [
      Dialog.cancelButton({ label: trans.__('Keep running') }),
      Dialog.warnButton({ label: trans.__('Cancel run'), ariaLabel: trans.__('Cancel run') })
    ]
  });
  return result.button.accept;
}

/** Ask before deleting; whether confirmed and whether the MLflow run goes too. */
export async function confirmDelete(
  ctx: RunsContext,
  row: Pick<IRunRow, 'id' | 'name'> & Partial<Pick<IRunRow, 'mlflow_run_id'>>
): Promise<{ accept: boolean; deleteMlflow: boolean }> {
  const { trans } = ctx;
  const result = await showDialog({
    title: trans.__('Delete run?'),
    body: trans.__(
      'Delete run "%1" (%2): its record, logs and local run directory? This cannot be undone. A run directory on a cluster is kept.',
      row.name,
      row.id
    ),
    checkbox:
      row.mlflow_run_id === null
        ? null
        : {
            label: trans.__('Also delete the MLflow run'),
            caption: trans.__('MLflow keeps it (restorable there) unless this is checked'),
            checked: false
          },
    buttons: [
      Dialog.cancelButton({ label: trans.__('Keep') }),
      Dialog.warnButton({ label: trans.__('Delete'), ariaLabel: trans.__('Delete run') })
    ]
  });
  return { accept: result.button.accept, deleteMlflow: result.isChecked === true };
}

class ArtifactList extends Widget {
  constructor(
    private _ctx: RunsContext,
    private _runId: string
  ) {
    super();
    this.addClass('jp-hpcml-Artifacts');
    void this.show_('');
  }

  private async show_(path: string): Promise<void> {
    const { trans } = this._ctx;
    const node = this.node;
    node.textContent = trans.__('Loading…');
    let files: IFileInfo[];
    try {
      files = await listArtifacts(this._runId, path);
    } catch (error) {
      node.textContent = (error as Error).message;
      return;
    }
    node.textContent = '';
    const heading = document.createElement('div');
    heading.className = 'jp-hpcml-Artifacts-path';
    heading.textContent = `/${path}`;
    node.appendChild(heading);
    const list = document.createElement('ul');
    list.setAttribute('aria-label', trans.__('Artifacts'));
    if (path) {
      const up = path.split('/').slice(0, -1).join('/');
      list.appendChild(this.item('..', () => void this.show_(up)));
    }
    for (const f of files) {
      const name = f.path.split('/').pop() ?? f.path;
      if (f.is_dir) {
        list.appendChild(this.item(`${name}/`, () => void this.show_(f.path)));
      } else {
        const li = document.createElement('li');
        const a = document.createElement('a');
        a.href = artifactUrl(this._runId, f.path);
        a.download = name;
        a.textContent = name;
        a.title = trans.__('Download %1', f.path);
        li.appendChild(a);
        if (typeof f.size === 'number') {
          const size = document.createElement('span');
          size.className = 'jp-hpcml-Artifacts-size';
          size.textContent = formatBytes(f.size);
          li.appendChild(size);
        }
        list.appendChild(li);
      }
    }
    if (!files.length) {
      const li = document.createElement('li');
      li.textContent = trans.__('No artifacts.');
      list.appendChild(li);
    }
    node.appendChild(list);
  }

  private item(label: string, open: () => void): HTMLLIElement {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.className = 'jp-hpcml-linkButton';
    b.textContent = label;
    b.onclick = open;
    li.appendChild(b);
    return li;
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** Register the row action commands. */
export function addActionCommands(ctx: RunsContext, directory: RunDirectory): void {
  const { app, trans } = ctx;
  const commands = app.commands;
  const row = (args: ReadonlyPartialJSONObject): IRunRow | undefined =>
    directory.get(runIdOf(args, ctx));
  const feature = (args: ReadonlyPartialJSONObject, name: string): boolean => {
    const r = row(args);
    // Unknown yet: show the action; the server answers if it cannot.
    return !r || ctx.featuresOf(r.backend)?.[name] !== false;
  };
  const copy = (text: string): void => {
    Clipboard.copyToSystem(text);
    Notification.info(trans.__('Copied: %1', text), { autoClose: 3000 });
  };
  const fullRun = (args: ReadonlyPartialJSONObject): Promise<IRun> => getRun(runIdOf(args, ctx));

  commands.addCommand(ActionIDs.cancel, {
    label: trans.__('Cancel Run…'),
    caption: trans.__('Stop the job (asks first)'),
    isVisible: args => feature(args, 'cancel'),
    isEnabled: args => {
      const r = row(args);
      return !r || !TERMINAL_STATES.has(r.state);
    },
    execute: async args => {
      const id = runIdOf(args, ctx);
      const r = row(args) ?? { id, name: id };
      if (!(await confirmCancel(ctx, r))) {
        return;
      }
      try {
        await cancelRun(id);
      } catch (error) {
        await showErrorMessage(trans.__('Cannot cancel run'), error as Error);
      }
    }
  });

  commands.addCommand(ActionIDs.rerun, {
    label: trans.__('Re-run…'),
    caption: trans.__('Open the submit sidebar pre-filled from this run'),
    isVisible: args => feature(args, 'rerun'),
    execute: args => commands.execute(CommandIDs.openSubmit, { runId: runIdOf(args, ctx) })
  });

  commands.addCommand(ActionIDs.artifacts, {
    label: trans.__('Artifacts…'),
    caption: trans.__('List and download the run’s MLflow artifacts'),
    isVisible: args => feature(args, 'artifacts'),
    isEnabled: args => !!(row(args)?.mlflow_run_id ?? true),
    execute: async args => {
      const id = runIdOf(args, ctx);
      await showDialog({
        title: trans.__('Artifacts of %1', row(args)?.name ?? id),
        body: new ArtifactList(ctx, id),
        buttons: [Dialog.okButton({ label: trans.__('Close') })]
      });
    }
  });

  commands.addCommand(ActionIDs.copyRerun, {
    label: trans.__('Copy Re-run Command'),
    caption: trans.__('hpcml rerun <id>: same code snapshot, parameters and resources'),
    execute: args => copy(rerunCommand({ id: runIdOf(args, ctx) }))
  });

  commands.addCommand(ActionIDs.copySubmit, {
    label: trans.__('Copy Submit Command'),
    caption: trans.__('hpcml submit with this run’s entry point, parameters and config'),
    execute: async args => {
      try {
        copy(submitCommand(await fullRun(args)));
      } catch (error) {
        await showErrorMessage(trans.__('Cannot read run'), error as Error);
      }
    }
  });

  const ended = (args: ReadonlyPartialJSONObject): boolean => {
    const r = row(args);
    return !r || TERMINAL_STATES.has(r.state);
  };
  const archiveCommand = (archived: boolean): void => {
    commands.addCommand(archived ? ActionIDs.archive : ActionIDs.unarchive, {
      label: archived ? trans.__('Archive Run') : trans.__('Unarchive Run'),
      caption: archived
        ? trans.__('Hide the ended run from the runs list (“Show archived” shows it)')
        : trans.__('Show the run in the runs list again'),
      // Unknown row: offer archiving; the server answers if it cannot.
      isVisible: args => (row(args)?.archived ?? false) !== archived,
      isEnabled: args => !archived || ended(args),
      execute: async args => {
        const id = runIdOf(args, ctx);
        try {
          const run = await setArchived(id, archived);
          directory.set(rowFromRun(run));
          ctx.notifyRunsChanged({ id: run.id, deleted: false });
          commands.notifyCommandChanged();
        } catch (error) {
          await showErrorMessage(
            archived ? trans.__('Cannot archive run') : trans.__('Cannot unarchive run'),
            error as Error
          );
        }
      }
    });
  };
  archiveCommand(true);
  archiveCommand(false);

  commands.addCommand(ActionIDs.remove, {
    label: trans.__('Delete Run…'),
    caption: trans.__('Delete the ended run: record, logs, local run directory (asks first)'),
    isEnabled: ended,
    execute: async args => {
      const id = runIdOf(args, ctx);
      const r = row(args) ?? { id, name: id };
      const answer = await confirmDelete(ctx, r);
      if (!answer.accept) {
        return;
      }
      try {
        const result = await deleteRun(id, answer.deleteMlflow);
        ctx.notifyRunsChanged({ id: result.id, deleted: true });
        Notification.success([trans.__('Deleted run %1.', r.name), ...result.kept].join(' '), {
          autoClose: 5000
        });
      } catch (error) {
        await showErrorMessage(trans.__('Cannot delete run'), error as Error);
      }
    }
  });

  commands.addCommand(ActionIDs.openMlflow, {
    label: trans.__('Open in MLflow UI'),
    caption: trans.__('The run in the MLflow UI set in the settings'),
    isVisible: args => {
      const r = row(args);
      return !!ctx.settings.mlflowUiUrl && (!r || !!r.mlflow_run_id);
    },
    execute: args => {
      const r = row(args);
      const url = mlflowRunUrl(ctx.settings.mlflowUiUrl, r?.mlflow_experiment_id, r?.mlflow_run_id);
      if (url) {
        window.open(url, '_blank', 'noopener');
      }
    }
  });
}
