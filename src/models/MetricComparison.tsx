/**
 * The metrics of each version's source run side by side (newest version
 * first); rows where the versions differ are marked.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { IMetricComparison } from './comparison';
import { metricText } from './format';

export function MetricComparison(props: {
  comparison: IMetricComparison;
  trans: TranslationBundle;
}): JSX.Element | null {
  const { comparison, trans } = props;
  if (comparison.versions.length < 2 || comparison.rows.length === 0) {
    return null;
  }
  return (
    <section className="jp-hpcml-Models-comparison" aria-label={trans.__('Metric comparison')}>
      <h4>{trans.__('Metrics by version')}</h4>
      <table className="jp-hpcml-table jp-hpcml-MetricComparison">
        <thead>
          <tr>
            <th scope="col">{trans.__('Metric')}</th>
            {comparison.versions.map(v => (
              <th key={v} scope="col">
                {trans.__('v%1', v)}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {comparison.rows.map(row => (
            <tr key={row.key} data-metric={row.key} className={row.differs ? 'jp-mod-differs' : ''}>
              <th scope="row">{row.key}</th>
              {row.values.map((value, i) => (
                <td key={comparison.versions[i]}>{metricText(value)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
