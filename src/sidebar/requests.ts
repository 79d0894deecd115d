/**
 * Sidebar-only REST calls (the shared client is ../api.ts): the experiment
 * list and "Save to config file".
 */
import { requestAPI } from '../api';
import { IBackendConfigInfo } from '../types';

export interface IExperiment {
  id: string;
  name: string;
}

export async function listExperiments(): Promise<IExperiment[]> {
  const answer = await requestAPI<{ experiments: IExperiment[] }>('experiments');
  return answer.experiments;
}

export interface ISaveConfigAnswer {
  config: IBackendConfigInfo;
  backend_configs: IBackendConfigInfo[];
}

/** Write sections (null removes one) into a config file of the project. */
export function saveConfigSections(
  project: string,
  path: string,
  sections: Record<string, unknown>
): Promise<ISaveConfigAnswer> {
  return requestAPI<ISaveConfigAnswer>('project/config', {
    method: 'POST',
    body: JSON.stringify({ project, path, sections })
  });
}
