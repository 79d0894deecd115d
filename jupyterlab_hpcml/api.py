"""The Python API: submit and follow runs from notebooks and plain scripts.

    from jupyterlab_hpcml import submit, runs, get_run

    run = submit("examples/digits", "train", {"epochs": 5})
    run.wait()
    print(run.state, run.logs(tail=5))
    run.metrics()            # a pandas DataFrame (a list of dicts without pandas)

Runs go through the same engine and run store (``$HPCML_DATA_DIR``) as the lab
and the ``hpcml`` CLI, so a run submitted here shows up in the lab's runs tab
and vice versa. Every call goes to the Engine facade through the sync bridge
(``bridge.py``), so every method is synchronous and works both in plain scripts
and inside a running Jupyter kernel. Without a Jupyter server polling,
``Run.state``, ``refresh`` and ``wait`` ask the backend themselves.
"""
from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import run_text
from .bridge import bridge

if TYPE_CHECKING:
    from .core.files import FileInfo
    from .core.states import RunState
    from .engine.models import DeleteResult, RunRecord
    from .engine.requests import RerunRequest, SubmitRequest
    from .engine.service import Engine
    from .widget import RunView

__all__ = ["Run", "RunList", "get_run", "runs", "submit", "submit_cell"]

POLL_SECONDS = 0.5
STATE_MAX_AGE = 1.0  # seconds a non-terminal Run.state may be old before it is asked again

ParamValue = str | int | float
Overrides = Sequence[str] | Mapping[str, Any]


# ---------------------------------------------------------------------------
# Runs


def _states(state: str | RunState | Sequence[str | RunState] | None) -> list[RunState] | None:
    from .core.errors import UserInputError
    from .core.states import RunState

    if state is None:
        return None
    items = [state] if isinstance(state, (str, RunState)) else list(state)
    try:
        return [RunState(s.upper() if isinstance(s, str) else s) for s in items]
    except ValueError:
        raise UserInputError(f"unknown state in {items!r}; one of: "
                             + ", ".join(s.value for s in RunState)) from None


