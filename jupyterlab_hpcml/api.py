"""The Python API: submit and follow runs from notebooks and plain scripts.

    from jupyterlab_hpcml import submit, runs, get_run

    run = submit("examples/digits", "train", {"epochs": 5})
    run.wait()
    print(run.state, run.logs(tail=5))
    run.metrics()            # a pandas DataFrame (a list of dicts without pandas)

Runs go through the same engine and run store (``$HPCML_DATA_DIR``) as the lab
and the ``hpcml`` CLI, so a run submitted here shows up in the lab's runs tab
and vice versa.

Every method is synchronous and works both in plain scripts and inside a
running Jupyter kernel (whose event loop is already running): engine
coroutines run on a private event loop in a daemon thread, never on the
caller's loop. Without a Jupyter server polling, ``Run.state``, ``refresh`` and
``wait`` ask the backend themselves.
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .core.files import FileInfo
    from .core.snapshots import Snapshot
    from .core.states import RunState
    from .engine.logs import LogChunk
    from .engine.models import DeleteResult, RunRecord
    from .engine.service import Engine
    from .widget import RunView

__all__ = ["Run", "RunList", "get_run", "runs", "submit", "submit_cell"]

#: Backend config used when a submission names none ("local" or a config path). The Jupyter
#: server exports its ``HpcmlApp.default_backend`` here, so kernels default like the lab.
DEFAULT_BACKEND_ENV = "HPCML_DEFAULT_BACKEND"
#: MLflow tracking store the engine uses; the Jupyter server exports its own here (its
#: ``HpcmlApp.mlflow_tracking_uri``), so kernels write where the lab reads. Falls back to
#: ``MLFLOW_TRACKING_URI``, then to the embedded store in the data dir.
TRACKING_URI_ENV = "HPCML_MLFLOW_TRACKING_URI"
#: Entry point and files of a ``%%hpc_submit`` cell run (see docs/magics.md).
CELL_ENTRY_POINT = "hpcml_cell"
CELL_SCRIPT = "hpcml_cell.py"
CELL_PARAMS_MODULE = "hpcml_params"
POLL_SECONDS = 0.5
STATE_MAX_AGE = 1.0  # seconds a non-terminal Run.state may be old before it is asked again

T = TypeVar("T")
ParamValue = str | int | float
Overrides = Sequence[str] | Mapping[str, Any]


# ---------------------------------------------------------------------------
# The private event loop


class _Bridge:
    """One event loop on a daemon thread; one Engine per (data dir, tracking URI, default)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._engines: dict[tuple[str, str, str], Engine] = {}

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or not self._thread or \
                    not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="hpcml-engine", daemon=True)
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
                self._engines = {}  # a forked child must not reuse its parent's connections
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the private loop and wait for its result (from any other thread)."""
        loop = self.loop()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("the hpcml API's sync methods cannot be called from its own loop")
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError(f"no answer within {timeout}s") from None
        except BaseException:  # KeyboardInterrupt in a kernel: stop the work too
            fut.cancel()
            raise

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` run on the private loop, from another event loop (the kernel's)."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop()))

    def engine(self, data_dir: Path | str | None = None) -> Engine:
        from .settings import default_data_dir

        resolved = Path(data_dir).expanduser().resolve() if data_dir else default_data_dir()
        tracking = os.environ.get(TRACKING_URI_ENV) or os.environ.get("MLFLOW_TRACKING_URI", "")
        default = os.environ.get(DEFAULT_BACKEND_ENV) or "local"
        key = (str(resolved), tracking, default)
        self.loop()
        engine = self._engines.get(key)
        if engine is None:
            engine = self.run(_make_engine(resolved, tracking or None, default))
            self._engines[key] = engine
        return engine

    def close(self) -> None:
        loop, engines = self._loop, list(self._engines.values())
        if loop is None or self._pid != os.getpid() or not loop.is_running():
            return
        for engine in engines:
            try:
                asyncio.run_coroutine_threadsafe(engine.close(), loop).result(5)
            except Exception:  # noqa: BLE001 - best effort at interpreter exit
                pass
        self._engines = {}
        loop.call_soon_threadsafe(loop.stop)


async def _make_engine(data_dir: Path, tracking_uri: str | None, default_backend: str) -> Engine:
    import logging

    from .engine.service import Engine

    # MLflow announces at INFO when it creates its database; in a notebook that is noise.
    quiet = logging.getLogger("mlflow.store.db.utils")
    if quiet.level == logging.NOTSET:
        quiet.setLevel(logging.WARNING)
    return Engine(data_dir=data_dir, tracking_uri=tracking_uri, default_backend=default_backend)


_bridge = _Bridge()
atexit.register(_bridge.close)


# ---------------------------------------------------------------------------
# Engine-side helpers (coroutines run on the private loop)


async def _current(engine: Engine, run_id: str) -> RunRecord:
    """The run, after asking its backend when it has not ended."""
    record = await engine.runs.get(run_id)
    if not record.state.terminal:
        await engine.runs.refresh([record])
        record = await engine.runs.get(record.id)
    return record


async def _read_all(engine: Engine, run_id: str, stream: str, offset: int) -> LogChunk:
    """Everything from ``offset`` on, as one chunk."""
    from .engine.logs import MAX_CHUNK

    first = chunk = await engine.runs.read_log(run_id, stream, offset, MAX_CHUNK)
    parts = [chunk.data]
    while chunk.data:
        chunk = await engine.runs.read_log(run_id, stream, chunk.next_offset, MAX_CHUNK)
        parts.append(chunk.data)
    return first.model_copy(update={"data": "".join(parts), "next_offset": chunk.next_offset,
                                    "size": chunk.size, "running": chunk.running})


async def _read_tail(engine: Engine, run_id: str, stream: str, lines: int) -> LogChunk:
    """The last ``lines`` lines (``data``) and the offset after them (``next_offset``)."""
    size = (await engine.runs.read_log(run_id, stream, 0, 1)).size or 0
    start = max(0, size - max(lines, 1) * 4096)  # generous window: 4 KiB per line
    chunk = await _read_all(engine, run_id, stream, start)
    kept = chunk.data.splitlines(keepends=True)[-lines:] if lines > 0 else []
    return chunk.model_copy(update={"data": "".join(kept)})


async def _metric_history(engine: Engine, mlflow_run_id: str,
                          key: str | None) -> list[dict[str, Any]]:
    """Every logged value (not downsampled), sorted by key, step and time."""
    tracker = engine.tracker

    def read() -> list[dict[str, Any]]:
        keys = [key] if key else [m["key"] for m in tracker.metric_keys(mlflow_run_id)]
        rows = [
            {"key": k, "step": m.step, "value": m.value, "timestamp": m.timestamp / 1000.0}
            for k in keys
            for m in tracker.client.get_metric_history(mlflow_run_id, k)
        ]
        return sorted(rows, key=lambda r: (r["key"], r["step"], r["timestamp"]))

    return await asyncio.to_thread(read)


async def _download(engine: Engine, run_id: str, path: str, to: Path) -> Path:
    local, tmp = await engine.outputs.download_artifact(run_id, path)
    try:
        dest = to / local.name if to.is_dir() else to
        dest.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.copyfile, local, dest)
        return dest
    finally:
        tmp.cleanup()


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


def _fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _fmt_duration(record: RunRecord) -> str:
    start = record.started_at
    if not start:
        return "-"
    secs = int((record.ended_at or time.time()) - start)
    return f"{secs // 3600}:{secs % 3600 // 60:02d}:{secs % 60:02d}"


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
        self._shown_in: int | None = None  # execution count of the cell that displayed it

    # -- the record

    @property
    def _engine(self) -> Engine:
        return _bridge.engine(self._data_dir)

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
        start = self._record.started_at
        return None if start is None else (self._record.ended_at or time.time()) - start

    def refresh(self) -> Run:
        """Fetch the record again, asking the backend first if the run has not ended."""
        self._record = _bridge.run(_current(self._engine, self.id))
        self._fetched = time.monotonic()
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
            except Exception:  # noqa: BLE001 - the view is a nicety; the wait succeeded
                pass
        return self

    # -- outputs

    def logs(self, stream: str = "stdout", tail: int | None = None) -> str:
        """The job's ``stdout`` or ``stderr`` so far; only the last ``tail`` lines if given."""
        engine = self._engine
        if tail is not None:
            return _bridge.run(_read_tail(engine, self.id, stream, tail)).data
        return _bridge.run(_read_all(engine, self.id, stream, 0)).data

    def iter_logs(self, stream: str = "stdout", *, follow: bool = False, tail: int | None = None,
                  poll: float = POLL_SECONDS) -> Iterator[str]:
        """Pieces of the log as they come; with ``follow`` until the run ends."""
        engine = self._engine
        if tail is not None:
            chunk = _bridge.run(_read_tail(engine, self.id, stream, tail))
        else:
            chunk = _bridge.run(_read_all(engine, self.id, stream, 0))
        while True:
            if chunk.data:
                yield chunk.data
            elif not follow or not chunk.running:
                return
            else:
                time.sleep(poll)
                self.refresh()
            chunk = _bridge.run(_read_all(engine, self.id, stream, chunk.next_offset))

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
            rows = _bridge.run(_metric_history(self._engine, self.mlflow_run_id, key))
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows, columns=["key", "step", "value", "timestamp"])

    def latest_metrics(self) -> dict[str, float | None]:
        """The last value of each metric."""
        rows = _bridge.run(self._engine.outputs.metric_keys(self.id)) if self.mlflow_run_id else []
        return {m["key"]: m["value"] for m in rows}

    def artifacts(self, path: str = "") -> list[FileInfo]:
        """One folder level of the run's MLflow artifacts (``path``: a folder in them)."""
        return _bridge.run(self._engine.outputs.list_artifacts(self.id, path))

    def download(self, path: str, to: str | Path = ".") -> Path:
        """Copy one artifact file to ``to`` (a folder, or the file to write); returns the copy."""
        return _bridge.run(_download(self._engine, self.id, path, Path(to).expanduser()))

    # -- actions

    def cancel(self) -> Run:
        """Ask the backend to stop the run (state becomes CANCELLED when it has stopped).
        ``Conflict`` if the run already ended."""
        self._record = _bridge.run(self._engine.runs.cancel(self.id))
        self._fetched = time.monotonic()
        return self

    def delete(self, *, delete_mlflow: bool = False) -> DeleteResult:
        """Delete the ended run: its record, its local run directory (a remote one is kept)
        and, with ``delete_mlflow``, its MLflow run (MLflow's soft delete). ``Conflict`` while
        the run is active (cancel it first). Returns what was removed and what was kept."""
        self.refresh()  # without a server polling, the backend says whether it ended
        return _bridge.run(self._engine.runs.delete(self.id, delete_mlflow=delete_mlflow))

    def archive(self) -> Run:
        """Hide the ended run from default listings (reversible: ``unarchive()``)."""
        return self._set_archived(True)

    def unarchive(self) -> Run:
        return self._set_archived(False)

    def _set_archived(self, archived: bool) -> Run:
        self.refresh()
        self._record = _bridge.run(self._engine.runs.set_archived(self.id, archived))
        self._fetched = time.monotonic()
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

    def rows(self) -> list[tuple[str, ...]]:
        return [
            (r.id, r.name, r.entry_point, r.backend, r.record.backend_job_id or "-",
             r.record.state.value + (" (archived)" if r.record.archived else ""),
             _fmt_time(r.record.created_at), _fmt_duration(r.record))
            for r in self
        ]

    HEADER = ("ID", "NAME", "ENTRY", "BACKEND", "JOB", "STATE", "SUBMITTED", "DURATION")

    def __str__(self) -> str:
        rows = [self.HEADER, *self.rows()]
        widths = [max(len(str(x)) for x in col) for col in zip(*rows)]
        lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
        if self.total > len(self):
            lines.append(f"({len(self)} of {self.total} runs)")
        return "\n".join(lines)

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


