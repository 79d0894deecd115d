/**
 * The selected schedule: what it runs, its policies and next times, and its
 * firings, newest first, each with its run (a link to the run).
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { IScheduleActions } from './actions';
import { FiringBadge } from './badges';
import { formatInZone, whenText, zonedTimeText } from './format';
import { IFiring, ISchedule } from './types';

function FiringRow(props: {
  firing: IFiring;
  actions: IScheduleActions;
  trans: TranslationBundle;
}): JSX.Element {
  const { firing: f, actions, trans } = props;
  const hasRun = f.state === 'submitted' || !!f.run_state;
  return (
    <tr className="jp-hpcml-Firing" data-run-id={f.run_id} data-firing-state={f.state}>
      <td>{formatInZone(f.scheduled_at)}</td>
      <td>{f.manual ? trans.__('run now') : trans.__('scheduled')}</td>
      <td>
        <FiringBadge firing={f} />
      </td>
      <td className="jp-hpcml-Firing-message">{f.message ?? ''}</td>
      <td>
        {hasRun ? (
          <button
            className="jp-hpcml-Link"
            title={trans.__('Open run %1', f.run_id)}
            onClick={() => actions.openRun(f.run_id)}
          >
            {f.run_id.slice(0, 8)}
          </button>
        ) : (
          '—'
        )}
      </td>
    </tr>
  );
}

function Facts(props: { schedule: ISchedule; trans: TranslationBundle }): JSX.Element {
  const { schedule: s, trans } = props;
  const facts: [string, string][] = [
    [trans.__('Runs'), `${s.project_relpath || s.project_name} · ${s.entry_point}`],
    [trans.__('Backend'), s.connection ? `${s.backend} (${s.connection})` : s.backend],
    [trans.__('When'), whenText(s, trans)],
    [trans.__('Overlap'), s.overlap],
    [
      trans.__('Catch-up'),
      s.catch_up === 'all' ? `${s.catch_up} (≤ ${s.catch_up_limit})` : s.catch_up
    ],
    [trans.__('Code'), s.code === 'pinned' ? trans.__('pinned snapshot') : trans.__('fresh')],
    [trans.__('Run names'), s.run_name],
    [trans.__('Fired'), trans.__('%1 (missed %2)', s.fired, s.missed)]
  ];
  if (s.end_at) {
    facts.push([trans.__('Ends'), formatInZone(s.end_at)]);
  }
  if (s.max_runs) {
    facts.push([trans.__('Max runs'), String(s.max_runs)]);
  }
  return (
    <dl className="jp-hpcml-Schedule-facts">
      {facts.map(([term, value]) => (
        <React.Fragment key={term}>
          <dt>{term}</dt>
          <dd>{value}</dd>
        </React.Fragment>
      ))}
    </dl>
  );
}

export function ScheduleHistory(props: {
  schedule: ISchedule;
  actions: IScheduleActions;
  trans: TranslationBundle;
}): JSX.Element {
  const { schedule: s, actions, trans } = props;
  return (
    <section className="jp-hpcml-Schedule-detail" aria-label={trans.__('Schedule %1', s.name)}>
      <h3>{s.name}</h3>
      <Facts schedule={s} trans={trans} />
      {s.next_times.length > 0 && (
        <div className="jp-hpcml-Schedule-next">
          <div className="jp-hpcml-Field-label">{trans.__('Next times')}</div>
          <ol className="jp-hpcml-Schedule-times">
            {s.next_times.map(t => (
              <li key={t}>{zonedTimeText(t, s.timezone, trans)}</li>
            ))}
          </ol>
        </div>
      )}
      <h4>{trans.__('History')}</h4>
      {s.firings.length === 0 ? (
        <p className="jp-hpcml-Muted">{trans.__('It has not fired yet.')}</p>
      ) : (
        <table className="jp-hpcml-Schedule-table jp-hpcml-Firings">
          <thead>
            <tr>
              <th>{trans.__('Time (yours)')}</th>
              <th>{trans.__('How')}</th>
              <th>{trans.__('State')}</th>
              <th>{trans.__('Message')}</th>
              <th>{trans.__('Run')}</th>
            </tr>
          </thead>
          <tbody>
            {s.firings.map(f => (
              <FiringRow
                key={`${f.scheduled_at}-${f.run_id}`}
                firing={f}
                actions={actions}
                trans={trans}
              />
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
