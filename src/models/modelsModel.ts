/**
 * The Models tab's data: the registered models, the selected one with its
 * versions (the details of the newest few: source run, metrics, input
 * example), and the deployments; fetched again on a timer while the tab is
 * shown.
 */
import { RefreshingModel } from '../components/refreshingModel';
import { errorText } from '../errors';
import { getModel, getModelVersion, listDeployments, listModels } from './api';
import { IDeployment, IModelVersionDetail, IRegisteredModel } from './types';

/** How many versions (newest first) show their lineage and join the comparison. */
export const VERSIONS_SHOWN = 8;

interface IAnswer {
  models: IRegisteredModel[];
  model: IRegisteredModel | null;
  details: IModelVersionDetail[];
  deployments: IDeployment[] | string;
}

export class ModelsModel extends RefreshingModel {
  models: IRegisteredModel[] = [];
  selectedName: string | null = null;
  /** The selected model with its versions, newest first. */
  model: IRegisteredModel | null = null;
  /** Details of the versions shown, by version. */
  details = new Map<string, IModelVersionDetail>();
  deployments: IDeployment[] = [];
  /** Why the deployments could not be listed (the registry still shows). */
  deploymentsError: string | null = null;

  /** The newest versions of the selected model, as shown. */
  get shownVersions(): string[] {
    return (this.model?.versions ?? []).slice(0, VERSIONS_SHOWN).map(v => v.version);
  }

  /** Deployments of one version of the selected model, newest first. */
  deploymentsOf(version: string): IDeployment[] {
    return this.deployments.filter(
      d => d.model_name === this.selectedName && d.model_version === version
    );
  }

  select(name: string | null): void {
    if (name === this.selectedName) {
      return;
    }
    this.selectedName = name;
    this.model = null;
    this.details = new Map();
    this.emitChanged();
    void this.refresh();
  }

  /** A deployment changed here (deployed, stopped): shown at once, before the next refresh. */
  updated(deployment: IDeployment): void {
    this.deployments = [deployment, ...this.deployments.filter(d => d.name !== deployment.name)];
    this.emitChanged();
  }

  /** Fetch the models, the selected one, new versions' details and the deployments now. */
  refresh(): Promise<void> {
    const name = this.selectedName;
    return this.fetchLatest(
      () => this.fetchAll(name),
      answer => {
        this.models = answer.models;
        if (name !== this.selectedName) {
          return;
        }
        this.model = answer.model;
        answer.details.forEach(d => this.details.set(d.version.version, d));
        if (typeof answer.deployments === 'string') {
          this.deploymentsError = answer.deployments;
        } else {
          this.deployments = answer.deployments;
          this.deploymentsError = null;
        }
      }
    );
  }

  private async fetchAll(name: string | null): Promise<IAnswer> {
    const [models, model, deployments] = await Promise.all([
      listModels(),
      name ? getModel(name) : null,
      listDeployments().catch(errorText)
    ]);
    const missing = (model?.versions ?? [])
      .slice(0, VERSIONS_SHOWN)
      .filter(v => !this.details.has(v.version));
    const details = await Promise.all(missing.map(v => this.fetchDetail(v.name, v.version)));
    return { models, model, details, deployments };
  }

  /** A version's lineage and metrics do not change: fetched once each, even by overlapping refreshes. */
  private fetchDetail(name: string, version: string): Promise<IModelVersionDetail> {
    const key = JSON.stringify([name, version]);
    let fetch = this.detailFetches.get(key);
    if (!fetch) {
      fetch = getModelVersion(name, version);
      this.detailFetches.set(key, fetch);
      fetch.catch(() => this.detailFetches.delete(key)); // asked again next time
    }
    return fetch;
  }

  private readonly detailFetches = new Map<string, Promise<IModelVersionDetail>>();
}
