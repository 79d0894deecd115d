/**
 * Plugins of the runs half: runs tab, run detail, log viewer, metric charts,
 * and the row actions. Implements the shared commands `hpcml:open-runs`,
 * `hpcml:open-run`, `hpcml:open-logs` and `hpcml:open-charts`.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { ChartsPanel } from '../charts/chartsPanel';
import { CommandIDs, IOpenChartsArgs, IOpenRunsArgs } from '../commands';
import { createDetailWidget } from '../detail/detailWidget';
import { LogMode, LogViewer } from '../logs/logViewer';
import { watchSettings } from '../settings';
import { addSweepCommands } from '../sweeps/commands';
import { ActionIDs, addActionCommands, RunDirectory } from './actions';
import { RunsContext } from './context';
import { rowFromRun } from './rows';
import { RunsPanel } from './runsPanel';

const TRANSLATION_DOMAIN = 'jupyterlab_hpcml';

function stringArg(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

const runsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-hpcml:runs',
  description: 'HPC ML runs tab, run details, live logs and metric charts.',
  autoStart: true,
  optional: [ICommandPalette, ISettingRegistry, ITranslator, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null,
    restorer: ILayoutRestorer | null
  ): void => {
    const trans = (translator ?? nullTranslator).load(TRANSLATION_DOMAIN);
    const ctx = new RunsContext(app, trans);
    const directory = new RunDirectory();
    const { commands, shell } = app;

    watchSettings(settingRegistry, latest => {
      ctx.settings = latest;
    });

    // The runs tab is restored on reload; per-run tabs are cheap to reopen.
    const runsTracker = new WidgetTracker<MainAreaWidget<Widget>>({ namespace: 'hpcml-runs' });
    const tracker = new WidgetTracker<MainAreaWidget<Widget>>({ namespace: 'hpcml-run-views' });
    /** Reveal the tab with this id, or create it. */
    const open = (id: string, create: () => MainAreaWidget<Widget>): MainAreaWidget<Widget> => {
      const existing = runsTracker.find(w => w.id === id) ?? tracker.find(w => w.id === id);
      if (existing) {
        shell.activateById(existing.id);
        return existing;
      }
      const widget = create();
      widget.id = id;
      void (id === 'hpcml-runs' ? runsTracker : tracker).add(widget);
      shell.add(widget, 'main');
      shell.activateById(widget.id);
      return widget;
    };

    commands.addCommand(CommandIDs.openRuns, {
      label: trans.__('Open HPC ML Runs'),
      caption: trans.__('The table of runs, live'),
      execute: args => {
        const widget = open('hpcml-runs', () => {
          const content = new RunsPanel(ctx, directory);
          const widget = new MainAreaWidget<Widget>({ content });
          widget.title.label = trans.__('HPC ML Runs');
          widget.title.caption = trans.__('HPC ML runs');
          widget.addClass('jp-hpcml-RunsWidget');
          return widget;
        });
        const { schedule, scheduleName } = args as IOpenRunsArgs;
        if (typeof schedule === 'string') {
          (widget.content as RunsPanel).filterBySchedule(schedule, stringArg(scheduleName));
        }
        return widget;
      }
    });

    commands.addCommand(CommandIDs.openRun, {
      label: args => (args.runId ? trans.__('Run Details') : trans.__('Open Run Details…')),
      caption: trans.__('Parameters, resources, command, code identity and state history of a run'),
      execute: args => {
        const runId = stringArg(args.runId);
        if (!runId) {
          return;
        }
        return open(`hpcml-run-${runId}`, () =>
          createDetailWidget(ctx, runId, run => directory.set(rowFromRun(run)))
        );
      }
    });

    commands.addCommand(CommandIDs.openLogs, {
      label: args => (args.runId ? trans.__('Logs') : trans.__('Open Run Logs…')),
      caption: trans.__('Live stdout and stderr of a run'),
      execute: args => {
        const runId = stringArg(args.runId);
        if (!runId) {
          return;
        }
        const stream = stringArg(args.stream);
        const mode: LogMode = stream === 'stdout' || stream === 'stderr' ? stream : 'stdout';
        const existing = tracker.find(w => w.id === `hpcml-logs-${runId}`);
        if (existing && (stream === 'stdout' || stream === 'stderr')) {
          (existing.content as LogViewer).setMode(stream);
        }
        return open(`hpcml-logs-${runId}`, () => {
          const content = new LogViewer(ctx, runId, mode);
          const widget = new MainAreaWidget<Widget>({ content });
          widget.title.label = trans.__('Logs %1', directory.get(runId)?.name ?? runId.slice(0, 8));
          return widget;
        });
      }
    });

    commands.addCommand(CommandIDs.openCharts, {
      label: args =>
        Array.isArray(args.runIds) && args.runIds.length > 1
          ? trans.__('Compare Charts')
          : trans.__('Charts'),
      caption: trans.__('Metric charts of one or several runs'),
      execute: args => {
        const runIds = ((args as IOpenChartsArgs).runIds ?? []).filter(
          (id): id is string => typeof id === 'string' && !!id
        );
        if (!runIds.length) {
          return;
        }
        return open(`hpcml-charts-${runIds.join('-')}`, () => {
          const content = new ChartsPanel(ctx, runIds);
          const widget = new MainAreaWidget<Widget>({ content });
          widget.title.label =
            runIds.length === 1
              ? trans.__('Charts %1', directory.get(runIds[0])?.name ?? runIds[0].slice(0, 8))
              : trans.__('Charts (%1 runs)', runIds.length);
          return widget;
        });
      }
    });

    addActionCommands(ctx, directory);
    addSweepCommands(ctx, open);

    // Right-click on a row: the same actions as its ⋯ menu.
    const selector = '.jp-hpcml-Runs-row[data-hpcml-run-id]';
    [CommandIDs.openRun, CommandIDs.openLogs].forEach((command, i) =>
      app.contextMenu.addItem({ command, selector, rank: 10 + i })
    );
    [
      ActionIDs.cancel,
      ActionIDs.rerun,
      ActionIDs.artifacts,
      ActionIDs.copyRerun,
      ActionIDs.copySubmit,
      ActionIDs.openMlflow
    ].forEach((command, i) => app.contextMenu.addItem({ command, selector, rank: 20 + i }));
    [ActionIDs.archive, ActionIDs.unarchive, ActionIDs.remove].forEach((command, i) =>
      app.contextMenu.addItem({ command, selector, rank: 30 + i })
    );
    // A deleted run's own tabs (details, logs, its charts) have nothing left to show.
    ctx.runsChanged.connect((_, change) => {
      if (change.deleted) {
        const ids = [
          `hpcml-run-${change.id}`,
          `hpcml-logs-${change.id}`,
          `hpcml-charts-${change.id}`
        ];
        tracker.forEach(w => {
          if (ids.includes(w.id)) {
            w.dispose();
          }
        });
      }
    });

    palette?.addItem({ command: CommandIDs.openRuns, category: trans.__('HPC ML') });

    if (restorer) {
      void restorer.restore(runsTracker, {
        command: CommandIDs.openRuns,
        args: () => ({}),
        name: () => 'runs'
      });
    }
  }
};

export const runsPlugins: JupyterFrontEndPlugin<void>[] = [runsPlugin];
