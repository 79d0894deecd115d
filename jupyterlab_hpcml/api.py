"""The Python API: submit and follow runs from notebooks and plain scripts.

    from jupyterlab_hpcml import submit, runs, get_run

    run = submit("examples/digits", "train", {"epochs": 5})
    run.wait()
    print(run.state, run.logs(tail=5))
    run.metrics()            # a pandas DataFrame (a list of dicts without pandas)

    sweep = submit_sweep("examples/digits", "train", {"lr": "0.1,0.01", "seed": "range(0,3)"},
                         max_parallel=2)
    sweep.wait()
    sweep.best("accuracy").parameters
    sweep.to_pandas()        # one row per child: parameters, final metrics, state

Runs go through the same engine and run store (``$HPCML_DATA_DIR``) as the lab
and the ``hpcml`` CLI, so a run submitted here shows up in the lab's runs tab
and vice versa. Every call goes to the Engine facade through the sync bridge
(``bridge.py``), so every method is synchronous and works both in plain scripts
and inside a running Jupyter kernel. Without a Jupyter server polling,
``Run.state``, ``refresh`` and ``wait`` ask the backend themselves.
"""
from __future__ import annotations

import math
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
    from .engine.models import DeleteResult, RunRecord, SweepDefinition, SweepView
    from .engine.requests import RerunRequest, SubmitRequest, SweepRequest, SweepRerunRequest
    from .engine.service import Engine
    from .widget import RunView

__all__ = ["Run", "RunList", "Sweep", "get_run", "get_sweep", "runs", "submit", "submit_cell",
           "submit_sweep"]

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


# ---------------------------------------------------------------------------
# Sweeps

SweepValue = ParamValue | Sequence[ParamValue] | range