def submit_request(req: Any, *, wait: bool = False, timeout: float | None = None,
                   data_dir: str | Path | None = None) -> Run:
    """Submit a prepared ``SubmitRequest`` (what the magics build from their options)."""
    engine = _bridge.engine(data_dir)
    run = Run(_bridge.run(engine.runs.submit(req)), data_dir)
    return run.wait(timeout) if wait else run


def rerun_request(run_id: str, req: Any, *, wait: bool = False, timeout: float | None = None,
                  data_dir: str | Path | None = None) -> Run:
    """Re-run ``run_id`` with a prepared ``RerunRequest`` (what ``%hpc_rerun`` builds)."""
    engine = _bridge.engine(data_dir)
    run = Run(_bridge.run(engine.runs.rerun(run_id, req)), data_dir)
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

    engine = _bridge.engine(data_dir)
    if refresh:
        _bridge.run(engine.runs.refresh())
    found, total = _bridge.run(asyncio.to_thread(
        engine.store.list, states=_states(state),
        project=str(Path(project).expanduser().resolve()) if project else None,
        text=query, archived=archived_filter(archived), limit=limit))
    out = RunList(Run(r, data_dir) for r in found)
    out.total = total
    return out


def get_run(run_id: str, *, data_dir: str | Path | None = None) -> Run:
    """The run with this id, or the one run whose id starts with it (``NotFound`` otherwise)."""
    engine = _bridge.engine(data_dir)
    return Run(_bridge.run(engine.runs.get(run_id)), data_dir)


