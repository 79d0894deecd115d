/**
 * The list of schedules: name, when, next time (in the user's zone), last
 * firing and its run's state, run count, status and the row's actions.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { IScheduleActions } from './actions';
import { FiringBadge, StatusBadge } from './badges';
import { formatInZone, lastFiring, nextText, statusText, whenText } from './format';
import { ISchedule } from './types';

function Row(props: {
  schedule: ISchedule;
  selected: boolean;
  now: number;
  onSelect: () => void;
  actions: IScheduleActions;
  trans: TranslationBundle;
}): JSX.Element {
  const { schedule: s, actions, trans } = props;
  const last = lastFiring(s);
  /** A row button: its label names the schedule for screen readers (and tests). */
  const button = (label: string, action: () => unknown, warn = false): JSX.Element => (
    <button
      className={`jp-mod-styled jp-hpcml-button${warn ? ' jp-mod-warn' : ''}`}
      aria-label={`${label}: ${s.name}`}
      onClick={event => {
        event.stopPropagation(); // not a row selection
        void action();
      }}
    >
      {label}
    </button>
  );
  return (
    <tr
      className={`jp-hpcml-Schedule-row${props.selected ? ' jp-mod-selected' : ''}`}
      data-schedule-id={s.id}
      aria-selected={props.selected}
      tabIndex={0}
      onClick={props.onSelect}
      onKeyDown={event => event.key === 'Enter' && props.onSelect()}
    >
      <td className="jp-hpcml-Schedule-name" title={`${s.project_name} · ${s.entry_point}`}>
        {s.name}
      </td>
      <td className="jp-hpcml-Schedule-whenCell">{whenText(s, trans)}</td>
      <td className="jp-hpcml-Schedule-nextCell">{nextText(s, props.now, trans)}</td>
      <td className="jp-hpcml-Schedule-last">
        {last ? (
          <>
            <span className="jp-hpcml-Muted">{formatInZone(last.scheduled_at)}</span>{' '}
            <FiringBadge firing={last} />
          </>
        ) : (
          '—'
        )}
      </td>
      <td className="jp-hpcml-Schedule-runs">{s.runs}</td>
      <td>
        <StatusBadge status={s.status} text={statusText(s, trans)} />
      </td>
      <td>
        <div className="jp-hpcml-Schedule-actions">
          {s.status !== 'ended' &&
            (s.paused
              ? button(trans.__('Resume'), () => actions.togglePause(s))
              : button(trans.__('Pause'), () => actions.togglePause(s)))}
          {button(trans.__('Run now'), () => actions.runNow(s))}
          {button(trans.__('Show runs'), () => actions.showRuns(s))}
          {button(trans.__('Delete'), () => actions.remove(s), true)}
        </div>
      </td>
    </tr>
  );
}

export function ScheduleTable(props: {
  schedules: ISchedule[];
  selectedId: string | null;
  onSelect: (id: string) => void;
  actions: IScheduleActions;
  trans: TranslationBundle;
}): JSX.Element {
  const { trans } = props;
  const now = Date.now() / 1000;
  return (
    <table className="jp-hpcml-Schedule-table" aria-label={trans.__('Schedules')}>
      <thead>
        <tr>
          <th>{trans.__('Name')}</th>
          <th>{trans.__('When')}</th>
          <th>{trans.__('Next (your time)')}</th>
          <th>{trans.__('Last run')}</th>
          <th>{trans.__('Runs')}</th>
          <th>{trans.__('Status')}</th>
          <th>
            <span className="jp-hpcml-Schedule-srOnly">{trans.__('Actions')}</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {props.schedules.map(s => (
          <Row
            key={s.id}
            schedule={s}
            selected={s.id === props.selectedId}
            now={now}
            onSelect={() => props.onSelect(s.id)}
            actions={props.actions}
            trans={trans}
          />
        ))}
      </tbody>
    </table>
  );
}
