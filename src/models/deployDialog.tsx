/**
 * The Deploy dialog of a version: the deployment's name (default: the
 * model's), the project whose backend config to use (default: the source
 * run's) and that config (default: local), replicas; starts the serving job.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React, { useEffect, useState } from 'react';

import { getProject } from '../api';
import { Field, FIELD_ID } from '../components/fields';
import { configChoices } from '../sidebar/configChoices';
import { Picker } from '../sidebar/Picker';
import { IBackendConfigInfo } from '../types';
import { deploy } from './api';
import { DraftForm, formDialog } from './formDialog';
import {
  defaultDeployDraft,
  deployProblems,
  deployRequest,
  IDeployDraft,
  MAX_REPLICAS
} from './request';
import { IDeployment, IModelVersion, IModelVersionDetail } from './types';

const KEYS: Record<keyof IDeployDraft, string> = {
  name: 'name',
  project: 'project',
  config: 'backend_config',
  replicas: 'replicas'
};

/** The project's backend configs (none while it is being read or is not a project). */
function useConfigs(project: string): IBackendConfigInfo[] {
  const [configs, setConfigs] = useState<IBackendConfigInfo[]>([]);
  useEffect(() => {
    let current = true;
    const timer = setTimeout(() => {
      if (!project.trim()) {
        setConfigs([]);
        return;
      }
      getProject(project.trim())
        .then(p => current && setConfigs(p.backend_configs))
        .catch(() => current && setConfigs([]));
    }, 300);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [project]);
  return configs;
}

function DeployFields(props: {
  form: DraftForm<IDeployDraft>;
  trans: TranslationBundle;
}): JSX.Element {
  const { form, trans } = props;
  const { draft } = form;
  const configs = useConfigs(draft.project);
  return (
    <>
      <Field
        name="deploy-name"
        label={trans.__('Deployment name')}
        description={trans.__('Lower-case letters, digits and dashes.')}
        errors={form.errorsOf('name')}
      >
        {(id, describedBy) => (
          <input
            id={id}
            className="jp-mod-styled"
            value={draft.name}
            aria-describedby={describedBy}
            onChange={event => form.set({ name: event.target.value })}
          />
        )}
      </Field>
      <Field
        name="deploy-project"
        label={trans.__('Project (for its backend configs)')}
        errors={form.errorsOf('project')}
      >
        {(id, describedBy) => (
          <input
            id={id}
            className="jp-mod-styled"
            value={draft.project}
            aria-describedby={describedBy}
            onChange={event => form.set({ project: event.target.value, config: '' })}
          />
        )}
      </Field>
      <Picker
        id={`${FIELD_ID}deploy-config`}
        label={trans.__('Backend config')}
        value={draft.config}
        options={configChoices(configs, trans)}
        onChange={value => form.set({ config: value })}
        errors={form.errorsOf('config')}
      />
      <Field name="deploy-replicas" label={trans.__('Replicas')} errors={form.errorsOf('replicas')}>
        {(id, describedBy) => (
          <input
            id={id}
            type="number"
            min={1}
            max={MAX_REPLICAS}
            className="jp-mod-styled"
            value={draft.replicas}
            aria-describedby={describedBy}
            onChange={event => form.set({ replicas: event.target.value })}
          />
        )}
      </Field>
    </>
  );
}

/** Ask and deploy `version`; the new deployment (STARTING), or null on Cancel. */
export function deployDialog(
  version: IModelVersion,
  detail: IModelVersionDetail,
  trans: TranslationBundle
): Promise<IDeployment | null> {
  const project = detail.run?.project_relpath ?? '';
  return formDialog({
    title: trans.__('Deploy %1 version %2', version.name, version.version),
    acceptLabel: trans.__('Deploy'),
    className: 'jp-hpcml-DeployDialog',
    form: new DraftForm(defaultDeployDraft(version.name, project), KEYS),
    fields: form => <DeployFields form={form} trans={trans} />,
    problems: deployProblems,
    submit: draft => deploy(deployRequest(version.name, version.version, draft)),
    focus: `#${FIELD_ID}deploy-name`
  });
}