class Sweep:
    """A sweep: runs of one entry point over many parameter values (its ``children``),
    one MLflow parent run. Like ``Run``, ``state`` and ``children`` ask the backends again
    when they are older than ``STATE_MAX_AGE`` and the sweep has not ended."""

    def __init__(self, view: SweepView, data_dir: Path | str | None = None):
        self._data_dir = Path(data_dir) if data_dir else None
        self._runs: dict[str, Run] = {}  # the same Run object for a child across refreshes
        self._set(view)

    def _set(self, view: SweepView) -> None:
        self._view, self._fetched = view, time.monotonic()
        for child in view.children:
            run = self._runs.get(child.id)
            if run is None:
                self._runs[child.id] = Run(child, self._data_dir)
            elif child.updated_at >= run.record.updated_at:
                run.set_record(child)

    @property
    def engine(self) -> Engine:
        return bridge.engine(self._data_dir)

    def _stale(self) -> bool:
        state = self._view.state
        return (state is None or not state.terminal) and \
            time.monotonic() - self._fetched > STATE_MAX_AGE

    @property
    def record(self) -> SweepView:
        """The sweep record with its children's records, as last fetched."""
        return self._view

    @property
    def id(self) -> str:
        return self._view.id

    @property
    def name(self) -> str:
        return self._view.name

    @property
    def definition(self) -> SweepDefinition:
        """How the points were made: values as given, mode, samples, seed, rows source."""
        return self._view.definition

    @property
    def max_parallel(self) -> int | None:
        return self._view.max_parallel

    @property
    def mlflow_run_id(self) -> str | None:
        """The MLflow parent run (each child's run carries it as ``mlflow.parentRunId``)."""
        return self._view.mlflow_run_id

    @property
    def state(self) -> RunState | None:
        """RUNNING while any child is active; then FINISHED when all finished, FAILED when
        any failed (earlier attempts of re-run points count too), else CANCELLED."""
        if self._stale():
            self.refresh()
        return self._view.state

    @property
    def counts(self) -> dict[str, int]:
        """The children by state: ``{"FINISHED": 3, "RUNNING": 1}``."""
        if self._stale():
            self.refresh()
        return dict(self._view.counts)

    @property
    def done(self) -> bool:
        state = self.state
        return bool(self._view.children) and state is not None and state.terminal

    @property
    def children(self) -> list[Run]:
        """Every child run by point (a re-run of a point after the earlier attempt)."""
        if self._stale():
            self.refresh()
        return [self._runs[c.id] for c in self._view.children]

    def latest(self) -> list[Run]:
        """The last attempt of each point (a failed child's re-run replaces it)."""
        return [self._runs[c.id] for c in run_text.latest_attempts(self._view.children)]

    def refresh(self) -> Sweep:
        """Fetch the sweep again, asking the backends about its active children first."""
        self._set(bridge.run(self.engine.current_sweep(self.id)))
        return self

    def wait(self, timeout: float | None = None, *, poll: float = POLL_SECONDS) -> Sweep:
        """Block until every child ended; returns the sweep. ``TimeoutError`` after
        ``timeout`` seconds (the children keep going). Waiting does not raise on a failed
        child: check ``state`` or ``failed()``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.refresh().done and self._view.children:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"sweep {self.id} still running "
                                   f"({run_text.counts(self._view.counts)}) after {timeout:g}s")
            pause = poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic()))
            time.sleep(pause)
        return self

    def failed(self) -> list[Run]:
        """The points whose last attempt did not finish (FAILED, TIMEOUT, CANCELLED)."""
        return [r for r in self.latest()
                if r.record.state.terminal and r.record.state != "FINISHED"]

    # -- results

    def final_metrics(self) -> dict[str, dict[str, float | None]]:
        """``{child run id: {metric: its last value}}`` for the children that logged any."""
        ids = [c.id for c in self._view.children if c.mlflow_run_id]
        return bridge.run(self.engine.latest_metrics(ids)) if ids else {}

    def best(self, metric: str, mode: str = "max") -> Run:
        """The child with the best final value of ``metric`` (``mode`` "max" or "min"),
        among the last attempts that FINISHED (all last attempts if none finished with it).
        ``ValueError`` if no child logged it."""
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', not {mode!r}")
        if self._stale():
            self.refresh()
        finals = self.final_metrics()
        latest = self.latest()

        def scored(runs: list[Run]) -> list[tuple[float, Run]]:
            out = []
            for run in runs:
                value = finals.get(run.id, {}).get(metric)
                if value is not None and not math.isnan(value):
                    out.append((value, run))
            return out

        candidates = scored([r for r in latest if r.record.state == "FINISHED"]) or \
            scored(latest)
        if not candidates:
            logged = sorted({k for m in finals.values() for k in m})
            raise ValueError(f"no child of sweep {self.id} logged metric {metric!r}"
                             + (f" (logged: {', '.join(logged)})" if logged else ""))
        pick = max if mode == "max" else min
        return pick(candidates, key=lambda pair: pair[0])[1]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per child: ``index``, ``id``, ``state``, ``exit_code``, ``rerun_of``,
        ``params.<name>`` (numbers where every child's value is one) and
        ``metrics.<key>`` (final values), as MLflow's ``search_runs`` names them."""
        if self._stale():
            self.refresh()
        finals = self.final_metrics()
        children = self._view.children
        params = list(dict.fromkeys(k for c in children for k in c.parameters))
        metrics = sorted({k for m in finals.values() for k in m})
        typed = {name: _column([c.parameters.get(name) for c in children]) for name in params}
        out = []
        for i, c in enumerate(children):
            row: dict[str, Any] = {"index": c.sweep_index, "id": c.id, "state": c.state.value,
                                   "exit_code": c.exit_code, "rerun_of": c.rerun_of}
            row.update({f"params.{n}": typed[n][i] for n in params})
            row.update({f"metrics.{k}": finals.get(c.id, {}).get(k) for k in metrics})
            out.append(row)
        return out

    def to_pandas(self) -> Any:
        """``rows()`` as a pandas DataFrame, one row per child (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Sweep.to_pandas() needs pandas (pip install pandas); "
                              "Sweep.rows() gives the same table as a list of dicts") from None
        rows = self.rows()
        return pd.DataFrame(rows, columns=list(rows[0]) if rows else [
            "index", "id", "state", "exit_code", "rerun_of"])

    # -- actions

    def cancel(self) -> Sweep:
        """Cancel every child still active (held ones at once). ``Conflict`` if none is."""
        self._set(bridge.run(self.engine.cancel_sweep(self.id)))
        return self

    def rerun_failed(self, parameters: Mapping[str, ParamValue] | None = None, *,
                     overrides: Overrides | None = None, wait: bool = False,
                     timeout: float | None = None, **params: ParamValue) -> Sweep:
        """Re-run the points whose last attempt FAILED or TIMED OUT, as new children of this
        sweep (same snapshot), with these parameter values and config overrides on each.
        ``Conflict`` if none failed."""
        from .engine.requests import SweepRerunRequest

        req = SweepRerunRequest(parameters=_params({**(parameters or {}), **params}),
                                overrides=_overrides(overrides))
        return rerun_sweep_request(self.id, req, wait=wait, timeout=timeout,
                                   data_dir=self._data_dir, sweep=self)

    # -- display

    def __str__(self) -> str:
        return run_text.sweep_summary(self._view)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def __repr__(self) -> str:
        v = self._view
        state = v.state.value if v.state is not None else "SUBMITTING"
        return (f"<Sweep {v.id} {v.name!r} {state} {v.definition.points} points "
                f"({run_text.counts(v.counts)})>")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sweep) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


def _column(values: list[str | None]) -> list[Any]:
    """A parameter's values as ints or floats when every value reads as one."""
    for kind in (int, float):
        try:
            return [None if v is None else kind(v) for v in values]
        except ValueError:
            continue
    return values