class Run:
    """One run in the shared run store.

    Attributes read the record as last fetched (``record``); ``state`` is the
    exception: for a run that has not ended it is at most ``STATE_MAX_AGE``
    seconds old (reading it may ask the backend). ``refresh()`` fetches now.
    """

    def __init__(self, record: RunRecord, data_dir: Path | str | None = None):
        self._record = record
        self._data_dir = Path(data_dir) if data_dir else None
        self._fetched = time.monotonic()
        self._view: RunView | None = None

    # -- the record

    @property
    def engine(self) -> Engine:
        """The Engine facade this run is read through (the data dir it was found in)."""
        return bridge.engine(self._data_dir)

    def set_record(self, record: RunRecord) -> None:
        """Take ``record`` as the latest (what the live view fetched)."""
        self._record, self._fetched = record, time.monotonic()

    @property
    def record(self) -> RunRecord:
        """The full run record as last fetched (pydantic; ``.model_dump()`` for a dict)."""
        return self._record

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def state(self) -> RunState:
        """The run's state: a ``RunState``, which is a ``str`` too (``run.state == "FINISHED"``)."""
        if not self._record.state.terminal and time.monotonic() - self._fetched > STATE_MAX_AGE:
            self.refresh()
        return self._record.state

    @property
    def job_id(self) -> str | None:
        """The backend's job id (local: the process id; Slurm: the job id)."""
        return self._record.backend_job_id

    @property
    def exit_code(self) -> int | None:
        return self._record.exit_code

    @property
    def parameters(self) -> dict[str, str]:
        return dict(self._record.parameters)

    @property
    def entry_point(self) -> str:
        return self._record.entry_point

    @property
    def backend(self) -> str:
        return self._record.backend

    @property
    def mlflow_run_id(self) -> str | None:
        return self._record.mlflow_run_id

    @property
    def run_dir(self) -> str | None:
        return self._record.run_dir

    @property
    def archived(self) -> bool:
        """Hidden from default listings (``archive()``; ``runs(archived=True)`` lists it)."""
        return self._record.archived

    @property
    def done(self) -> bool:
        """True once the run ended (FINISHED, FAILED, CANCELLED or TIMEOUT)."""
        return self.state.terminal

    @property
    def elapsed(self) -> float | None:
        """Seconds since the job started running (until it ended); None before it starts."""
        return run_text.elapsed_seconds(self._record)

    def refresh(self) -> Run:
        """Fetch the record again, asking the backend first if the run has not ended."""
        self.set_record(bridge.run(self.engine.current(self.id)))
        return self

    def wait(self, timeout: float | None = None, *, poll: float = POLL_SECONDS) -> Run:
        """Block until the run ends; returns the run. ``TimeoutError`` after ``timeout`` seconds
        (the run keeps going). Check ``run.state`` afterwards: waiting does not raise on FAILED."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.refresh()._record.state.terminal:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {self.id} still {self._record.state.value} "
                                   f"after {timeout:g}s")
            pause = poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic()))
            time.sleep(pause)
        if self._view is not None and not self._view.done:
            # Blocking here kept the live view from updating: bring it to the end state now,
            # while this cell still runs (so that its display is updated in saved notebooks too).
            try:
                self._view.update()
            except Exception:  # the view is a nicety; the wait succeeded
                pass
        return self

    # -- outputs

    def logs(self, stream: str = "stdout", tail: int | None = None) -> str:
        """The job's ``stdout`` or ``stderr`` so far; only the last ``tail`` lines if given."""
        if tail is not None:
            return bridge.run(self.engine.log_tail(self.id, stream, tail)).data
        return bridge.run(self.engine.read_log_all(self.id, stream)).data

    def iter_logs(self, stream: str = "stdout", *, follow: bool = False, tail: int | None = None,
                  poll: float = POLL_SECONDS) -> Iterator[str]:
        """Pieces of the log as they come; with ``follow`` until the run ends."""
        engine = self.engine
        if tail is not None:
            chunk = bridge.run(engine.log_tail(self.id, stream, tail))
        else:
            chunk = bridge.run(engine.read_log_all(self.id, stream))
        while True:
            if chunk.data:
                yield chunk.data
            elif not follow or not chunk.running:
                return
            else:
                time.sleep(poll)
                self.refresh()
            chunk = bridge.run(engine.read_log_all(self.id, stream, chunk.next_offset))

    def metrics(self, key: str | None = None) -> Any:
        """Every value the run logged to MLflow, one row per (key, step): columns ``key``,
        ``step``, ``value``, ``timestamp`` (epoch seconds). A pandas DataFrame when pandas is
        installed, else a list of dicts. ``df.pivot(index="step", columns="key",
        values="value")`` gives one column per metric."""
        if not self._record.state.terminal:
            self.refresh()  # also copies what an offline-tracking job logged so far
        if not self.mlflow_run_id:
            rows: list[dict[str, Any]] = []
        else:
            rows = bridge.run(self.engine.metric_values(self.id, key))
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows, columns=["key", "step", "value", "timestamp"])

    def latest_metrics(self) -> dict[str, float | None]:
        """The last value of each metric."""
        rows = bridge.run(self.engine.metric_keys(self.id)) if self.mlflow_run_id else []
        return {m["key"]: m["value"] for m in rows}

    def artifacts(self, path: str = "") -> list[FileInfo]:
        """One folder level of the run's MLflow artifacts (``path``: a folder in them)."""
        return bridge.run(self.engine.list_artifacts(self.id, path))

    def download(self, path: str, to: str | Path = ".") -> Path:
        """Copy one artifact file to ``to`` (a folder, or the file to write); returns the copy."""
        local, tmp = bridge.run(self.engine.download_artifact(self.id, path))
        try:
            to = Path(to).expanduser()
            dest = to / local.name if to.is_dir() else to
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, dest)
            return dest
        finally:
            tmp.cleanup()

    # -- actions

    def cancel(self) -> Run:
        """Ask the backend to stop the run (state becomes CANCELLED when it has stopped).
        ``Conflict`` if the run already ended."""
        self.set_record(bridge.run(self.engine.cancel(self.id)))
        return self

    def delete(self, *, delete_mlflow: bool = False) -> DeleteResult:
        """Delete the ended run: its record, its local run directory (a remote one is kept)
        and, with ``delete_mlflow``, its MLflow run (MLflow's soft delete). ``Conflict`` while
        the run is active (cancel it first). Returns what was removed and what was kept."""
        self.refresh()  # without a server polling, the backend says whether it ended
        return bridge.run(self.engine.delete(self.id, delete_mlflow=delete_mlflow))

    def archive(self) -> Run:
        """Hide the ended run from default listings (reversible: ``unarchive()``)."""
        return self._set_archived(True)

    def unarchive(self) -> Run:
        return self._set_archived(False)

    def _set_archived(self, archived: bool) -> Run:
        self.refresh()
        self.set_record(bridge.run(self.engine.set_archived(self.id, archived)))
        return self

    def rerun(self, parameters: Mapping[str, ParamValue] | None = None, *,
              overrides: Overrides | None = None, run_name: str | None = None,
              experiment_name: str | None = None, fresh_code: bool = False,
              wait: bool = False, timeout: float | None = None, **params: ParamValue) -> Run:
        """A new run of the same code (the same snapshot unless ``fresh_code``) with the same
        parameters and backend config, except what is given: ``run.rerun(epochs=20)``,
        ``run.rerun({"epochs": 20}, overrides=["Resources.Nodes=2"])``."""
        from .engine.requests import RerunRequest

        req = RerunRequest(parameters=_params({**(parameters or {}), **params}),
                           overrides=_overrides(overrides), run_name=run_name,
                           experiment_name=experiment_name, fresh_code=fresh_code)
        return rerun_request(self.id, req, wait=wait, timeout=timeout, data_dir=self._data_dir)

    # -- display

    def view(self) -> RunView:
        """The live view of this run (an ipywidgets box in a kernel; static HTML elsewhere)."""
        from .widget import RunView

        if self._view is None:
            self._view = RunView(self)
        return self._view

    def _ipython_display_(self) -> None:
        from .widget import display_run

        display_run(self)

    def __repr__(self) -> str:
        r = self._record
        return (f"<Run {r.id} {r.name!r} {r.state.value} entry={r.entry_point} "
                f"backend={r.backend} job={r.backend_job_id or '-'}>")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


