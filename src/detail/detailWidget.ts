/**
 * The detail tab of a run: the detail panel with the run's actions in the toolbar.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { CommandToolbarButton } from '@jupyterlab/ui-components';
import { ReadonlyJSONObject } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

import { CommandIDs } from '../commands';
import { ActionIDs } from '../runs/actions';
import { RunsContext } from '../runs/context';
import { IRun } from '../types';
import { RunDetailPanel } from './detailPanel';

export function createDetailWidget(
  ctx: RunsContext,
  runId: string,
  onRun: (run: IRun) => void
): MainAreaWidget<Widget> {
  const { trans, app } = ctx;
  let widget: MainAreaWidget<Widget> | null = null;
  const content = new RunDetailPanel(ctx, runId, run => {
    onRun(run);
    if (widget) {
      widget.title.label = trans.__('Run %1', run.name);
      // Enabled states (cancel) follow the run.
      app.commands.notifyCommandChanged();
    }
  });
  widget = new MainAreaWidget<Widget>({ content });
  widget.title.label = trans.__('Run %1', runId.slice(0, 8));
  widget.addClass('jp-hpcml-DetailWidget');
  const actions: [string, ReadonlyJSONObject][] = [
    [CommandIDs.openLogs, { runId }],
    [CommandIDs.openCharts, { runIds: [runId] }],
    [ActionIDs.cancel, { runId }],
    [ActionIDs.rerun, { runId }],
    [ActionIDs.artifacts, { runId }],
    [ActionIDs.copyRerun, { runId }],
    [ActionIDs.copySubmit, { runId }],
    [ActionIDs.openMlflow, { runId }],
    [ActionIDs.archive, { runId }],
    [ActionIDs.unarchive, { runId }],
    [ActionIDs.remove, { runId }]
  ];
  for (const [id, args] of actions) {
    widget.toolbar.addItem(
      id,
      new CommandToolbarButton({
        commands: app.commands,
        id,
        args,
        label: app.commands.label(id, args)
      })
    );
  }
  return widget;
}
