/**
 * A tab of the main area that exists once, opened by a command: the command
 * reveals it (creating it the first time) and hands it the command's
 * arguments; on reload the layout restorer runs the command again with the
 * arguments that bring the tab back as it was.
 */
import { ILayoutRestorer, JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

export interface IMainAreaTabOptions<T extends Widget> {
  /** The tab's id, also its tracker's namespace. */
  id: string;
  /** The tab's title and its tooltip. */
  label: string;
  caption: string;
  /** The tab's content, made the first time it opens. */
  createContent: () => T;
  /** The command that opens the tab, and where the palette lists it. */
  command: { id: string; label: string; caption: string; category: string };
  /** What the command does with its arguments once the tab is shown. */
  onOpen: (widget: MainAreaWidget<T>, args: ReadonlyPartialJSONObject) => Promise<void> | void;
  /** The command's arguments that reopen the tab as it is now. */
  restoreArgs: (widget: MainAreaWidget<T>) => ReadonlyPartialJSONObject;
  /** The tab's key in the saved layout (changing it forgets saved layouts). */
  restoreName: string;
}

/** Add the tab's command (and palette item), and restore the tab on reload. */
export function addMainAreaTab<T extends Widget>(
  app: JupyterFrontEnd,
  palette: ICommandPalette | null,
  restorer: ILayoutRestorer | null,
  options: IMainAreaTabOptions<T>
): void {
  const { id, command } = options;
  const tracker = new WidgetTracker<MainAreaWidget<T>>({ namespace: id });
  const create = (): MainAreaWidget<T> => {
    const widget = new MainAreaWidget({ content: options.createContent() });
    widget.id = id;
    widget.title.label = options.label;
    widget.title.caption = options.caption;
    void tracker.add(widget);
    app.shell.add(widget, 'main');
    return widget;
  };

  app.commands.addCommand(command.id, {
    label: command.label,
    caption: command.caption,
    execute: async args => {
      const widget = tracker.find(w => w.id === id) ?? create();
      app.shell.activateById(widget.id);
      await options.onOpen(widget, args);
      void tracker.save(widget); // the arguments may have changed what to restore
      return widget;
    }
  });
  palette?.addItem({ command: command.id, category: command.category });

  if (restorer) {
    void restorer.restore(tracker, {
      command: command.id,
      args: options.restoreArgs,
      name: () => options.restoreName
    });
  }
}
