"""The Engine: the one facade every face calls (REST handlers, CLI, Python API, magics,
widget).

It wires store, backends, tracking and runs over one data dir, so a run started
anywhere is visible everywhere, and it is the only door into them: a face never
reaches the store, MLflow's client or a backend itself. Every method is async
(blocking work runs on worker threads) unless it only reads memory.

Methods, by subject (sections below, in this order):

- runs: ``submit`` (cell runs too), ``get``, ``list_runs``, ``list_runs_json``, ``rows``,
  ``changed_since``, ``changed_since_json``, ``refresh``, ``current``, ``cancel``,
  ``rerun``, ``delete``, ``set_archived``, ``upload_progress``
- sweeps: ``submit_sweep``, ``preview_sweep``, ``get_sweep``, ``current_sweep``,
  ``list_sweeps``, ``cancel_sweep``, ``rerun_sweep``, ``is_sweep_id``
- schedules: ``create_schedule``, ``preview_schedule``, ``get_schedule``,
  ``list_schedules``, ``pause_schedule``, ``resume_schedule``, ``delete_schedule``,
  ``run_schedule_now``, ``run_schedules`` (the headless loop)
- data: ``data_overview``, ``stage_data``, ``start_staging``, ``staging``,
  ``remove_data_version``, ``collect_data``, ``staging_progress``
- models: ``register_model``, ``list_models``, ``get_model``, ``set_model_alias``,
  ``model_version``, ``predict``
- deployments: ``deploy``, ``list_deployments``, ``get_deployment``, ``stop_deployment``,
  ``invoke_deployment``
- logs: ``read_log``, ``read_log_all``, ``log_tail``
- artifacts: ``list_artifacts``, ``open_artifact``, ``download_artifact``
- metrics: ``metric_keys``, ``latest_metrics``, ``metric_history``,
  ``metric_histories``, ``metric_values``
- experiments, projects, configs, credentials: ``experiments``, ``features``,
  ``config_schema``, ``find_project``, ``validate``, ``describe_project``, ``describe_configs``,
  ``save_config_sections``, ``backend_config``, ``credentials``,
  ``set_credentials``, ``forget_credentials``
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import tempfile
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Literal

from ..backends.registry import BackendRegistry
from ..core.errors import HpcmlError, NotFound, Problem, UserInputError
from ..core.files import FileInfo
from ..core.states import RunState
from ..settings import default_data_dir
from . import logs, model_jobs, predictions
from .cells import Cell
from .data import StagingProgress
from .data_service import DataService, DataView, StagingView
from .deployments import DeploymentService, Invocation
from .logs import LogChunk
from .models import (
    CronPreview,
    DatasetUse,
    DeleteResult,
    DeploymentRecord,
    Firing,
    RunRecord,
    ScheduleView,
    SweepPreview,
    SweepRecord,
    SweepView,
)
from .outputs import RunOutputs
from .poller import Poller
from .registry import ModelVersionDetail, ModelVersionView, RegisteredModelView, Registry
from .requests import (
    DataStageRequest,
    DeployRequest,
    Overrides,
    PredictRequest,
    RerunRequest,
    ScheduleRequest,
    SubmitRequest,
    SweepRequest,
    SweepRerunRequest,
    When,
)
from .runs import RunService
from .schedule_loop import ScheduleLoop
from .schedules import ScheduleService
from .store import ROW_SORTS, ListFilters, RunJson, RunStore  # RunJson: listings' type
from .sweeps import SweepService, is_sweep_id
from .tracking import Tracker, default_tracking_uri
from .validation import Validation

log = logging.getLogger(__name__)

XAxis = Literal["step", "time"]
MAX_POINTS = 100_000  # a metric history is downsampled to at most this many points


class Engine:
    def __init__(
        self,
        data_dir: Path | None = None,
        tracking_uri: str | None = None,
        poll_interval: float = 2.0,
        default_backend: str = "local",
        fire_schedules: bool = False,
    ):
        """``fire_schedules``: ``start`` also starts the loop that fires schedules (the
        server, ``hpcml scheduler``; not a CLI command or a kernel)."""
        self.data_dir = (data_dir or default_data_dir()).expanduser().resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = tracking_uri or default_tracking_uri(self.data_dir)
        # The parts below are the engine's own; faces use the methods of this class.
        self.store = RunStore(self.data_dir / "runs.sqlite")
        self.registry = BackendRegistry(self.data_dir)
        self.tracker = Tracker(self.tracking_uri)
        self.runs = RunService(
            self.store, self.registry, self.tracker, self.data_dir, self.tracking_uri,
            default_backend_config=None if default_backend == "local" else default_backend,
        )
        self.sweeps = SweepService(self.runs)
        self.outputs = RunOutputs(self.store, self.tracker)
        self.poller = Poller(self.runs, interval=poll_interval)
        self.schedules = ScheduleService(self.runs)
        self.schedule_loop = ScheduleLoop(self.schedules)
        self.data = DataService(self.runs)
        self.registry_models = Registry(self.tracker)
        self.deployments = DeploymentService(self.runs, self.registry_models, self.data_dir)
        self.fire_schedules = fire_schedules

    def start(self) -> None:
        """Start polling (needs a running event loop), and firing schedules if this engine
        does; idempotent."""
        self.poller.start()
        self.deployments.start()
        if self.fire_schedules:
            self.schedule_loop.start()

    async def close(self) -> None:
        await self.deployments.close()
        await self.schedule_loop.stop()
        await self.poller.stop()
        await self.registry.close()
        self.store.close()

    # ------------------------------------------------------------------ runs

    async def submit(self, req: SubmitRequest, *, root: Path | None = None,
                     cell: Cell | None = None) -> RunRecord:
        """Submit a run; ``root`` confines project, config and path parameters (the lab);
        ``cell``: run this Python source as entry point ``hpcml_cell`` (``%%hpc_submit``)."""
        run = await self.runs.submit(req, root=root, cell=cell)
        self.poller.wake(run)  # its connection polls now; the others keep their pace
        return run

    async def get(self, run_id: str) -> RunRecord:
        """The stored record (a unique id prefix is enough)."""
        return await self.runs.get(run_id)

    async def list_runs(self, **filters: Any) -> tuple[list[RunRecord], int]:
        """A page of records, newest first, and the total (filters: ``store.ListFilters``)."""
        return await asyncio.to_thread(self.store.list, **_filters(filters))

    async def list_runs_json(self, **filters: Any) -> tuple[list[RunJson], int]:
        """``list_runs`` as the stored JSON text (listings send it without re-encoding)."""
        return await asyncio.to_thread(self.store.list_json, **_filters(filters))

    async def rows(self, *, sort: str = "submitted", descending: bool = True,
                   states: Collection[RunState] | None = None, text: str | None = None,
                   archived: bool | None = False, schedule: str | None = None,
                   limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """A page of compact rows for the runs tab: ``{rows, total, cursor}``
        (``schedule``: only the runs that schedule created)."""
        if sort not in ROW_SORTS:
            raise UserInputError(Problem(
                f"unknown sort {sort!r}; allowed: {', '.join(ROW_SORTS)}", key="sort"))
        return await asyncio.to_thread(
            self.store.rows, sort=sort, descending=descending, states=states, text=text,
            archived=archived, schedule=schedule, limit=limit, offset=offset)

    async def changed_since(self, cursor: float, limit: int = 500) -> list[RunRecord]:
        """Runs changed after ``cursor`` (an ``updated_at``), oldest change first."""
        return await asyncio.to_thread(self.store.changed_since, cursor, limit)

    async def changed_since_json(self, cursor: float, limit: int = 500) -> list[RunJson]:
        return await asyncio.to_thread(self.store.changed_since_json, cursor, limit)

    async def refresh(self, runs: Iterable[RunRecord] | None = None) -> list[RunRecord]:
        """Ask the backends about ``runs`` (default: every active run); the updated ones."""
        return await self.runs.refresh(runs)

    async def current(self, run_id: str) -> RunRecord:
        """The record after asking its backend, for a face with no poller behind it."""
        record = await self.runs.get(run_id)
        if not record.state.terminal:
            await self.runs.refresh([record])
            record = await self.runs.get(record.id)
        return record

    async def cancel(self, run_id: str) -> RunRecord:
        run = await self.runs.cancel(run_id)
        self.poller.wake(run)  # its connection polls now; the others keep their pace
        return run

    async def rerun(self, run_id: str, req: RerunRequest, *,
                    root: Path | None = None) -> RunRecord:
        run = await self.runs.rerun(run_id, req, root=root)
        self.poller.wake(run)  # its connection polls now; the others keep their pace
        return run

    async def delete(self, run_id: str, *, delete_mlflow: bool = False) -> DeleteResult:
        return await self.runs.delete(run_id, delete_mlflow=delete_mlflow)

    async def set_archived(self, run_id: str, archived: bool) -> RunRecord:
        return await self.runs.set_archived(run_id, archived)

    # ------------------------------------------------------------------ sweeps

    async def submit_sweep(self, req: SweepRequest, *, root: Path | None = None) -> SweepView:
        return await self.sweeps.submit(req, root=root)

    async def preview_sweep(self, req: SweepRequest, *,
                            root: Path | None = None) -> SweepPreview:
        return await self.sweeps.preview(req, root=root)

    async def get_sweep(self, sweep_id: str) -> SweepView:
        return await self.sweeps.get(sweep_id)

    async def current_sweep(self, sweep_id: str) -> SweepView:
        """The sweep after one poll of its active children (the CLI's view)."""
        return await self.sweeps.current(sweep_id)

    async def list_sweeps(self, *, limit: int = 100, offset: int = 0) -> list[SweepRecord]:
        return await self.sweeps.list(limit=limit, offset=offset)

    async def cancel_sweep(self, sweep_id: str) -> SweepView:
        return await self.sweeps.cancel(sweep_id)

    async def rerun_sweep(self, sweep_id: str, req: SweepRerunRequest, *,
                          root: Path | None = None) -> SweepView:
        return await self.sweeps.rerun(sweep_id, req, root=root)

    is_sweep_id = staticmethod(is_sweep_id)

    @staticmethod
    def sweep_rows(path: Path) -> list[dict[str, str | int | float]]:
        """The points of a rows file (.csv, or .json where null means the parameter's
        default, so it is left out), as ``SweepRequest.rows`` takes them; reads the file
        (call it off the event loop). ``UserInputError`` names what is wrong with it."""
        from . import sweep_spec

        return [{k: v for k, v in row.items() if v is not None}
                for row in sweep_spec.load_rows(path)]

    @staticmethod
    def sweep_values(values: Iterable[str | int | float]) -> str:
        """Override text for exactly these plain values, each quoted when it has to be
        (``[0.1, "a,b"]`` → ``0.1,'a,b'``): for a face holding a list of values."""
        from . import sweep_spec

        return ",".join(sweep_spec.literal(sweep_spec.format_scalar(v)) for v in values)

    def upload_progress(self, run_id: str) -> tuple[int, int] | None:
        """(bytes sent, bytes to send) while a run's code is being uploaded, else None."""
        return self.runs.upload_progress.get(run_id)

    # ------------------------------------------------------------------ schedules

    async def create_schedule(self, req: ScheduleRequest, *,
                              root: Path | None = None) -> ScheduleView:
        """Check it like a submission (nothing is stored on bad input), then store it."""
        view = await self.schedules.create(req, root=root)
        self.schedule_loop.wake()
        return view

    async def preview_schedule(self, req: When) -> CronPreview:
        """The next five times of a cron expression (or one time) in a zone."""
        return await self.schedules.preview(req)

    async def get_schedule(self, ref: str) -> ScheduleView:
        """By id, unique id prefix or name; with its next times and recent firings."""
        return await self.schedules.get(ref)

    async def list_schedules(self) -> list[ScheduleView]:
        return await self.schedules.all()

    async def pause_schedule(self, ref: str) -> ScheduleView:
        return await self.schedules.pause(ref)

    async def resume_schedule(self, ref: str) -> ScheduleView:
        view = await self.schedules.resume(ref)
        self.schedule_loop.wake()
        return view

    async def delete_schedule(self, ref: str) -> None:
        """The schedule and its history; the runs it created stay."""
        await self.schedules.delete(ref)

    async def run_schedule_now(self, ref: str) -> Firing:
        """Fire once now (whatever its overlap policy); the firing, with its run id."""
        firing = await self.schedules.run_now(ref)
        if firing.state == "submitted":
            self.poller.wake()
        return firing

    async def run_schedules(self) -> None:
        """Fire schedules (and poll runs) until cancelled: ``hpcml scheduler``."""
        self.fire_schedules = True
        self.start()
        await asyncio.Event().wait()

    # ------------------------------------------------------------------ data

    def staging_progress(self, run_id: str) -> dict[str, Any] | None:
        """Bytes and files sent, rate and ETA while a run's data is being staged, else None."""
        progress = self.runs.staging_progress.get(run_id)
        return progress.as_dict() if progress else None

    def staging_now(self) -> list[dict[str, Any]]:
        """The progress of every run this process is staging data for now."""
        return [p.as_dict() for p in self.runs.staging_progress.values()]

    async def data_overview(self, project: Path, config: str | None = None, *,
                            root: Path | None = None, current: bool = True) -> DataView:
        """A project's datasets on a config's target: versions (the current one, the staged
        ones, the ones runs read), where each is staged, and the runs that read it."""
        return await self.data.overview(project, config, root, current)

    async def stage_data(self, project: Path, config: str | None = None,
                         names: list[str] | None = None, *, root: Path | None = None,
                         progress: StagingProgress | None = None) -> list[DatasetUse]:
        """Stage datasets ahead of a run (all declared unless ``names``); waits."""
        return await self.data.stage(project, config, names, root, progress)

    async def start_staging(self, req: DataStageRequest, *,
                            root: Path | None = None) -> StagingView:
        """:meth:`stage_data` in the background; follow it with :meth:`staging`. Bad input
        is raised before it starts."""
        return await self.data.start_staging(Path(req.project), req.backend_config, req.names, root)

    def staging(self, staging_id: str) -> StagingView:
        return self.data.staging(staging_id)

    async def remove_data_version(self, project: Path, config: str | None, digest: str, *,
                                  root: Path | None = None) -> None:
        """Free a staged version on a config's target (Conflict while an active run reads it)."""
        await self.data.remove(project, config, digest, root)

    async def collect_data(self, project: Path, config: str | None = None, *,
                           max_age: float = 14 * 86400.0, root: Path | None = None) -> list[str]:
        """Free staged versions on a config's target that no stored run read (staged more
        than ``max_age`` seconds ago); their digests."""
        return await self.data.collect(project, config, max_age, root)

    # ------------------------------------------------------------------ models

    async def register_model(self, run_id: str, name: str, *, path: str = "model",
                             alias: str | None = None,
                             description: str | None = None) -> ModelVersionView:
        """A new version of registered model ``name`` from the run's logged model."""
        run = await self.get(run_id)
        return await asyncio.to_thread(functools.partial(
            self.registry_models.register, run, name, path=path, alias=alias,
            description=description))

    async def list_models(self) -> list[RegisteredModelView]:
        return await asyncio.to_thread(self.registry_models.list_models)

    async def get_model(self, name: str) -> RegisteredModelView:
        """A registered model with its versions, newest first (NotFound when unknown)."""
        return await asyncio.to_thread(self.registry_models.get_model, name)

    async def set_model_alias(self, name: str, alias: str, version: str) -> ModelVersionView:
        """Point ``alias`` of model ``name`` at ``version`` (moved from where it was)."""
        return await asyncio.to_thread(self.registry_models.set_alias, name, alias, version)

    async def model_version(self, name: str, version: str) -> ModelVersionDetail:
        """A version with its lineage (source run, its metrics), flavors, input example and
        deployments."""
        view = await asyncio.to_thread(self.registry_models.version, name, version)
        model = await asyncio.to_thread(model_jobs.fetch, self.registry_models, view.uri,
                                        self.deployments.model_cache)
        run: RunRecord | None = None
        metrics: dict[str, float] = {}
        if view.mlflow_run_id:
            tags, metrics = await asyncio.to_thread(self.tracker.run_tags_and_metrics,
                                                    view.mlflow_run_id)
            with contextlib.suppress(NotFound):
                run = await self.get(tags.get("hpcml.run_id", ""))
        deployments = [d for d in await self.deployments.list()
                       if d.model_name == name and d.model_version == view.version]
        return ModelVersionDetail(
            version=view, run=run, metrics=metrics, flavors=list(model.flavors),
            servable=model_jobs.PYFUNC in model.flavors,
            input_example=await asyncio.to_thread(model_jobs.input_example, model.path),
            deployments=deployments)

    async def predict(self, req: PredictRequest, *, root: Path | None = None) -> RunRecord:
        """Score ``req.input`` with a registered model version, as a run (see predictions)."""
        run = await predictions.predict(self.runs, self.registry_models, self.data_dir, req,
                                        root=root)
        self.poller.wake(run)
        return run

    # ------------------------------------------------------------------ deployments

    async def deploy(self, req: DeployRequest, *, root: Path | None = None) -> DeploymentRecord:
        """Serve a registered model version (STARTING; READY once it answers)."""
        dep = await self.deployments.create(req, root=root)
        for run_id in dep.run_ids:
            self.poller.wake(await self.get(run_id))
        return dep

    async def list_deployments(self) -> list[DeploymentRecord]:
        return await self.deployments.list()

    async def get_deployment(self, name: str, *, refresh: bool = False) -> DeploymentRecord:
        """``refresh``: check its jobs and ``/ping`` now rather than read the record."""
        dep = await self.deployments.get(name)
        return await self.deployments.refresh(dep) if refresh else dep

    async def stop_deployment(self, name: str) -> DeploymentRecord:
        return await self.deployments.stop(name)

    async def invoke_deployment(self, name: str, body: bytes, content_type: str) -> Invocation:
        """Pass a scoring request (MLflow's ``/invocations`` format) to the deployment."""
        return await self.deployments.invoke(name, body, content_type)

    # ------------------------------------------------------------------ logs

    async def read_log(self, run_id: str, stream: str, offset: int = 0,
                       max_bytes: int = 256 * 1024) -> LogChunk:
        """Bytes of stdout/stderr from ``offset`` (whole characters); ask again from
        ``next_offset``."""
        return await self.runs.read_log(run_id, stream, offset, max_bytes)

    async def read_log_all(self, run_id: str, stream: str, offset: int = 0) -> LogChunk:
        """Everything from ``offset`` to the current end, as one chunk."""
        first = chunk = await self.read_log(run_id, stream, offset, logs.MAX_CHUNK)
        parts = [chunk.data]
        while chunk.data:
            chunk = await self.read_log(run_id, stream, chunk.next_offset, logs.MAX_CHUNK)
            parts.append(chunk.data)
        return first.model_copy(update={"data": "".join(parts), "next_offset": chunk.next_offset,
                                        "size": chunk.size, "running": chunk.running})

    async def log_tail(self, run_id: str, stream: str, lines: int) -> LogChunk:
        """The last ``lines`` lines (``data``, from ``offset``) and where to follow on
        (``next_offset``); lines end with ``\\n``, as for ``tail -n``."""
        return await self.runs.log_tail(run_id, stream, lines)

    # ------------------------------------------------------------------ artifacts

    async def list_artifacts(self, run_id: str, path: str = "") -> list[FileInfo]:
        """One level of the run's artifacts below ``path`` (logged models included)."""
        return await self.outputs.list_artifacts(run_id, path)

    async def open_artifact(self, run_id: str, path: str) -> tuple[BinaryIO, int]:
        """One artifact file opened for reading, and its size; the caller closes it."""
        return await self.outputs.open_artifact(run_id, path)

    async def download_artifact(
        self, run_id: str, path: str
    ) -> tuple[Path, tempfile.TemporaryDirectory[str]]:
        """A local copy of one artifact file; the caller cleans up the returned temp dir."""
        return await self.outputs.download_artifact(run_id, path)

    # ------------------------------------------------------------------ metrics

    async def metric_keys(self, run_id: str) -> list[dict[str, Any]]:
        """The latest value of each metric: ``[{key, value, step, timestamp}]`` by key."""
        return await self.outputs.metric_keys(run_id)

    async def latest_metrics(self, run_ids: Iterable[str]) -> dict[str, dict[str, float | None]]:
        """``{run_id: {key: latest value}}``; runs without metrics to read are left out."""
        out: dict[str, dict[str, float | None]] = {}
        for run_id in run_ids:
            try:
                keys = await self.metric_keys(run_id)
            except HpcmlError:
                continue
            except Exception as exc:  # noqa: BLE001 - MLflow run deleted, store down: skip it
                log.debug("no metrics for %s: %s", run_id, exc)
                continue
            out[run_id] = {m["key"]: m["value"] for m in keys}
        return out

    async def metric_history(self, run_id: str, key: str, max_points: int = 1000,
                             x: str = "step") -> dict[str, Any]:
        """One metric downsampled to ``max_points``: ``{key, total, points}`` (see
        ``downsample``); ``x`` is the step or the time (epoch seconds)."""
        return await self.outputs.metric_history(run_id, key, _max_points(max_points), _x(x))

    async def metric_histories(self, run_ids: Iterable[str], max_points: int = 1000,
                               x: str = "step",
                               keys: Collection[str] = ()) -> list[dict[str, Any]]:
        """Every metric history (or those in ``keys``) of each run:
        ``[{id, metrics: [{key, total, points}], error}]``; a run whose metrics cannot be
        read carries the reason in ``error``."""
        max_points, axis = _max_points(max_points), _x(x)
        answer = []
        for run_id in run_ids:
            entry: dict[str, Any] = {"id": run_id, "metrics": [], "error": None}
            try:
                for m in await self.metric_keys(run_id):
                    if not keys or m["key"] in keys:
                        entry["metrics"].append(await self.outputs.metric_history(
                            run_id, m["key"], max_points, axis))
            except UserInputError:
                raise
            except HpcmlError as exc:
                entry["error"] = str(exc)
            except Exception as exc:  # noqa: BLE001 - one run's store trouble, not the page's
                entry["error"] = f"metrics unavailable: {exc}"
            answer.append(entry)
        return answer

    async def metric_values(self, run_id: str, key: str | None = None) -> list[dict[str, Any]]:
        """Every logged value, not downsampled: ``[{key, step, value, timestamp}]`` (time
        in epoch seconds), sorted by key, step and time."""
        return await self.outputs.metric_values(run_id, key)

    # ------------------------------------------------------------------ experiments

    async def experiments(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Active MLflow experiments, most recently updated first: ``[{id, name,
        last_update_time}]``."""
        return await asyncio.to_thread(self.tracker.list_experiments, limit)

    # ------------------------------------------------------------------ projects, configs

    async def features(self) -> dict[str, Any]:
        """Each backend kind's features, as JSON (the first call imports every backend
        and may run nvidia-smi: on a worker thread)."""
        found = await asyncio.to_thread(self.registry.features)
        return {k: f.model_dump() for k, f in found.items()}

    @staticmethod
    def config_schema() -> dict[str, Any]:
        """The backend-config JSON Schema (validation and the UI's forms)."""
        from . import config as config_mod

        return config_mod.schema()

    @staticmethod
    async def find_project(start: Path, root: Path | None = None) -> Path:
        """The project folder at or above ``start`` (not above ``root``)."""
        from . import project as project_mod

        return await asyncio.to_thread(project_mod.find_project_root, start, root)

    @staticmethod
    async def validate(project: Path, backend_config: str | None = None,
                       entry_point: str = "main",
                       parameters: Mapping[str, str] | None = None) -> Validation:
        """Every problem of a project's MLproject, its backend configs (or the one given)
        and an entry point's parameters, without submitting (``hpcml validate``)."""
        from . import validation

        return await asyncio.to_thread(validation.validate, project, backend_config,
                                       entry_point, parameters)

    @staticmethod
    async def describe_project(project_dir: Path, root: Path) -> dict[str, Any]:
        """Entry points with parameter JSON Schemas, and the backend configs found."""
        from . import project_info

        return await asyncio.to_thread(project_info.describe_project, project_dir, root)

    @staticmethod
    async def describe_configs(project_dir: Path, root: Path) -> list[dict[str, Any]]:
        from . import project_info

        return await asyncio.to_thread(project_info.describe_configs, project_dir, root)

    @staticmethod
    async def save_config_sections(project_dir: Path, relpath: str,
                                   sections: dict[str, dict[str, Any] | None]) -> str:
        """Rewrite edited top-level sections of a project's config file; its clean path."""
        from . import config_edit

        return await asyncio.to_thread(config_edit.save_sections, project_dir, relpath, sections)

    async def backend_config(self, project: Path, config: str | None,
                             overrides: Overrides | None = None,
                             root: Path | None = None) -> Any:
        """The backend config a submission with these arguments would use (validated)."""
        return await asyncio.to_thread(
            self.runs.backend_config, project, config, overrides or [], root)

    # ------------------------------------------------------------------ credentials

    @staticmethod
    def credentials() -> list[dict[str, Any]]:
        """Connections with credentials in server memory: names, field names and the
        endpoints their secrets go to; never a value."""
        from ..backends.credentials import MEMORY, describe  # with httpx: not at start-up

        return [describe(identity, fields) for identity, fields in MEMORY.entries()]

    async def set_credentials(self, project: Path, config: str | None,
                              values: Mapping[str, Any], root: Path | None = None
                              ) -> dict[str, Any]:
        """Remember credentials (memory only) for the connection of a project's config."""
        from ..backends.credentials import MEMORY, checked_values, describe

        cfg = await self.backend_config(project, config, None, root)
        checked = checked_values(cfg.kind, dict(values))
        MEMORY.set(cfg.identity, checked)
        return describe(cfg.identity, list(checked))

    @staticmethod
    def forget_credentials(connection: str) -> None:
        from ..backends.credentials import MEMORY

        if not connection:
            raise UserInputError(Problem("give the connection to forget", key="connection"))
        MEMORY.forget(connection)


def _filters(filters: Mapping[str, Any]) -> ListFilters:
    unknown = set(filters) - set(ListFilters.__annotations__)
    if unknown:
        raise TypeError(f"unknown run filters: {', '.join(sorted(unknown))}")
    return filters  # type: ignore[return-value]


def _max_points(max_points: int) -> int:
    if not 2 <= max_points <= MAX_POINTS:
        raise UserInputError(Problem(f"must be between 2 and {MAX_POINTS}", key="max_points"))
    return max_points


def _x(x: str) -> XAxis:
    if x not in ("step", "time"):
        raise UserInputError(Problem("x must be 'step' or 'time'", key="x"))
    return x  # type: ignore[return-value]