class RunList(list[Run]):
    """Runs, newest first; a table in notebooks (HTML) and terminals (text)."""

    total: int = 0  # how many runs matched in all (the list holds at most ``limit``)

    HEADER = run_text.HEADER

    def rows(self) -> list[tuple[str, ...]]:
        return [run_text.table_row(r.record) for r in self]

    def __str__(self) -> str:
        text = run_text.table(self.rows())
        if self.total > len(self):
            text += f"\n({len(self)} of {self.total} runs)"
        return text

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self) if self else "no runs")

    def _repr_html_(self) -> str:
        from .widget import runs_table_html

        return runs_table_html(self)


def _overrides(overrides: Overrides | None) -> list[str] | dict[str, Any]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return dict(overrides)
    if isinstance(overrides, str):
        return [overrides]
    return list(overrides)


def _params(parameters: Mapping[str, Any] | None) -> dict[str, ParamValue]:
    out: dict[str, ParamValue] = {}
    for name, value in (parameters or {}).items():
        out[str(name)] = value if isinstance(value, (int, float, str)) and not isinstance(
            value, bool) else str(value)
    return out


def _project(project: str | Path | None) -> str:
    return str(Path(project or ".").expanduser().resolve())


def _config(backend_config: str | Path | None) -> str | None:
    from .cli_args import config_path

    return config_path(str(backend_config) if backend_config is not None else None)


def submit(project: str | Path | None = None, entry_point: str = "main",
           parameters: Mapping[str, ParamValue] | None = None, *,
           backend_config: str | Path | None = None, overrides: Overrides | None = None,
           run_name: str | None = None, experiment_name: str | None = None,
           wait: bool = False, timeout: float | None = None,
           data_dir: str | Path | None = None) -> Run:
    """Submit a run of an MLflow project; returns at once (``wait=True``: when it ended).

    ``project``: the project folder or any folder below it (default: the current folder,
    which in a notebook is the notebook's folder; the nearest folder with an ``MLproject``
    at or above it is used). ``backend_config``: a config file, relative to the current folder
    or the project (default: the lab's default backend, else local). ``overrides``:
    ``["Resources.Nodes=2"]`` or ``{"Resources": {"Nodes": 2}}``.
    Raises ``UserInputError`` (nothing submitted) for a bad project, entry point, parameter
    or config.
    """
    from .engine.requests import SubmitRequest

    req = SubmitRequest(project=_project(project), entry_point=entry_point,
                        parameters=_params(parameters), backend_config=_config(backend_config),
                        overrides=_overrides(overrides), run_name=run_name,
                        experiment_name=experiment_name)
    return submit_request(req, wait=wait, timeout=timeout, data_dir=data_dir)


