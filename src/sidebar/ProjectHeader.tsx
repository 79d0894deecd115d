/**
 * Which project the sidebar shows, and a way to load another one.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { SubmitModel } from './model';

export function ProjectHeader(props: {
  model: SubmitModel;
  trans: TranslationBundle;
}): JSX.Element {
  const { model, trans } = props;
  const [path, setPath] = React.useState('');
  const project = model.project;
  return (
    <section className="jp-hpcml-Section jp-hpcml-Project" aria-label={trans.__('Project')}>
      {project ? (
        <div className="jp-hpcml-Project-title">
          <span className="jp-hpcml-Project-name">{project.name}</span>
          <span className="jp-hpcml-Project-path" title={project.mlproject_file ?? ''}>
            {project.path || '/'}
          </span>
        </div>
      ) : (
        <p className="jp-hpcml-Muted">
          {model.loading
            ? trans.__('Looking for an MLproject…')
            : trans.__(
                'Open a folder with an MLproject file in the file browser, or give its path.'
              )}
        </p>
      )}
      {model.projectError && !project && (
        <div className="jp-hpcml-Field-error" role="alert">
          {model.projectError}
        </div>
      )}
      {project?.env_note && <p className="jp-hpcml-Note">{project.env_note}</p>}
      {model.pendingPath !== null && (
        <div className="jp-hpcml-Pending">
          <span>{trans.__('The file browser is in %1.', model.pendingPath || '/')}</span>
          <button
            type="button"
            className="jp-mod-styled jp-mod-reject"
            onClick={() => void model.loadProject(model.pendingPath ?? '')}
          >
            {trans.__('Switch project (discard edits)')}
          </button>
        </div>
      )}
      {!project && (
        <form
          className="jp-hpcml-Row"
          onSubmit={event => {
            event.preventDefault();
            void model.loadProject(path);
          }}
        >
          <input
            className="jp-mod-styled jp-hpcml-Grow"
            value={path}
            placeholder={trans.__('folder/with/MLproject')}
            aria-label={trans.__('Project folder')}
            onChange={event => setPath(event.target.value)}
          />
          <button type="submit" className="jp-mod-styled jp-mod-accept">
            {trans.__('Load')}
          </button>
        </form>
      )}
    </section>
  );
}
