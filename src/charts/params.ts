/**
 * The parameter comparison table of several runs.
 */

export interface IParamRun {
  id: string;
  name: string;
  parameters: Record<string, string>;
}

export interface IParamRow {
  name: string;
  /** One value per run, undefined where the run has no such parameter. */
  values: (string | undefined)[];
  /** Not every run has the same value. */
  differs: boolean;
}

/** One row per parameter name (sorted), flagged when the runs disagree. */
export function compareParams(runs: IParamRun[]): IParamRow[] {
  const names = new Set<string>();
  runs.forEach(r => Object.keys(r.parameters).forEach(n => names.add(n)));
  return [...names].sort().map(name => {
    const values = runs.map(r =>
      Object.prototype.hasOwnProperty.call(r.parameters, name) ? r.parameters[name] : undefined
    );
    const differs = values.some(v => v !== values[0]);
    return { name, values, differs };
  });
}
