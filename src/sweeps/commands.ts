/**
 * Sweep actions as commands taking `{sweepId}`: overlay the children's charts,
 * open the comparison tab, re-run the failed children, cancel the sweep.
 * The runs tab's sweep rows and their menu use them.
 */
import { Dialog, MainAreaWidget, Notification, showDialog } from '@jupyterlab/apputils';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Menu, Widget } from '@lumino/widgets';

import { cancelSweep, getSweep, rerunSweep } from '../api';
import { CommandIDs } from '../commands';
import { RunsContext } from '../runs/context';
import { SweepCommandIDs } from './commandIds';
import { ComparisonPanel } from './comparisonPanel';

export { SweepCommandIDs };

/** Children overlaid in one charts tab at most (the histories endpoint's bound). */
export const MAX_CHART_RUNS = 100;

/** Reveal the tab with this id, or create it (the runs plugin's helper). */
export type OpenTab = (id: string, create: () => MainAreaWidget<Widget>) => unknown;

/** The sweep of the command: its argument, else the right-clicked row's. */
function sweepIdOf(args: ReadonlyPartialJSONObject, ctx: RunsContext): string {
  return typeof args.sweepId === 'string' ? args.sweepId : ctx.contextRunId;
}

function failure(what: string, reason: unknown): void {
  Notification.error(`${what}: ${(reason as Error).message ?? String(reason)}`, {
    autoClose: 8000
  });
}

export function addSweepCommands(ctx: RunsContext, open: OpenTab): void {
  const { app, trans } = ctx;
  const { commands } = app;

  commands.addCommand(SweepCommandIDs.charts, {
    label: trans.__('Open Charts of All Children'),
    execute: async args => {
      try {
        const sweep = await getSweep(sweepIdOf(args, ctx));
        const runIds = sweep.children.map(c => c.id).slice(0, MAX_CHART_RUNS);
        if (sweep.children.length > MAX_CHART_RUNS) {
          Notification.info(trans.__('Charts of the first %1 children.', MAX_CHART_RUNS));
        }
        await commands.execute(CommandIDs.openCharts, { runIds });
      } catch (reason) {
        failure(trans.__('Cannot open the charts'), reason);
      }
    }
  });

  commands.addCommand(SweepCommandIDs.compare, {
    label: trans.__('Compare Children'),
    caption: trans.__('Each parameter against a final metric, the best child marked'),
    execute: args => {
      const sweepId = sweepIdOf(args, ctx);
      if (!sweepId) {
        return;
      }
      return open(`hpcml-sweep-compare-${sweepId}`, () => {
        const content = new ComparisonPanel(ctx, sweepId);
        const widget = new MainAreaWidget<Widget>({ content });
        widget.title.label = trans.__('Compare %1', sweepId);
        content.title.changed.connect(() => (widget.title.label = content.title.label));
        return widget;
      });
    }
  });

  commands.addCommand(SweepCommandIDs.rerunFailed, {
    label: trans.__('Re-run Failed Children'),
    execute: async args => {
      const sweepId = sweepIdOf(args, ctx);
      try {
        const sweep = await rerunSweep(sweepId, { failed: true });
        Notification.success(trans.__('Re-running the failed children of %1.', sweep.name), {
          autoClose: 5000
        });
        ctx.notifyRunsChanged({ id: sweepId, deleted: false });
      } catch (reason) {
        failure(trans.__('Cannot re-run'), reason);
      }
    }
  });

  commands.addCommand(SweepCommandIDs.cancel, {
    label: trans.__('Cancel Sweep'),
    execute: async args => {
      const sweepId = sweepIdOf(args, ctx);
      const answer = await showDialog({
        title: trans.__('Cancel sweep'),
        body: trans.__('Cancel every child of this sweep that is still queued or running?'),
        buttons: [
          Dialog.cancelButton({ label: trans.__('Keep running') }),
          Dialog.warnButton({ label: trans.__('Cancel sweep') })
        ]
      });
      if (!answer.button.accept) {
        return;
      }
      try {
        await cancelSweep(sweepId);
        ctx.notifyRunsChanged({ id: sweepId, deleted: false });
      } catch (reason) {
        failure(trans.__('Cannot cancel'), reason);
      }
    }
  });

  // Right-click on a sweep row: its actions.
  [
    SweepCommandIDs.charts,
    SweepCommandIDs.compare,
    SweepCommandIDs.rerunFailed,
    SweepCommandIDs.cancel
  ].forEach((command, i) =>
    app.contextMenu.addItem({ command, selector: '.jp-hpcml-Runs-sweep', rank: 10 + i })
  );
}

/** The "⋯" menu of a sweep row; `onClose` gives the row its focus back. */
export function openSweepMenu(
  commands: Menu.IOptions['commands'],
  sweepId: string,
  x: number,
  y: number,
  onClose: () => void
): void {
  const menu = new Menu({ commands });
  menu.addClass('jp-hpcml-RunMenu');
  for (const command of [
    SweepCommandIDs.charts,
    SweepCommandIDs.compare,
    null,
    SweepCommandIDs.rerunFailed,
    SweepCommandIDs.cancel
  ]) {
    if (command === null) {
      menu.addItem({ type: 'separator' });
    } else {
      menu.addItem({ command, args: { sweepId } });
    }
  }
  menu.aboutToClose.connect(() => {
    onClose();
    requestAnimationFrame(() => menu.dispose());
  });
  menu.open(x, y);
}
