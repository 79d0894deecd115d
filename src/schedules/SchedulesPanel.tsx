/**
 * The Schedules tab: the list, and the selected schedule's history below it.
 * It refreshes on a timer only while shown.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import React from 'react';

import { IScheduleActions } from './actions';
import { ScheduleHistory } from './ScheduleHistory';
import { SchedulesModel } from './schedulesModel';
import { ScheduleTable } from './ScheduleTable';

export class SchedulesPanel extends ReactWidget {
  constructor(
    readonly model: SchedulesModel,
    private readonly actions: IScheduleActions,
    private readonly trans: TranslationBundle
  ) {
    super();
    this.addClass('jp-hpcml-Schedules');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', trans.__('Schedules'));
  }

  dispose(): void {
    if (!this.isDisposed) {
      this.model.dispose();
    }
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.model.start();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this.model.start();
    }
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.model.stop();
  }

  protected onBeforeDetach(msg: Message): void {
    this.model.stop();
    super.onBeforeDetach(msg);
  }

  protected render(): JSX.Element {
    const { model, actions, trans } = this;
    return (
      <UseSignal signal={model.changed}>
        {() => (
          <div className="jp-hpcml-Schedules-content">
            <div className="jp-hpcml-Schedules-controls">
              <button
                className="jp-mod-styled jp-hpcml-button"
                onClick={() => void model.refresh()}
              >
                {trans.__('Refresh')}
              </button>
              <span
                className={`jp-hpcml-Runs-status${model.error ? ' jp-mod-error' : ''}`}
                aria-live="polite"
              >
                {model.error
                  ? trans.__('Error: %1', model.error)
                  : trans._n('%1 schedule', '%1 schedules', model.schedules.length)}
              </span>
            </div>
            {model.loaded && model.schedules.length === 0 && !model.error ? (
              <p className="jp-hpcml-Schedules-empty">
                {trans.__('No schedules. Create one with “Schedule…” in the HPC ML sidebar.')}
              </p>
            ) : (
              <ScheduleTable
                schedules={model.schedules}
                selectedId={model.selectedId}
                onSelect={id => model.select(id)}
                actions={actions}
                trans={trans}
              />
            )}
            {model.selected && (
              <ScheduleHistory schedule={model.selected} actions={actions} trans={trans} />
            )}
          </div>
        )}
      </UseSignal>
    );
  }
}