# ---------------------------------------------------------------------------
# A cell (or any Python source) as a run


_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


def _param_type(value: ParamValue) -> str:
    """The MLflow type of a cell parameter: int and float when the value looks like one."""
    if isinstance(value, bool):
        return "string"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if _INT_RE.fullmatch(value):
        return "int"
    if _FLOAT_RE.fullmatch(value):
        return "float"
    return "string"


_PARAMS_MODULE = '''\
"""Parameters of a %%hpc_submit cell, written by jupyterlab-hpcml.

The run's command is `python hpcml_cell.py --name value ...`; this module reads those
arguments into `params` (typed as below). hpcml_cell.py starts with
`from hpcml_params import params; globals().update(params)`.
"""
import sys

TYPES = {types!r}
_CAST = {{"int": int, "float": float}}

params = {{}}
_args = sys.argv[1:]
for _i in range(0, len(_args) - 1, 2):
    _name = _args[_i][2:] if _args[_i].startswith("--") else None
    if _name in TYPES:
        params[_name] = _CAST.get(TYPES[_name], str)(_args[_i + 1])
'''


def cell_files(code: str, parameters: Mapping[str, ParamValue],
               mlproject: Mapping[str, Any],
               header: str = "") -> tuple[dict[str, bytes], dict[str, str]]:
    """The files a cell run adds to (or replaces in) the project snapshot, and its parameter
    values as strings: ``hpcml_cell.py`` (line 1 loads the parameters, the cell body follows
    from line 2 on, so line numbers in tracebacks are the cell's), ``hpcml_params.py``, and
    the ``MLproject`` with an entry point ``hpcml_cell`` added."""
    import yaml

    from .core.errors import Problem, UserInputError

    problems = [Problem(f"parameter name {name!r} must be a name like 'learning_rate'", key="-P")
                for name in parameters if not name.isidentifier()]
    try:
        compile(code, CELL_SCRIPT, "exec", dont_inherit=True)
    except SyntaxError as exc:
        problems.append(Problem(
            f"the cell must be plain Python (no magics or !commands): {exc.msg} "
            f"(line {(exc.lineno or 0) + 1} of the cell)"))
    if problems:
        raise UserInputError(problems)
    types = {name: _param_type(value) for name, value in parameters.items()}
    values = {name: str(value) for name, value in parameters.items()}
    header = " ".join(header.split())
    first = (f"from {CELL_PARAMS_MODULE} import params; globals().update(params)"
             f"  # %%hpc_submit {header}".rstrip())
    script = first + "\n" + code + ("" if code.endswith("\n") else "\n")
    data = dict(mlproject)
    entry_points = dict(data.get("entry_points") or {})
    entry_points[CELL_ENTRY_POINT] = {
        "parameters": {name: {"type": t, "default": values[name]} for name, t in types.items()},
        "command": " ".join(["python", CELL_SCRIPT,
                             *(f"--{name} {{{name}}}" for name in types)]),
    }
    data["entry_points"] = entry_points
    return {
        CELL_SCRIPT: script.encode(),
        f"{CELL_PARAMS_MODULE}.py": _PARAMS_MODULE.format(types=types).encode(),
        "MLproject": yaml.safe_dump(data, sort_keys=False).encode(),
    }, values


