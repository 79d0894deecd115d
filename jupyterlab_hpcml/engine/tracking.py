"""MLflow: create the run before the job, follow the job's state, read metrics and artifacts.

Every hpcml run is an MLflow run. The engine creates it (status SCHEDULED) before
the job exists, hands the job ``MLFLOW_RUN_ID`` so that ``mlflow.start_run()``
continues it, and sets the final status when the backend reports the end.

``mlflow`` is imported inside functions only: importing it costs about a second
and the server extension must load within its import-time budget. All
``Tracker`` methods block; the engine calls them through ``asyncio.to_thread``.
"""
from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from ..core.errors import Conflict, NotFound
from ..core.files import OFFLINE_MLRUNS, FileInfo
from ..core.states import RunState
from . import mlflow_sqlite, paths, yamlio
from .locks import hold_lock
from .mlflow_import import load_mlflow
from .models import DatasetUse, TrackingMode

if TYPE_CHECKING:  # pragma: no cover - typing only, keeps mlflow out of the import path
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

# MLflow's REST limits per log_batch call.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100

# Credentials a job needs to reach a tracking server; passed to the process only (see JobSpec.env).
SECRET_ENV_VARS = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")

# RunState → MLflow RunStatus. UNKNOWN is absent on purpose: the backend is unreachable,
# the job may well still run, so the MLflow status is left as it is ("never silently FAILED").
_MLFLOW_STATUS: dict[RunState, str] = {
    RunState.SUBMITTING: "SCHEDULED",
    RunState.STAGING: "SCHEDULED",
    RunState.QUEUED: "SCHEDULED",
    RunState.RUNNING: "RUNNING",
    RunState.FINISHED: "FINISHED",
    RunState.FAILED: "FAILED",
    RunState.TIMEOUT: "FAILED",
    RunState.CANCELLED: "KILLED",
}

# How long an experiment's id is reused without looking the name up again: a burst of
# submissions (a sweep) skips the lookups, while an experiment renamed in MLflow is
# noticed soon. create_run itself refuses an experiment deleted in the meantime.
EXPERIMENT_ID_TTL = 30.0

# MLflow error codes meaning "this run is gone" (hard-deleted or never existed).
_GONE_CODES = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}
_PROCESS_URI_LOCK = threading.Lock()


