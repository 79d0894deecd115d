/**
 * The submit sidebar widget: renders the model's state, section by section.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import React from 'react';

import { ConfigSection } from './ConfigSection';
import { hpcmlIcon } from './icon';
import { SubmitModel } from './model';
import { ParameterSection } from './ParameterSection';
import { ProjectHeader } from './ProjectHeader';
import { RunOptions } from './RunOptions';
import { SubmitBar } from './SubmitBar';

export const SIDEBAR_ID = 'jp-hpcml-submit';

export interface ISubmitPanelOptions {
  model: SubmitModel;
  trans: TranslationBundle;
  /** Submit, then open the new run. */
  onSubmit: () => void;
  onOpenRun: (runId: string) => void;
  /** "Schedule…": schedule what Submit would send. */
  onSchedule?: () => void;
  /** Open the Schedules tab. */
  onOpenSchedules?: () => void;
  /** Open the Data tab on the project. */
  onOpenData?: () => void;
  /** The panel became visible (follow the file browser then). */
  onShow?: () => void;
}

export class SubmitPanel extends ReactWidget {
  constructor(private readonly options: ISubmitPanelOptions) {
    super();
    this.id = SIDEBAR_ID;
    this.addClass('jp-hpcml-Sidebar');
    this.title.icon = hpcmlIcon;
    this.title.caption = options.trans.__('Submit a training run (HPC ML)');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', options.trans.__('Submit a run'));
  }

  get model(): SubmitModel {
    return this.options.model;
  }

  dispose(): void {
    if (!this.isDisposed) {
      this.options.model.dispose();
    }
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.options.onShow?.();
  }

  protected render(): JSX.Element {
    const { model, trans, onSubmit, onOpenRun, onSchedule, onOpenSchedules, onOpenData } =
      this.options;
    return (
      <UseSignal signal={model.changed}>
        {() => (
          <div className="jp-hpcml-SidebarContent">
            <header className="jp-hpcml-Sidebar-header">
              <h2>{trans.__('Submit a run')}</h2>
            </header>
            <ProjectHeader model={model} trans={trans} />
            <ParameterSection model={model} trans={trans} />
            <ConfigSection model={model} trans={trans} />
            <RunOptions model={model} trans={trans} />
            <SubmitBar
              model={model}
              trans={trans}
              onSubmit={onSubmit}
              onOpenRun={onOpenRun}
              onSchedule={onSchedule}
              onOpenSchedules={onOpenSchedules}
              onOpenData={onOpenData}
            />
          </div>
        )}
      </UseSignal>
    );
  }
}
