/**
 * The Data tab: the project's datasets on the chosen backend config's target,
 * a Stage button per dataset and one for all, the staging's progress, Free on
 * a staged version. It refreshes on a timer only while shown.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import { UseSignal } from '@jupyterlab/ui-components';
import React from 'react';

import { RefreshButton, RefreshStatus } from '../components/refreshControls';
import { RefreshingPanel } from '../components/refreshingPanel';
import { configChoices } from '../sidebar/configChoices';
import { Picker } from '../sidebar/Picker';
import { DataModel } from './dataModel';
import { DatasetCard, IDatasetActions } from './DatasetCard';
import { shortDigest, sizeText } from './format';
import { StagingBar } from './StagingBar';
import { IDataVersion } from './types';

export class DataPanel extends RefreshingPanel<DataModel> {
  constructor(
    model: DataModel,
    private readonly openRun: (runId: string) => void,
    private readonly trans: TranslationBundle
  ) {
    super(model, 'jp-hpcml-Data', trans.__('Data'));
  }

  /** Ask, then free the version: runs that read it keep their records. */
  private async free(version: IDataVersion): Promise<void> {
    const { trans } = this;
    const where = this.model.view?.connection ?? '';
    const answer = await showDialog({
      title: trans.__('Free this version?'),
      body: trans.__(
        'Version %1 (%2) is removed from %3. Runs that read it keep their records; a new run stages it again.',
        shortDigest(version.digest),
        sizeText(version.size),
        where
      ),
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: trans.__('Free') })]
    });
    if (answer.button.accept) {
      await this.model.freeVersion(version.digest);
    }
  }

  protected render(): JSX.Element {
    const { model, trans } = this;
    const actions: IDatasetActions = {
      stage: names => void model.stage(names),
      free: version => void this.free(version),
      openRun: this.openRun
    };
    return (
      <UseSignal signal={model.changed}>
        {() => {
          const view = model.view;
          const busy = model.stagingRunning;
          const showStaging =
            model.stagingOf !== null && (busy || model.staging || model.stageError);
          return (
            <div className="jp-hpcml-Data-content">
              <div className="jp-hpcml-TabPanel-controls">
                <h2 className="jp-hpcml-Data-project">
                  {model.project ? model.project.name : trans.__('No project')}
                </h2>
                {model.project && (
                  <Picker
                    id="hpcml-data-config"
                    label={trans.__('Backend config')}
                    value={model.config}
                    options={configChoices(model.project.backend_configs, trans)}
                    onChange={value => model.setConfig(value)}
                    hint={view ? `${view.backend} · ${view.connection}` : undefined}
                  />
                )}
                <RefreshButton model={model} trans={trans} />
                {view?.can_stage && view.datasets.length > 0 && (
                  <button
                    type="button"
                    className="jp-mod-styled jp-mod-accept jp-hpcml-Data-stageAll"
                    disabled={busy}
                    onClick={() => actions.stage()}
                  >
                    {trans.__('Stage all')}
                  </button>
                )}
                <RefreshStatus
                  model={model}
                  text={view ? trans._n('%1 dataset', '%1 datasets', view.datasets.length) : ''}
                  trans={trans}
                />
              </div>
              {model.freeError && (
                <p className="jp-hpcml-Data-freeError" role="alert">
                  {model.freeError}
                </p>
              )}
              {showStaging && (
                <div data-staging-of={model.stagingOf}>
                  <StagingBar staging={model.staging} error={model.stageError} trans={trans} />
                </div>
              )}
              {view && !view.can_stage && (
                <p className="jp-hpcml-Note">
                  {trans.__('The %1 backend cannot stage data.', view.backend)}
                </p>
              )}
              {view?.notes.map(note => (
                <p key={note} className="jp-hpcml-Note">
                  {note}
                </p>
              ))}
              {view && view.datasets.length === 0 && (
                <p className="jp-hpcml-TabPanel-empty">
                  {trans.__(
                    'This project declares no datasets (datasets.yaml beside its MLproject).'
                  )}
                </p>
              )}
              {view?.datasets.map(ds => (
                <DatasetCard
                  key={ds.name}
                  dataset={ds}
                  canStage={view.can_stage}
                  busy={busy}
                  actions={actions}
                  trans={trans}
                />
              ))}
              {view && view.other_staged.length > 0 && (
                <section className="jp-hpcml-Dataset">
                  <h3>{trans.__('Other staged versions')}</h3>
                  <ul>
                    {view.other_staged.map(v => (
                      <li key={v.digest}>
                        <code title={v.digest}>{shortDigest(v.digest)}</code> {sizeText(v.size)}{' '}
                        {v.location ?? ''}
                      </li>
                    ))}
                  </ul>
                </section>
              )}
            </div>
          );
        }}
      </UseSignal>
    );
  }
}
