/** Ids of the sweep action commands (args `{sweepId}`; see commands.ts). */
export namespace SweepCommandIDs {
  export const charts = 'hpcml:sweep-charts';
  export const compare = 'hpcml:sweep-compare';
  export const rerunFailed = 'hpcml:sweep-rerun-failed';
  export const cancel = 'hpcml:sweep-cancel';
}