def _with_files(snapshot: Snapshot, files: Mapping[str, bytes], object_dir: Path,
                manifest_dir: Path, replace: Sequence[str] = ()) -> Snapshot:
    """A new snapshot: ``snapshot`` with ``files`` added or replaced (and ``replace`` removed)."""
    from dataclasses import asdict

    from .core.snapshots import Snapshot, SnapshotFile
    from .engine import snapshot as snapshot_mod

    gone = set(files) | set(replace)
    out = [f for f in snapshot.files if f.relpath not in gone]
    for relpath, content in files.items():
        with tempfile.NamedTemporaryFile(prefix="hpcml-cell-", delete=False) as tmp:
            tmp.write(content)
        try:
            digest = snapshot_mod._store_copy(Path(tmp.name), object_dir)
        finally:
            Path(tmp.name).unlink(missing_ok=True)
        out.append(SnapshotFile(relpath=relpath, size=len(content), mode=0o644, sha256=digest))
    new = Snapshot(id=snapshot_mod._snapshot_id(out), files=out, object_dir=object_dir,
                   notes=snapshot.notes)
    snapshot_mod._write_json_atomic(
        manifest_dir / f"{new.id}.json",
        {"id": new.id, "files": [asdict(f) for f in out], "notes": new.notes},
    )
    return new