def default_tracking_uri(data_dir: Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the embedded SQLite store in the data dir."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path(data_dir).expanduser().resolve()}/mlflow.db"


def _is_file_store(uri: str) -> bool:
    return uri.startswith("file:") or (
        "://" not in uri and not uri.startswith(("sqlite:", "databricks")))


def _default_artifact_root(tracking_uri: str) -> str | None:
    """``<dir of the sqlite db>/mlartifacts`` for a SQLite store; None lets other stores decide."""
    db = mlflow_sqlite.sqlite_path(tracking_uri)
    return (db.parent / "mlartifacts").as_uri() if db else None


def _slug(name: str) -> str:
    """A directory name for an experiment's artifacts (uniqueness comes from run ids below it)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return slug[:100] or "experiment"


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _json_float(value: float) -> float | None:
    # JSON has no NaN/Infinity; the UI shows None as a gap.
    return value if value == value and value not in (float("inf"), float("-inf")) else None


class Tracker:
    """The engine's MLflow client for the main tracking store."""

    def __init__(self, tracking_uri: str, artifact_root: str | None = None):
        self.tracking_uri = tracking_uri
        # Without an explicit location, a SQLite store would put artifacts in ./mlruns of the cwd.
        self.artifact_root = artifact_root or _default_artifact_root(tracking_uri)
        self._client: MlflowClient | None = None
        self._lock = threading.Lock()
        self._experiment_ids: dict[str, tuple[str, float]] = {}  # name → (id, when looked up)

    @property
    def client(self) -> MlflowClient:
        with self._lock:
            if self._client is None:
                if _is_file_store(self.tracking_uri):
                    # MLflow >= 3.7 refuses the file store unless told; the user chose it.
                    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
                load_mlflow()
                from mlflow import MlflowClient

                db = mlflow_sqlite.sqlite_path(self.tracking_uri)
                if db is None:
                    self._client = MlflowClient(self.tracking_uri)
                else:
                    # Opening the store creates or migrates its tables; the server, the CLI and
                    # kernels may do that at once, and MLflow's migrations are not safe to race.
                    with hold_lock(db.with_name(db.name + ".lock")):
                        self._client = MlflowClient(self.tracking_uri)
            return self._client

    @contextlib.contextmanager
    def as_process_default(self) -> Iterator[None]:
        """MLflow's process-wide tracking URI set to ours for the block. Some of MLflow reads
        that and not its client's (the SQL registry's create_model_version looks a logged
        model up with a default client: MLflow's own TODO), so without this a registration
        would look in ./mlruns, or in whatever store the process last named."""
        load_mlflow()
        import mlflow

        with _PROCESS_URI_LOCK:
            before = mlflow.get_tracking_uri()
            if before == self.tracking_uri:
                yield
                return
            mlflow.set_tracking_uri(self.tracking_uri)
            try:
                yield
            finally:
                mlflow.set_tracking_uri(before)

    # ------------------------------------------------------------------ runs

    def create_run(
        self,
        experiment_name: str,
        run_name: str,
        params: Mapping[str, str],
        tags: Mapping[str, str],
        *,
        schedule: bool = True,
    ) -> tuple[str, str]:
        """Create the MLflow run (SCHEDULED) the job will continue; return (experiment id, run id).

        ``schedule=False`` leaves the params and the SCHEDULED status to ``schedule_run``,
        for a caller that writes them while the job is being submitted."""
        load_mlflow()
        from mlflow.exceptions import MlflowException

        all_tags = {"mlflow.user": _user(), "mlflow.source.type": "PROJECT", **tags}
        all_tags["mlflow.runName"] = run_name
        run = None
        experiment_id, looked_up = self._experiment_ids.get(experiment_name, ("", 0.0))
        if experiment_id and time.monotonic() - looked_up <= EXPERIMENT_ID_TTL:
            try:
                run = self.client.create_run(experiment_id, tags=all_tags, run_name=run_name)
            except MlflowException:
                pass  # the remembered experiment was deleted since: look it up again
        if run is None:
            experiment_id = self._experiment_id(experiment_name)
            run = self.client.create_run(experiment_id, tags=all_tags, run_name=run_name)
            self._experiment_ids[experiment_name] = (experiment_id, time.monotonic())
        run_id = run.info.run_id
        if schedule:
            self.schedule_run(run_id, params)
        return experiment_id, run_id

    def schedule_run(self, run_id: str, params: Mapping[str, str]) -> None:
        """Log the run's params and set it SCHEDULED (the status create_run cannot give)."""
        load_mlflow()
        from mlflow.entities import Param, RunStatus

        param_objs = [Param(str(k), str(v)) for k, v in params.items()]
        for batch in _chunks(param_objs, MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=list(batch))
        self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.SCHEDULED))

    def _experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created if missing; safe against a concurrent creator."""
        load_mlflow()
        from mlflow.exceptions import MlflowException

        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            location = f"{self.artifact_root}/{_slug(name)}" if self.artifact_root else None
            try:
                return str(self.client.create_experiment(name, artifact_location=location))
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            exp = self.client.get_experiment_by_name(name)  # another process won the race
            if exp is None:
                raise RuntimeError(f"MLflow experiment {name!r} exists but cannot be read")
        if exp.lifecycle_stage != "active":
            raise Conflict(
                f"MLflow experiment {name!r} is deleted: restore it in MLflow, "
                "delete it permanently, or choose another experiment name"
            )
        return str(exp.experiment_id)

    def find_run(self, experiment_name: str, hpcml_run_id: str) -> tuple[str, str] | None:
        """(experiment id, MLflow run id) of the run created for hpcml run ``hpcml_run_id``
        (its ``hpcml.run_id`` tag), or None: for a submission interrupted before the run
        record learnt its MLflow run."""
        load_mlflow()
        from mlflow.entities import ViewType

        exp = self.client.get_experiment_by_name(experiment_name)
        if exp is None or not re.fullmatch(r"[0-9A-Za-z_-]+", hpcml_run_id):
            return None
        found = self.client.search_runs(
            [exp.experiment_id], f"tags.`hpcml.run_id` = '{hpcml_run_id}'",
            run_view_type=ViewType.ALL, max_results=1)
        return (exp.experiment_id, found[0].info.run_id) if found else None

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        load_mlflow()
        from mlflow.entities import RunTag

        if len(tags) == 1:  # a lone tag: set_tag is half the cost of log_batch
            ((key, value),) = tags.items()
            self.client.set_tag(run_id, str(key), str(value))
            return
        objs = [RunTag(str(k), str(v)) for k, v in tags.items()]
        for batch in _chunks(objs, MAX_TAGS_PER_BATCH):
            self.client.log_batch(run_id, tags=list(batch))

    def log_datasets(self, run_id: str, uses: Sequence[DatasetUse]) -> None:
        """The run's dataset versions as MLflow dataset inputs (its UI lists them with the
        run). MLflow keeps 36 characters of a digest: the first 32 of ours; the whole one,
        the size and the file count go into the dataset's profile."""
        load_mlflow()
        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = [DatasetInput(
            dataset=Dataset(
                name=use.name, digest=use.digest[:32],
                source_type="hpcml-cluster" if use.version == "listing" else "hpcml",
                source=json.dumps({"source": use.source, "path": use.path,
                                   "location": use.location}),
                profile=json.dumps({"digest": use.digest, "version": use.version,
                                    "size": use.size, "files": use.files})),
            tags=[InputTag("mlflow.data.context", "training")]) for use in uses]
        if inputs:
            self.client.log_inputs(run_id, datasets=inputs)

    def get_tags(self, run_id: str) -> dict[str, str]:
        return dict(self.client.get_run(run_id).data.tags)

    def run_tags_and_metrics(self, run_id: str) -> tuple[dict[str, str], dict[str, float]]:
        """An MLflow run's tags and latest metric values ({} each when the run is gone)."""
        load_mlflow()
        from mlflow.exceptions import MlflowException

        try:
            data = self.client.get_run(run_id).data
        except MlflowException:
            return {}, {}
        return dict(data.tags), {k: float(v) for k, v in data.metrics.items()}

    def set_status(self, run_id: str, state: RunState, at: float | None = None) -> None:
        """Mirror the run's state in MLflow; ``at`` (epoch s) is the end time of a terminal state.

        A run deleted in MLflow meanwhile is logged and ignored: the run record stays valid.
        """
        load_mlflow()
        from mlflow.exceptions import MlflowException

        status = _MLFLOW_STATUS.get(state)
        if status is None:
            return
        try:
            if state.terminal:
                end_ms = int((at if at is not None else time.time()) * 1000)
                self.client.set_terminated(run_id, status=status, end_time=end_ms)
            else:
                self.client.update_run(run_id, status=status)
        except MlflowException as exc:
            if not self._is_gone(run_id, exc):
                raise
            log.warning("MLflow run %s was deleted; its status stays as it is (%s)",
                        run_id, exc.message)

    def delete_run(self, run_id: str) -> None:
        """MLflow's own soft delete (lifecycle stage "deleted"; restorable in MLflow until its
        garbage collection). A run already deleted or gone counts as done."""
        load_mlflow()
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_run(run_id)
        except MlflowException as exc:
            if not self._is_gone(run_id, exc):
                raise

    def _is_gone(self, run_id: str, exc: Exception) -> bool:
        """True when the run was hard-deleted or is in the deleted lifecycle stage."""
        load_mlflow()
        from mlflow.exceptions import MlflowException

        if getattr(exc, "error_code", None) in _GONE_CODES:
            return True
        try:
            return bool(self.client.get_run(run_id).info.lifecycle_stage == "deleted")
        except MlflowException as again:
            return again.error_code in _GONE_CODES

    # ------------------------------------------------------------------ logging (offline sync)

    def log_metrics(self, run_id: str, rows: Sequence[tuple[str, float, int, int]]) -> None:
        """Log ``(key, value, timestamp_ms, step)`` rows with log_batch, at most 1000 per call."""
        load_mlflow()
        from mlflow.entities import Metric

        for batch in _chunks(rows, MAX_METRICS_PER_BATCH):
            metrics = [Metric(key, value, ts, step) for key, value, ts, step in batch]
            self.client.log_batch(run_id, metrics=metrics)

    def log_params(self, run_id: str, params: Mapping[str, str]) -> list[str]:
        """Log params; return the keys MLflow refused (a different value was logged before)."""
        load_mlflow()
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        items = [Param(k, v) for k, v in params.items()]
        refused: list[str] = []
        for batch in _chunks(items, MAX_PARAMS_PER_BATCH):
            try:
                self.client.log_batch(run_id, params=list(batch))
            except MlflowException as exc:
                if exc.error_code != "INVALID_PARAMETER_VALUE":
                    raise
                # One bad param (changed value) must not block the others: retry one by one.
                for p in batch:
                    try:
                        self.client.log_batch(run_id, params=[p])
                    except MlflowException as one:
                        if one.error_code != "INVALID_PARAMETER_VALUE":
                            raise
                        log.warning("param %s of run %s not copied: %s", p.key, run_id, one.message)
                        refused.append(p.key)
        return refused

    def log_artifacts(self, run_id: str, local_dir: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, str(local_dir), artifact_path)

    # ------------------------------------------------------------------ reading

    def metric_keys(self, run_id: str) -> list[dict[str, Any]]:
        """The latest value of each metric: ``[{key, value, step, timestamp}]`` sorted by key."""
        fast = mlflow_sqlite.reader(self.tracking_uri)
        latest = fast.latest_metrics(run_id) if fast is not None else None
        if latest is not None:
            return [{"key": k, "value": _json_float(v), "step": step, "timestamp": ts}
                    for k, v, ts, step in sorted(latest)]
        proto = self.client.get_run(run_id).data.to_proto()
        out = [
            {"key": m.key, "value": _json_float(m.value), "step": m.step, "timestamp": m.timestamp}
            for m in proto.metrics
        ]
        return sorted(out, key=lambda d: d["key"])

    def metric_series(self, run_id: str, key: str, x: Literal["step", "time"] = "step"
                      ) -> tuple[Sequence[int], Sequence[int], Sequence[float]]:
        """Every logged value of one metric: (steps, timestamps in ms, values with NaN as
        NaN), sorted by step then time (``x="time"``: time then step), ties as MLflow
        orders them.

        The one way the package reads a metric history. On MLflow's SQLite store it is
        one read-only SQL query (``mlflow_sqlite``: no MLflow import, no ORM object per
        point); on any other store, or a schema it does not know, MLflow's public API."""
        fast = mlflow_sqlite.reader(self.tracking_uri)
        if fast is not None:
            found = fast.metric_series(run_id, key, x)
            if found is not None:
                return found
        history = list(self.client.get_metric_history(run_id, key))
        # Stable: ties keep MLflow's order (timestamp, step, value).
        history.sort(key=(lambda m: (m.timestamp, m.step)) if x == "time"
                     else (lambda m: (m.step, m.timestamp)))
        return ([m.step for m in history], [m.timestamp for m in history],
                [m.value for m in history])

    def metric_history(
        self,
        run_id: str,
        key: str,
        max_points: int = 1000,
        x: Literal["step", "time"] = "step",
    ) -> dict[str, Any]:
        """All values of one metric, bucketed to ``max_points`` (min/max kept so spikes survive).

        ``x`` is the step, or with ``x="time"`` the timestamp in epoch seconds.
        """
        from .downsample import downsample

        steps, times, values = self.metric_series(run_id, key, x)
        xs: Sequence[float] = [t / 1000.0 for t in times] if x == "time" else steps
        return {"key": key, "total": len(values), "points": downsample(xs, values, max_points)}

    def metric_values(self, run_id: str, key: str | None = None) -> list[dict[str, Any]]:
        """Every logged value of ``key`` (default: every metric), not downsampled:
        ``[{key, step, value, timestamp}]`` (epoch seconds) sorted by key, step and time."""
        keys = [key] if key else [m["key"] for m in self.metric_keys(run_id)]
        return [
            {"key": k, "step": step, "value": value, "timestamp": ts / 1000.0}
            for k in sorted(keys)
            for step, ts, value in zip(*self.metric_series(run_id, k), strict=True)
        ]

    def list_experiments(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Active experiments, most recently updated first: ``[{id, name, last_update_time}]``."""
        load_mlflow()
        from mlflow.entities import ViewType

        found = self.client.search_experiments(
            view_type=ViewType.ACTIVE_ONLY, max_results=limit,
            order_by=["last_update_time DESC"])
        return [{"id": e.experiment_id, "name": e.name, "last_update_time": e.last_update_time}
                for e in found]

    # MLflow 3 shows a run's logged models (``log_model(name="model")``) as the artifact path
    # ``model/``, but resolves them through the process's default tracking URI instead of the
    # client's (ModelsArtifactRepository), so with the embedded store they are "not found".
    # We resolve run artifacts and logged models ourselves, each by its storage location.

    def list_artifacts(self, run_id: str, path: str = "") -> list[FileInfo]:
        """One level of the run's artifacts, logged models included. Paths are relative to
        the artifact ROOT (MLflow's convention): an entry's path can be listed or downloaded."""
        run = self.client.get_run(run_id)
        entries = _listing(run.info.artifact_uri, path)
        if not path:
            seen = {e.path for e in entries}
            return entries + [FileInfo(path=m.name, is_dir=True) for m in self._logged_models(run)
                              if m.name not in seen]
        if entries:
            return entries
        model, rest = self._model_at(run, path)
        if model is None:
            return []
        return [FileInfo(path=f"{model.name}/{e.path}", is_dir=e.is_dir, size=e.size)
                for e in _listing(model.artifact_location, rest)]

    def open_artifact(self, run_id: str, path: str) -> tuple[BinaryIO, int]:
        """The artifact file ``path`` (clean, relative to the artifact root) opened for reading,
        and its size. A local store's file is opened in place, confined to its root on what
        is opened; any other store's file is fetched by MLflow's repository API, which takes
        the path as a path (never as a URI that would be decoded once more)."""
        run = self.client.get_run(run_id)
        run_uri = run.info.artifact_uri
        parent, _, name = path.rpartition("/")
        in_run = any(e.path.rpartition("/")[2] == name for e in _listing(run_uri, parent))
        model, rest = (None, "") if in_run else self._model_at(run, path)
        root, rel = (model.artifact_location, rest) if model is not None else (run_uri, path)
        return _open_artifact(root, rel)

    def download_artifact(self, run_id: str, path: str, dst_dir: Path) -> Path:
        """A copy of the artifact file ``path`` in ``dst_dir`` (named by its last part)."""
        import shutil

        dst_dir.mkdir(parents=True, exist_ok=True)
        src, _ = self.open_artifact(run_id, path)
        dest = dst_dir / path.rpartition("/")[2]
        with src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        return dest

    def _logged_models(self, run: Any) -> list[Any]:
        """The MLflow 3 logged models whose source is this run (an mlflow Run)."""
        run_id = run.info.run_id
        models: list[Any] = []
        token = None
        while True:
            page = self.client.search_logged_models(
                experiment_ids=[run.info.experiment_id],
                filter_string=f"source_run_id = '{run_id}'", page_token=token)
            models += [m for m in page if m.source_run_id == run_id]
            token = page.token
            if not token:
                return models

    def _model_at(self, run: Any, path: str) -> tuple[Any, str]:
        """(logged model named by the first part of ``path``, the rest of it) or (None, "")."""
        name, _, rest = path.partition("/")
        for model in self._logged_models(run):
            if model.name == name:
                return model, rest
        return None, ""


def local_artifact_dir(root_uri: str) -> Path | None:
    """The folder of a local (``file:`` or plain path) artifact store; None for any other."""
    from urllib.parse import urlparse

    if urlparse(root_uri).scheme not in ("", "file"):
        return None
    load_mlflow()
    from mlflow.utils.file_utils import local_file_uri_to_path

    return Path(local_file_uri_to_path(root_uri))


_ARTIFACTS = "the run's artifacts"


def _listing(root_uri: str, path: str) -> list[FileInfo]:
    """One level below ``path`` of the artifact store at ``root_uri``; paths relative to it.

    A local store is listed here, confined to its root: an entry that is a symlink
    leading out of it is left out (it could not be opened), and ``path`` itself must
    not lead out. A missing folder or a file lists nothing, as in MLflow.
    """
    local = local_artifact_dir(root_uri)
    if local is None:
        load_mlflow()
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        infos = get_artifact_repository(root_uri).list_artifacts(path or None)
        return [FileInfo(path=i.path, is_dir=i.is_dir, size=i.file_size) for i in infos]
    if not local.is_dir():
        return []
    root_real = paths.real(local)
    try:
        with paths.open_dir(local, path, "artifact folder", _ARTIFACTS) as (fd, where):
            names = sorted(os.listdir(fd))
    except (NotFound, paths.NotAFolder):
        return []
    entries = []
    for name in names:
        target = paths.real(where / name)
        if not paths.is_inside(root_real, target):
            continue
        try:
            info = target.stat()
        except OSError:  # a dangling link
            continue
        is_dir = stat.S_ISDIR(info.st_mode)
        entries.append(FileInfo(path=f"{path}/{name}" if path else name, is_dir=is_dir,
                                size=None if is_dir else info.st_size))
    return entries


def _open_artifact(root_uri: str, rel: str) -> tuple[BinaryIO, int]:
    local = local_artifact_dir(root_uri)
    if local is not None:
        fd, info = paths.open_file(local, rel, "artifact", _ARTIFACTS)
        return os.fdopen(fd, "rb"), info.st_size
    import tempfile

    load_mlflow()
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    with tempfile.TemporaryDirectory(prefix="hpcml-artifact-") as tmp:
        try:
            got = get_artifact_repository(root_uri).download_artifacts(rel, tmp)
        except Exception as exc:  # noqa: BLE001 - each store has its own "not found"
            raise NotFound(f"artifact {rel!r} not found") from exc
        # Opened before the temp folder goes: the open file outlives its name.
        fd, info = paths.open_file(tmp, os.path.relpath(got, tmp), "artifact", _ARTIFACTS)
        return os.fdopen(fd, "rb"), info.st_size


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "unknown"


# ---------------------------------------------------------------------- the job's side


def job_tracking_env(
    mode: TrackingMode,
    tracking_uri: str,
    experiment_id: str,
    run_id: str,
    offline_uri: str | None = None,
) -> dict[str, str]:
    """Environment that makes the job's ``mlflow.start_run()`` continue our run.

    Holds credentials in direct mode: the caller passes it only to the job's
    process environment, never to run records or logs.
    """
    env = {"MLFLOW_EXPERIMENT_ID": experiment_id, "MLFLOW_RUN_ID": run_id}
    if mode == "offline":
        if not offline_uri:
            raise ValueError("offline tracking needs the URI of the job's offline store")
        # The offline store is local to the job: no credentials travel.
        env["MLFLOW_TRACKING_URI"] = offline_uri
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"
        return env
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    if _is_file_store(tracking_uri):
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value:
            env[name] = value
    return env


def offline_run_path(experiment_id: str, run_id: str) -> str:
    """The run's directory in the offline store, relative to the run directory."""
    return f"{OFFLINE_MLRUNS}/{experiment_id}/{run_id}"


def offline_tracking_uri(run_dir: str) -> str:
    """The job's ``MLFLOW_TRACKING_URI`` in offline mode (a plain path: no URI escaping issues)."""
    return f"{run_dir.rstrip('/')}/{OFFLINE_MLRUNS}"


def offline_artifact_uri(run_dir: str | None, experiment_id: str, run_id: str) -> str:
    """Where the job's artifacts go: absolute when the run dir is known, else relative to the
    job's working directory (the run dir), which holds unless the program changes directory."""
    rel = f"{offline_run_path(experiment_id, run_id)}/artifacts"
    return f"{run_dir.rstrip('/')}/{rel}" if run_dir else rel


def offline_store_files(
    experiment_id: str,
    experiment_name: str,
    run_id: str,
    run_name: str,
    artifact_uri: str | None = None,
    params: Mapping[str, str] | None = None,
) -> dict[str, bytes]:
    """An MLflow file store in which our run already exists, as files for ``Backend.prepare``.

    Keys are paths relative to the run directory. A key ending in ``/`` (content ``b""``)
    is an empty DIRECTORY: MLflow only finds a run whose ``metrics/``, ``params/`` and
    ``artifacts/`` directories exist, and a placeholder file inside them would be read
    as a metric/param/artifact. ``artifact_uri`` should be absolute (see
    ``offline_artifact_uri``); without it the relative default resolves against the
    job's working directory. OfflineSync copies artifacts from ``<run>/artifacts``,
    so a custom ``artifact_uri`` must point there too. ``params`` are those the engine
    logged in the main run: in the offline store too, the job's ``log_param`` of a key
    with another value fails there as it would in the main store (and the same value in
    another text form, ``0.0`` for ``0``, fails at once instead of at the copy).
    """

    now = int(time.time() * 1000)
    run_path = offline_run_path(experiment_id, run_id)
    artifact_uri = artifact_uri or offline_artifact_uri(None, experiment_id, run_id)
    suffix = f"/{run_id}/artifacts"
    exp_location = artifact_uri[: -len(suffix)] if artifact_uri.endswith(suffix) else artifact_uri
    experiment = {
        "artifact_location": exp_location,
        "creation_time": now,
        "experiment_id": experiment_id,
        "last_update_time": now,
        "lifecycle_stage": "active",
        "name": experiment_name,
    }
    # Keys as MLflow 2.x and 3.x write them (run_uuid for 2.x readers; 3.x ignores it).
    run: dict[str, Any] = {
        "artifact_uri": artifact_uri,
        "end_time": None,
        "entry_point_name": "",
        "experiment_id": experiment_id,
        "lifecycle_stage": "active",
        "run_id": run_id,
        "run_name": run_name,
        "run_uuid": run_id,
        "source_name": "",
        "source_type": 4,  # SourceType.LOCAL
        "source_version": "",
        "start_time": now,
        "status": 2,  # RunStatus.SCHEDULED; the job's start_run() sets RUNNING
        "tags": [],
        "user_id": _user(),
    }

    def dump(data: dict[str, Any]) -> bytes:
        return yamlio.safe_dump(data, default_flow_style=False).encode()

    files = {
        f"{OFFLINE_MLRUNS}/{experiment_id}/meta.yaml": dump(experiment),
        f"{run_path}/meta.yaml": dump(run),
        f"{run_path}/tags/mlflow.runName": run_name.encode(),
        f"{run_path}/metrics/": b"",
        f"{run_path}/params/": b"",
        f"{run_path}/artifacts/": b"",
    }
    for key, value in (params or {}).items():
        # One file per param, its value as is (MLflow's file store layout); a key with "/"
        # is a subdirectory, as there. A key that is no relative path cannot be a file.
        key = str(key)
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            log.warning("param %r not written to the offline store: not a file name", key)
            continue
        files[f"{run_path}/params/{key}"] = str(value).encode()
    return files
