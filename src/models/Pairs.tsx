/**
 * A two-column table of facts (name → value), or a muted line when there
 * are none.
 */
import React from 'react';

export function Pairs(props: {
  pairs: [string, React.ReactNode][];
  empty: string;
  className?: string;
}): JSX.Element {
  if (!props.pairs.length) {
    return <p className="jp-hpcml-muted">{props.empty}</p>;
  }
  return (
    <table className={`jp-hpcml-table jp-hpcml-pairs ${props.className ?? ''}`}>
      <tbody>
        {props.pairs.map(([k, v]) => (
          <tr key={k} data-key={k}>
            <th scope="row">{k}</th>
            <td>{v}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