def _sweep_value(name: str, value: Any) -> ParamValue:
    """A sweep value: a list/tuple/range of values (each one literally), an override text
    (``"0.1,0.01"``, ``"range(0,5)"``, ``"interval(1e-4,1e-1)"``) or a fixed number."""
    if isinstance(value, (list, tuple, range)):
        from .core.errors import Problem, UserInputError
        from .engine.service import Engine

        if not value:
            raise UserInputError(Problem("an empty list of values", key=f"parameters.{name}"))
        return Engine.sweep_values(_params({str(i): v for i, v in enumerate(value)}).values())
    return _params({"v": value})["v"]


def submit_sweep(project: str | Path | None = None, entry_point: str = "main",
                 parameters: Mapping[str, SweepValue] | None = None, *,
                 random: int | None = None, seed: int | None = None,
                 rows: Sequence[Mapping[str, ParamValue | None]] | str | Path | None = None,
                 max_parallel: int | None = None, backend_config: str | Path | None = None,
                 overrides: Overrides | None = None, run_name: str | None = None,
                 experiment_name: str | None = None, wait: bool = False,
                 timeout: float | None = None, data_dir: str | Path | None = None) -> Sweep:
    """Submit a sweep: one run per point of the grid of ``parameters`` (default), of
    ``random`` points drawn with ``seed``, or of ``rows``; returns at once (``wait=True``:
    when every child ended).

    ``parameters``: per name a list of values (``[0.1, 0.01]``, ``range(5)``), an override
    text as ``hpcml sweep -P`` takes it (``"0.1,0.01"``, ``"range(0,5)"``,
    ``"choice(adam,sgd)"``, ``"interval(1e-4,1e-1)"``, ``"tag(log,interval(1e-4,1e-1))"``)
    or a fixed number. ``rows``: a list of dicts or a .csv/.json file of them.
    ``max_parallel``: children running at once (default: no cap; on the local backend the
    machine's CPUs; where the backend has no job arrays, the children waiting for a slot
    start as others end while something polls: this kernel's ``wait()``/``refresh()``, the
    lab's server or an ``hpcml`` command). Every point is checked against the
    MLproject first: ``UserInputError`` names each bad value, and nothing is submitted.
    The other arguments are those of ``submit``.
    """
    from .engine.requests import SweepRequest
    from .engine.service import Engine

    rows_source = None
    if isinstance(rows, (str, Path)):
        rows_source = str(rows)
        rows = Engine.sweep_rows(Path(rows).expanduser())
    req = SweepRequest(
        project=_project(project), entry_point=entry_point,
        parameters={str(k): _sweep_value(str(k), v) for k, v in (parameters or {}).items()},
        random=random, seed=seed, max_parallel=max_parallel,
        rows=None if rows is None else [
            {str(k): _params({"v": v})["v"] for k, v in row.items() if v is not None}
            for row in rows],
        rows_source=rows_source, backend_config=_config(backend_config),
        overrides=_overrides(overrides), run_name=run_name, experiment_name=experiment_name)
    return submit_sweep_request(req, wait=wait, timeout=timeout, data_dir=data_dir)


def submit_sweep_request(req: SweepRequest, *, wait: bool = False,
                         timeout: float | None = None,
                         data_dir: str | Path | None = None) -> Sweep:
    """Submit a prepared ``SweepRequest`` (what ``%hpc_sweep`` builds from its options)."""
    sweep = Sweep(bridge.run(bridge.engine(data_dir).submit_sweep(req)), data_dir)
    return sweep.wait(timeout) if wait else sweep


def rerun_sweep_request(sweep_id: str, req: SweepRerunRequest, *, wait: bool = False,
                        timeout: float | None = None, data_dir: str | Path | None = None,
                        sweep: Sweep | None = None) -> Sweep:
    """Re-run a sweep's failed children with a prepared request (``%hpc_rerun SWEEP``)."""
    view = bridge.run(bridge.engine(data_dir).rerun_sweep(sweep_id, req))
    if sweep is None:
        sweep = Sweep(view, data_dir)
    else:
        sweep._set(view)
    return sweep.wait(timeout) if wait else sweep


def get_sweep(sweep_id: str, *, data_dir: str | Path | None = None) -> Sweep:
    """The sweep with this id (or the one whose id starts with it; ids start with "s")."""
    return Sweep(bridge.run(bridge.engine(data_dir).get_sweep(sweep_id)), data_dir)


def is_sweep_id(text: str) -> bool:
    """Whether ``text`` names a sweep (an id or prefix starting with "s"), not a run."""
    from .engine.service import Engine

    return Engine.is_sweep_id(text)
