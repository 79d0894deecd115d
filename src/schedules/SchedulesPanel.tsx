/**
 * The Schedules tab: the list, and the selected schedule's history below it.
 * It refreshes on a timer only while shown.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import { UseSignal } from '@jupyterlab/ui-components';
import React from 'react';

import { RefreshButton, RefreshStatus } from '../components/refreshControls';
import { RefreshingPanel } from '../components/refreshingPanel';
import { IScheduleActions } from './actions';
import { ScheduleHistory } from './ScheduleHistory';
import { SchedulesModel } from './schedulesModel';
import { ScheduleTable } from './ScheduleTable';

export class SchedulesPanel extends RefreshingPanel<SchedulesModel> {
  constructor(
    model: SchedulesModel,
    private readonly actions: IScheduleActions,
    private readonly trans: TranslationBundle
  ) {
    super(model, 'jp-hpcml-Schedules', trans.__('Schedules'));
  }

  protected render(): JSX.Element {
    const { model, actions, trans } = this;
    return (
      <UseSignal signal={model.changed}>
        {() => (
          <div className="jp-hpcml-Schedules-content">
            <div className="jp-hpcml-TabPanel-controls">
              <RefreshButton model={model} trans={trans} />
              <RefreshStatus
                model={model}
                text={trans._n('%1 schedule', '%1 schedules', model.schedules.length)}
                trans={trans}
              />
            </div>
            {model.loaded && model.schedules.length === 0 && !model.error ? (
              <p className="jp-hpcml-TabPanel-empty">
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