def submit_request(req: SubmitRequest, *, wait: bool = False, timeout: float | None = None,
                   data_dir: str | Path | None = None) -> Run:
    """Submit a prepared ``SubmitRequest`` (what the magics build from their options)."""
    run = Run(bridge.run(bridge.engine(data_dir).submit(req)), data_dir)
    return run.wait(timeout) if wait else run


def rerun_request(run_id: str, req: RerunRequest, *, wait: bool = False,
                  timeout: float | None = None, data_dir: str | Path | None = None) -> Run:
    """Re-run ``run_id`` with a prepared ``RerunRequest`` (what ``%hpc_rerun`` builds)."""
    run = Run(bridge.run(bridge.engine(data_dir).rerun(run_id, req)), data_dir)
    return run.wait(timeout) if wait else run


def runs(state: str | Sequence[str] | None = None, *, limit: int = 20,
         project: str | Path | None = None, query: str | None = None, refresh: bool = True,
         archived: bool = False, data_dir: str | Path | None = None) -> RunList:
    """Recent runs, newest first (every run in the store: lab, CLI and notebooks alike).

    ``state``: one state or several (``"running"`` works too); ``project``: runs of that
    project folder; ``query``: text in name, id, entry point or job id; ``archived``: list
    archived runs too. ``refresh`` first asks the backends about runs that have not ended.
    """
    from .cli_args import archived_filter

    engine = bridge.engine(data_dir)
    if refresh:
        bridge.run(engine.refresh())
    found, total = bridge.run(engine.list_runs(
        states=_states(state),
        project=str(Path(project).expanduser().resolve()) if project else None,
        text=query, archived=archived_filter(archived), limit=limit))
    out = RunList(Run(r, data_dir) for r in found)
    out.total = total
    return out


def get_run(run_id: str, *, data_dir: str | Path | None = None) -> Run:
    """The run with this id, or the one run whose id starts with it (``NotFound`` otherwise)."""
    return Run(bridge.run(bridge.engine(data_dir).get(run_id)), data_dir)


# ---------------------------------------------------------------------------
# A cell (or any Python source) as a run


def submit_cell(code: str, project: str | Path | None = None,
                parameters: Mapping[str, ParamValue] | None = None, *,
                backend_config: str | Path | None = None, overrides: Overrides | None = None,
                run_name: str | None = None, experiment_name: str | None = None,
                wait: bool = False, timeout: float | None = None,
                data_dir: str | Path | None = None, _header: str = "") -> Run:
    """Run Python source ``code`` as a run of the project (what ``%%hpc_submit`` does).

    The code is written as ``hpcml_cell.py`` into a snapshot of the project (the project on
    disk is not changed) and runs as ``python hpcml_cell.py --name value ...`` in entry point
    ``hpcml_cell``. Inside, each parameter is a variable of its name and in the dict
    ``params`` (int/float when the value looks like one), and ``sys.argv`` has them too.
    """
    from .engine.cells import ENTRY_POINT
    from .engine.requests import SubmitRequest

    req = SubmitRequest(project=_project(project), entry_point=ENTRY_POINT,
                        parameters=_params(parameters), backend_config=_config(backend_config),
                        overrides=_overrides(overrides), run_name=run_name,
                        experiment_name=experiment_name)
    return submit_cell_request(code, req, wait=wait, timeout=timeout, data_dir=data_dir,
                               header=_header)


def submit_cell_request(code: str, req: SubmitRequest, *, wait: bool = False,
                        timeout: float | None = None, data_dir: str | Path | None = None,
                        header: str = "") -> Run:
    """Submit ``code`` as a cell run with a prepared request (what ``%%hpc_submit`` builds);
    the engine makes the run's files (see ``engine/cells.py``)."""
    from .engine.cells import Cell

    engine = bridge.engine(data_dir)
    run = Run(bridge.run(engine.submit(req, cell=Cell(code, header))), data_dir)
    return run.wait(timeout) if wait else run