async def _submit_cell(engine: Engine, code: str, req: Any, header: str) -> RunRecord:
    import yaml

    from .engine import project as project_mod
    from .engine import snapshot as snapshot_mod

    service = engine.runs
    project_dir = await asyncio.to_thread(project_mod.find_project_root, Path(req.project))
    spec = await asyncio.to_thread(project_mod.load_project, project_dir)  # every problem first
    cfg = await asyncio.to_thread(service.backend_config, project_dir, req.backend_config,
                                  req.overrides)
    assert spec.mlproject_file is not None
    mlproject = yaml.safe_load(spec.mlproject_file.read_text(encoding="utf-8"))
    files, values = cell_files(code, req.parameters, mlproject, header)
    snapshot = await asyncio.to_thread(snapshot_mod.take_snapshot, project_dir, service.object_dir,
                                       service.manifest_dir, cfg.exclude)
    snapshot = await asyncio.to_thread(
        _with_files, snapshot, files, service.object_dir, service.manifest_dir,
        [spec.mlproject_file.name],
    )
    cell_req = req.model_copy(update={"project": str(project_dir),
                                      "entry_point": CELL_ENTRY_POINT, "parameters": values})
    record = await service.submit(cell_req, snapshot=snapshot)
    # The engine records no code identity for a given snapshot: add the project's (git)
    # identity with the content hash of what actually ran (the project plus the cell).
    code_id = await asyncio.to_thread(snapshot_mod.code_identity, project_dir, snapshot)
    record = await asyncio.to_thread(engine.store.update, record.id, code=code_id)
    if record.mlflow_run_id:
        try:
            await asyncio.to_thread(engine.tracker.set_tags, record.mlflow_run_id, {
                "hpcml.code.content_hash": code_id.content_hash,
                "mlflow.source.git.commit": code_id.git_commit or "",
                "hpcml.code.git_dirty_hash": code_id.git_dirty_hash or "",
                "hpcml.cell": "true",
            })
        except Exception:  # noqa: BLE001 - tags are a nicety; the run is submitted
            pass
    return record


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
    from .engine.requests import SubmitRequest

    req = SubmitRequest(project=_project(project), entry_point=CELL_ENTRY_POINT,
                        parameters=_params(parameters), backend_config=_config(backend_config),
                        overrides=_overrides(overrides), run_name=run_name,
                        experiment_name=experiment_name)
    return submit_cell_request(code, req, wait=wait, timeout=timeout, data_dir=data_dir,
                               header=_header)


def submit_cell_request(code: str, req: Any, *, wait: bool = False, timeout: float | None = None,
                        data_dir: str | Path | None = None, header: str = "") -> Run:
    engine = _bridge.engine(data_dir)
    run = Run(_bridge.run(_submit_cell(engine, code, req, header)), data_dir)
    return run.wait(timeout) if wait else run
