"""The run service: submit, cancel, re-run and refresh runs; the run state machine.

Every face (REST API, CLI, Python API, magics) goes through this class, so a run
looks and behaves the same wherever it was started. Blocking work (file hashing,
SQLite, MLflow) runs in threads so the tornado event loop never stalls.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from ..backends.base import Backend
from ..backends.registry import BackendRegistry
from ..core.config_models import BackendConfigModel
from ..core.errors import (
    BackendUnavailable,
    Conflict,
    HpcmlError,
    Problem,
    Unsupported,
    UserInputError,
)
from ..core.files import Chunk
from ..core.job import DataStage
from ..core.snapshots import Snapshot
from ..core.states import TERMINAL_STATES, JobStatus, RunState
from . import cells, cleanup, job_context, logs, paths
from . import config as config_mod
from . import data as data_mod
from . import project as project_mod
from . import snapshot as snapshot_mod
from .data import size_text as _size_text
from .locks import HOST, pid_alive, try_lock
from .models import CodeIdentity, DeleteResult, RunRecord, StateChange
from .offline_sync import OfflineSync
from .requests import Overrides, RerunRequest, SubmitRequest
from .store import RunStore
from .tracking import (
    Tracker,
    job_tracking_env,
    offline_artifact_uri,
    offline_store_files,
    offline_tracking_uri,
)

log = logging.getLogger(__name__)

# A SUBMITTING run from another host is resolved only after this long without news.
FOREIGN_SUBMIT_TIMEOUT = 600.0
# Run ids this process is uploading/submitting right now (process-wide: a kernel or a
# test may hold several engines, and none may resolve another's submission in flight).
IN_FLIGHT: set[str] = set()


FINAL_SYNC_PATIENCE = 600.0  # seconds
# A failed MLflow write is tried again by later poll passes, at most this often per run.
MLFLOW_RETRY_MAX_DELAY = 60.0  # seconds
FINISHED_BEFORE_CANCEL = "finished before the cancel took effect"
REATTACHED = "re-attached after an interrupted submission"
INTERRUPTED = "submission was interrupted before the job started"
RESUBMITTED = "its submission was interrupted before the job started: submitting it again"
SYNC_CONCURRENCY = 8  # runs of one poll pass applied / synced at once (remote commands in flight)


def poll_key(run: RunRecord) -> str:
    """The connection a run is polled through: one ``poll`` call, schedule and backoff each."""
    return run.connection or run.backend


@dataclass
class PollResult:
    """What one poll pass over a connection did."""

    runs: list[RunRecord] = field(default_factory=list)  # polled, as recorded after the pass
    answered: bool = True  # False: the backend could not be asked (its poller backs off)
    active: int = 0  # active runs of the connection the pass started from (0: nothing to poll)


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class SweepHooks(Protocol):
    async def child_ended(self, run: RunRecord) -> None: ...
    async def fill_slots(self, held: list[RunRecord]) -> None: ...


@dataclass
class Plan:
    """A submission's checked project, config and backend; its code once taken."""

    project_dir: Path
    project: project_mod.ProjectSpec
    cfg: config_mod.BackendConfig
    backend: Backend[Any]
    config: BackendConfigModel  # the backend's typed config of this submission
    snapshot: Snapshot | None = None
    code: CodeIdentity | None = None
    notes: list[str] = field(default_factory=list)
    experiment_name: str = ""
    data: data_mod.DataSelection = field(default_factory=data_mod.DataSelection)

    @property
    def exclude(self) -> list[str]:
        """What the code snapshot leaves out: the config's Exclude and in-project data."""
        return [*self.cfg.exclude, *self.data.excludes]


def _default_run_name(entry_point: str) -> str:
    return f"{entry_point}-{datetime.now().strftime('%m%d-%H%M%S')}"


class RunService:
    def __init__(
        self,
        store: RunStore,
        registry: BackendRegistry,
        tracker: Tracker,
        data_dir: Path,
        tracking_uri: str,
        default_backend_config: str | None = None,
    ):
        self.store = store
        self.registry = registry
        self.tracker = tracker
        self.data_dir = data_dir
        self.tracking_uri = tracking_uri
        self.object_dir = data_dir / "objects"
        self.manifest_dir = data_dir / "snapshots"
        self.offline_sync = OfflineSync(tracker)
        # Upload progress of runs being submitted by this process: run id → (sent, total).
        self.upload_progress: dict[str, tuple[int, int]] = {}
        # Datasets: fetched sources and file hashes, shared by all submissions.
        self.data = data_mod.DataStager(data_dir)
        self.staging_progress: dict[str, data_mod.StagingProgress] = {}
        self._data_collected: dict[str, float] = {}  # connection → when its GC last ran
        # One poll of a connection at a time (its passes work from a snapshot of its runs);
        # different connections are polled side by side, each on its own schedule.
        self._poll_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._mlflow_lock = asyncio.Lock()
        # Config file used when a submission names none (None: the built-in local config).
        self.default_backend_config = default_backend_config
        # How long a run whose job ended waits for its final offline-tracking copy to succeed
        # (e.g. across a dropped SSH connection) before it is recorded as ended without it.
        self.final_sync_patience = FINAL_SYNC_PATIENCE
        # Runs whose recorded cancel this process has handed to their backend. A cancel
        # recorded by another process, or by this one before a crash, is (re)sent once.
        self._cancels_sent: set[str] = set()
        # Backoff of MLflow retries: run id → (monotonic time of the next try, delay).
        self._mlflow_retry: dict[str, tuple[float, float]] = {}
        # The sweep service, told when a child ends and when held children wait for a slot.
        self.sweep_hooks: SweepHooks | None = None

    # ------------------------------------------------------------------ submit

    async def submit(self, req: SubmitRequest, *, rerun_of: RunRecord | None = None,
                     snapshot: Snapshot | None = None, root: Path | None = None,
                     cell: cells.Cell | None = None, code: CodeIdentity | None = None,
                     run_id: str | None = None, tags: Mapping[str, str] | None = None,
                     **fields: Any) -> RunRecord:
        """Validate everything first (nothing is created on bad input), then submit.

        ``root``: the project and the config must lie inside it (the server's root for the
        lab; see ``paths``). The CLI and the Python API pass none. ``cell``: run this
        source as entry point ``hpcml_cell`` (see ``cells``). ``snapshot`` and ``code``:
        that code (a re-run's, a pinned schedule's). ``run_id`` and ``fields``: chosen by
        the caller (a schedule's firing: Conflict if that run exists already). ``tags``:
        more MLflow tags (e.g. the model a deployment serves).
        """
        plan, req = await self.plan(req, root=root, snapshot=snapshot, cell=cell)
        if rerun_of is not None and snapshot is not None:  # the same code: the same data
            plan.data.pinned = {u.name: u.digest for u in rerun_of.datasets
                                if u.version == "content"}
        run_id = run_id or new_run_id()
        command, params = await self.resolve(plan, req.entry_point, req.parameters, run_id)
        await self.take_code(plan, rerun_of=rerun_of, cell=cell)
        if code is not None:
            plan.code = code
        record = self.new_record(plan, req, run_id, command, params, rerun_of=rerun_of,
                                 **fields)
        tags = {**self.run_tags(plan, record, cell=cell is not None), **(tags or {})}
        IN_FLIGHT.add(record.id)
        try:
            # The record first, then the MLflow run: a crash in between leaves a SUBMITTING
            # record, which a later poll resolves and whose MLflow run, found by its
            # hpcml.run_id tag, it closes (see _resolve_interrupted); never an MLflow run
            # left RUNNING that no record knows.
            await asyncio.to_thread(self.store.insert, record)
            try:
                record, scheduling = await self._create_mlflow_run(record, tags)
            except Exception:
                # E.g. a deleted experiment: a user error, after which nothing may remain.
                await asyncio.to_thread(self.store.delete, record.id,
                                        expect=(RunState.SUBMITTING, RunState.STAGING))
                raise
            return await self._launch(record, plan, scheduling)
        finally:
            IN_FLIGHT.discard(record.id)

    async def _create_mlflow_run(self, record: RunRecord, tags: dict[str, str]
                                 ) -> tuple[RunRecord, asyncio.Future[None] | None]:
        """The run's MLflow run, its ids recorded; for an offline-tracked run also the
        logging of its params in MLflow, started (``_launch`` waits for it)."""
        offline = record.tracking_mode == "offline"
        exp_id, mlflow_run_id = await asyncio.to_thread(
            functools.partial(self.tracker.create_run, schedule=not offline),
            record.mlflow_experiment_name, record.name, record.parameters, tags,
        )
        record = await asyncio.to_thread(
            self.store.update, record.id,
            mlflow_experiment_id=exp_id, mlflow_run_id=mlflow_run_id)
        scheduling = None
        if offline:
            scheduling = asyncio.ensure_future(
                asyncio.to_thread(self.tracker.schedule_run, mlflow_run_id, record.parameters))
        return record, scheduling

    async def plan(self, req: SubmitRequest, *, root: Path | None = None,
                   snapshot: Snapshot | None = None,
                   cell: cells.Cell | None = None) -> tuple[Plan, SubmitRequest]:
        """Project, config and backend of a submission, checked; no snapshot taken yet
        (unless ``cell``: its files join the project's). ``req`` as it is to be run."""
        project_dir = await asyncio.to_thread(
            project_mod.find_project_root, Path(req.project), root)
        project = await asyncio.to_thread(self._load_project, project_dir, snapshot)
        cfg = await asyncio.to_thread(
            self._load_config, project_dir, req.backend_config, req.overrides, root)
        backend = self.registry.get(cfg.kind, cfg.data)
        backend.check_ready()  # e.g. credentials: refused before anything is created
        selection = await asyncio.to_thread(
            data_mod.select, project_dir, cfg, backend, req.data)
        if cell is not None:
            # The cell's files join the project's snapshot; its MLproject (with the cell's
            # entry point) is then read from the snapshot, as for a re-run.
            snapshot, req = await asyncio.to_thread(
                cells.snapshot, cell, req, project, self.object_dir, self.manifest_dir,
                [*cfg.exclude, *selection.excludes])
            project = await asyncio.to_thread(self._load_project, project_dir, snapshot)
        config = job_context.job_config(backend, cfg)  # typed, once: for notes and the job
        return Plan(project_dir, project, cfg, backend, config, snapshot,
                    experiment_name=req.experiment_name or project.name, data=selection), req

    async def resolve(self, plan: Plan, entry_point: str, parameters: Mapping[str, Any],
                      run_id: str) -> tuple[str, dict[str, str]]:
        """The run's command and its full parameter values (checked against the MLproject)."""
        storage_dir = self.data_dir / "param-storage" / run_id
        return await asyncio.to_thread(
            project_mod.resolve_command, plan.project, entry_point, parameters, storage_dir)

    async def take_code(self, plan: Plan, *, rerun_of: RunRecord | None = None,
                        cell: cells.Cell | None = None) -> None:
        """The plan's snapshot (taken now unless given) and code identity, and its notes."""
        if plan.snapshot is None:
            plan.snapshot = await asyncio.to_thread(
                snapshot_mod.take_snapshot, plan.project_dir, self.object_dir,
                self.manifest_dir, plan.exclude,
            )
            plan.code = await asyncio.to_thread(
                snapshot_mod.code_identity, plan.project_dir, plan.snapshot)
        elif cell is not None:  # the project's git identity, the content hash with the cell
            plan.code = await asyncio.to_thread(
                snapshot_mod.code_identity, plan.project_dir, plan.snapshot)
        else:
            plan.code = rerun_of.code if rerun_of and rerun_of.code else None
        plan.notes = self._notes(plan.project, plan.config, plan.backend, plan.snapshot)
        plan.notes.extend(plan.data.notes)

    def new_record(self, plan: Plan, req: SubmitRequest, run_id: str, command: str,
                   params: dict[str, str], *, rerun_of: RunRecord | None = None,
                   run_name: str | None = None, **fields: Any) -> RunRecord:
        """A new run's record (SUBMITTING unless ``fields`` say otherwise)."""
        assert plan.snapshot is not None, "take_code first"
        now = time.time()
        state = fields.pop("state", RunState.STAGING if plan.data.specs else RunState.SUBMITTING)
        return RunRecord(
            id=run_id,
            name=run_name or req.run_name or _default_run_name(req.entry_point),
            project_path=str(plan.project_dir),
            project_name=plan.project.name,
            entry_point=req.entry_point,
            command=command,
            parameters=params,
            backend=plan.cfg.kind,
            connection=plan.cfg.connection_name,
            config_path=str(plan.cfg.path) if plan.cfg.path else None,
            backend_config=plan.cfg.redacted(),
            config_overrides=req.overrides,
            resources=plan.cfg.resources,
            tracking_mode=plan.cfg.tracking_mode,
            state=state,
            state_history=[StateChange(state=state, at=now, message=fields.pop("message", None))],
            mlflow_experiment_name=plan.experiment_name,
            code=plan.code,
            snapshot_id=plan.snapshot.id,
            rerun_of=rerun_of.id if rerun_of else None,
            notes=plan.notes,
            submitter_host=HOST,
            submitter_pid=os.getpid(),
            created_at=now,
            updated_at=now,
            **fields,
        )

    @staticmethod
    def run_tags(plan: Plan, record: RunRecord, *, cell: bool = False) -> dict[str, str]:
        """The MLflow tags of a run's MLflow run."""
        code = plan.code
        return {
            "hpcml.run_id": record.id,
            "hpcml.backend": plan.cfg.kind,
            "hpcml.connection": plan.cfg.connection_name,
            "mlflow.project.entryPoint": record.entry_point,
            "hpcml.code.content_hash": code.content_hash if code else "",
            "mlflow.source.git.commit": (code.git_commit or "") if code else "",
            "hpcml.code.git_dirty_hash": (code.git_dirty_hash or "") if code else "",
            **({"hpcml.cell": "true"} if cell else {}),
            **({"hpcml.schedule_id": record.schedule_id} if record.schedule_id else {}),
        }

    async def _launch(self, record: RunRecord, plan: Plan,
                      scheduling: asyncio.Future[None] | None = None) -> RunRecord:
        """Upload and submit; any fault leaves the record in a definite state."""
        backend, snapshot = plan.backend, plan.snapshot
        assert snapshot is not None
        job_id: str | None = None
        stages: list[DataStage] = []
        if plan.data.specs:
            staged = await self._stage(record, plan)
            if isinstance(staged, RunRecord):  # failed, or cancelled while staging
                return staged
            record, stages = staged
        try:
            ctx = job_context.context(record, plan.config).replace(data=tuple(stages))
            run_dir = await backend.run_dir_for(ctx)
            env = {**self.job_env(record, plan.cfg, run_dir), **plan.data.job_env(run_dir)}
            ctx = ctx.replace(run_dir=run_dir, env=env)
            extra = self.run_files(record, run_dir)
            prepared = await backend.prepare(
                ctx, snapshot, extra, progress=lambda s, t: self._progress(record.id, s, t)
            )
            record = await asyncio.to_thread(self.store.update, record.id, run_dir=prepared.run_dir)
            job_id, status = await backend.submit(prepared)
        except BackendUnavailable as exc:
            # We cannot know whether the job reached the backend: UNKNOWN, resolved later.
            status = JobStatus(RunState.UNKNOWN, message=str(exc))
        except Exception as exc:  # noqa: BLE001 - any fault must end in a definite state
            log.exception("submission of run %s failed", record.id)
            status = JobStatus(RunState.FAILED, message=f"submission failed: {exc}")
        finally:
            self.upload_progress.pop(record.id, None)
        if scheduling is not None:  # MLflow first, as always (see _apply)
            try:
                await scheduling
            except Exception:  # noqa: BLE001 - tracking trouble must not break the run record
                log.exception("could not log the params of run %s in MLflow", record.id)
        new = await self._apply(record, status, **({"backend_job_id": job_id} if job_id else {}))
        if new.cancel_requested and new.backend_job_id and not new.state.terminal:
            await self._send_cancel(new)  # cancelled while it was being submitted
        return new

    async def _stage(self, record: RunRecord, plan: Plan
                     ) -> tuple[RunRecord, list[DataStage]] | RunRecord:
        """The run's datasets onto its target while it is STAGING, then SUBMITTING; the
        versions recorded on the run and in MLflow. A failure ends the run FAILED with the
        reason before any job exists (answered as the ended record)."""
        if record.state == RunState.SUBMITTING:  # a held sweep child, a resubmitted run
            staging = await asyncio.to_thread(
                self.store.transition, record.id, RunState.STAGING,
                expect=(RunState.SUBMITTING,))
            record = staging if staging is not None else record
        progress = self.staging_progress[record.id] = data_mod.StagingProgress()
        try:
            stages, uses, notes = await self.data.stage(
                plan.data, plan.backend, plan.project_dir, progress)
        except Exception as exc:  # noqa: BLE001 - any fault ends the run with its reason
            if not isinstance(exc, HpcmlError):
                log.exception("staging the data of run %s failed", record.id)
            return await self._apply(record, JobStatus(
                RunState.FAILED, message=f"staging data failed: {exc}"))
        finally:
            self.staging_progress.pop(record.id, None)
        sent = sum(u.sent_bytes for u in uses)
        fields: dict[str, Any] = {"datasets": uses}
        if notes:
            fields["notes"] = [*record.notes, *notes]
        moved = await asyncio.to_thread(functools.partial(
            self.store.transition, record.id, RunState.SUBMITTING, expect=(RunState.STAGING,),
            message=f"data staged ({_size_text(sent)} sent)", **fields))
        if moved is None or moved.cancel_requested:  # cancelled, or ended elsewhere
            current = moved if moved is not None else await asyncio.to_thread(
                self.store.get, record.id)
            if current.state.terminal:
                return current
            return await self._apply(current, JobStatus(
                RunState.CANCELLED, message="cancelled while staging data"))
        if moved.mlflow_run_id:
            try:
                await asyncio.to_thread(self.tracker.log_datasets, moved.mlflow_run_id, uses)
            except Exception:  # noqa: BLE001 - tracking trouble must not fail the run
                log.exception("could not log the datasets of run %s in MLflow", record.id)
        await self.collect_data(plan.backend, record.connection or "")
        return moved, stages

    async def collect_data(self, backend: Backend[Any], connection: str, *,
                           force: bool = False, max_age: float = data_mod.DATA_MAX_AGE
                           ) -> list[str]:
        """Free the target's staged versions no stored run read (at most once a day unless
        ``force``). Never fails a run: trouble is logged."""
        now = time.time()
        if not force and now - self._data_collected.get(connection, 0.0) < data_mod.COLLECT_EVERY:
            return []
        self._data_collected[connection] = now
        try:
            used = await asyncio.to_thread(self.store.dataset_digests, connection)
            removed = await data_mod.collect(backend, used, now, max_age)
        except Exception:  # noqa: BLE001 - the next run's staging tries again tomorrow
            log.exception("collecting unused data on %s failed", connection)
            return []
        if removed:
            log.info("freed %d unused dataset version(s) on %s", len(removed), connection)
        return removed

    def _progress(self, run_id: str, sent: int, total: int) -> None:
        self.upload_progress[run_id] = (sent, total)

    def _load_project(self, project_dir: Path,
                      snapshot: Snapshot | None) -> project_mod.ProjectSpec:
        if snapshot is None:
            return project_mod.load_project(project_dir)
        # Re-run of the same code: the MLproject as it was in the snapshot, not as it is now.
        with tempfile.TemporaryDirectory(prefix="hpcml-mlproject-") as tmp:
            top_level = [f for f in snapshot.files if "/" not in f.relpath]
            snapshot_mod.materialize(
                Snapshot(snapshot.id, top_level, snapshot.object_dir), Path(tmp)
            )
            spec = project_mod.load_project(Path(tmp))
            spec.path = project_dir
            return spec

    def backend_config(self, project: Path | None, config: str | None,
                       overrides: Overrides | None = None,
                       root: Path | None = None) -> config_mod.BackendConfig:
        """The backend config a submission of ``project`` naming ``config`` would use
        (no project: ``config`` is a path of its own, refused under a ``root``)."""
        if project is None:
            if config and root is not None:
                raise UserInputError(Problem("a backend config needs its project",
                                             key="project"))
            return self._load_config(Path.cwd(), config, overrides or [], None)
        return self._load_config(project_mod.find_project_root(project, root), config,
                                 overrides or [], root)

    def _load_config(self, project_dir: Path, config: str | None, overrides: Overrides,
                     root: Path | None = None) -> config_mod.BackendConfig:
        if config and root is not None:
            # Judged by where it really is, before it is read: a refusal says nothing
            # about a file outside (not even whether it exists).
            path = paths.confine(root, project_dir / config, "backend config",
                                 key="backend_config")
            cfg = config_mod.load_backend_config(path)
        elif config := config or self.default_backend_config:  # the server's own setting
            path = Path(config).expanduser()
            if not path.is_absolute():
                path = project_dir / path
            cfg = config_mod.load_backend_config(path)
        else:
            cfg = config_mod.default_local_config()
        return config_mod.apply_overrides(cfg, overrides) if overrides else cfg

    def _notes(self, project: project_mod.ProjectSpec, config: BackendConfigModel,
               backend: Backend[Any], snapshot: Snapshot) -> list[str]:
        notes: list[str] = []
        if project.env_note:
            notes.append(project.env_note)
        notes.extend(backend.config_notes(config))
        notes.extend(snapshot.notes)
        return notes

    def run_files(self, record: RunRecord, run_dir: str | None,
                  task: int | None = None) -> dict[str, bytes]:
        """Files the engine adds to a run's directory: its checkpoint directory, and in
        offline tracking mode its MLflow store with the run in it."""
        files = {f"{job_context.checkpoint_dir(None, task)}/": b""}
        if record.tracking_mode == "offline":
            files.update(self._offline_files(record, run_dir))
        return files

    def _offline_files(self, record: RunRecord, run_dir: str | None) -> dict[str, bytes]:
        assert record.mlflow_experiment_id and record.mlflow_run_id
        artifact_uri = offline_artifact_uri(
            run_dir, record.mlflow_experiment_id, record.mlflow_run_id
        )
        return offline_store_files(
            record.mlflow_experiment_id,
            record.mlflow_experiment_name or record.project_name,
            record.mlflow_run_id,
            record.name,
            artifact_uri,
            params=record.parameters,
        )

    def job_env(self, record: RunRecord, cfg: config_mod.BackendConfig,
                run_dir: str | None, task: int | None = None) -> dict[str, str]:
        """The job's environment (tracking credentials in direct mode: never stored)."""
        assert record.mlflow_experiment_id and record.mlflow_run_id
        offline_uri = None
        if record.tracking_mode == "offline":
            offline_uri = offline_tracking_uri(run_dir or ".")
        tracking_uri = cfg.tracking_uri or self.tracking_uri
        env = job_tracking_env(
            record.tracking_mode, tracking_uri, record.mlflow_experiment_id,
            record.mlflow_run_id, offline_uri,
        )
        env["HPCML_RUN_ID"] = record.id
        env["HPCML_CHECKPOINT_DIR"] = job_context.checkpoint_dir(run_dir, task)
        env["HPCML_RESTART_COUNT"] = "0"  # a Slurm job script sets it from SLURM_RESTART_COUNT
        return env

    # ------------------------------------------------------------------ state

    async def _apply(self, run: RunRecord, status: JobStatus, **fields: Any) -> RunRecord:
        """Record what a backend reported, MLflow first: whoever sees a state in the store
        finds MLflow already there (setting the same MLflow status twice is harmless)."""
        state = status.state
        if state.terminal and not run.cancel_requested and not run.state.terminal:
            # A poll pass decides from a snapshot read before the poll: a cancel recorded
            # since (whose signal may be what ended the job) must count.
            fresh = await asyncio.to_thread(self.store.get, run.id)
            run = run.model_copy(update={"cancel_requested": fresh.cancel_requested})
        if state == RunState.FAILED and run.cancel_requested:
            state = RunState.CANCELLED
        elif state == RunState.FINISHED and run.cancel_requested and state != run.state:
            # It did finish (exit 0, outputs complete), but the user asked it to stop.
            status = JobStatus(state, status.exit_code, "; ".join(
                filter(None, (status.message, FINISHED_BEFORE_CANCEL))))
        message = status.message
        if status.restarts is not None and status.restarts != run.restarts:
            fields["restarts"] = status.restarts  # requeued: the same run goes on
            message = message or f"requeued (restart {status.restarts})"
        if state == run.state and not fields and status.exit_code == run.exit_code:
            return run
        if status.exit_code is not None:
            fields["exit_code"] = status.exit_code
        ran = bool(run.backend_job_id or fields.get("backend_job_id"))
        if state.terminal and not run.state.terminal and run.tracking_mode == "offline" and ran:
            # The last metrics and the artifacts, before anyone can see the run ended. A job
            # that was never submitted wrote nothing to copy (and its run dir may not exist).
            trouble = await self._sync_offline(run, final=True)
            if trouble is not None:
                failing_since, why = trouble
                if time.time() - failing_since < self.final_sync_patience:
                    return run  # still running as far as anyone can see; the next poll retries
                status = JobStatus(state, status.exit_code, message="; ".join(filter(None, (
                    status.message,
                    f"MLflow copy of the run's offline tracking incomplete: {why}"))))
        if state != run.state or "backend_job_id" in fields:
            await self._follow_in_mlflow(run, state, fields.get("backend_job_id"))
        # Compare-and-set on the state this was decided from: a poll pass works from a
        # snapshot read earlier, and must not overwrite what a submission recorded since.
        new = await asyncio.to_thread(
            self.store.transition, run.id, state, message=message if "restarts" in fields
            else status.message, log_message="restarts" in fields,
            expect=() if run.state.terminal else (run.state,), **fields
        )
        if new is None:  # someone else recorded it first, or the run already ended
            return await asyncio.to_thread(self.store.get, run.id)
        if new.sweep_id and new.state.terminal and self.sweep_hooks is not None:
            await self.sweep_hooks.child_ended(new)
        return new

    async def _follow_in_mlflow(self, run: RunRecord, state: RunState, job_id: str | None) -> None:
        if not run.mlflow_run_id:
            return
        try:
            if job_id:
                await asyncio.to_thread(
                    self.tracker.set_tags, run.mlflow_run_id, {"hpcml.backend_job_id": job_id}
                )
            if state != run.state and state not in (RunState.UNKNOWN, RunState.QUEUED):
                await asyncio.to_thread(self.tracker.set_status, run.mlflow_run_id, state)
        except Exception as exc:  # noqa: BLE001 - tracking trouble must not break the run record
            # Not dropped: recorded (before the state is), and tried again by later polls.
            log.warning("could not update MLflow for run %s (will retry): %r", run.id, exc)
            await asyncio.to_thread(self.store.mark_mlflow_pending, run.id, repr(exc))

    async def retry_mlflow(self) -> None:
        """Make MLflow show what the store says for runs whose MLflow write failed."""
        async with self._mlflow_lock:  # one at a time: the same writes, not twice
            await self._retry_mlflow_pending()

    async def _retry_mlflow_pending(self) -> None:
        pending = await asyncio.to_thread(self.store.mlflow_pending)
        now = time.monotonic()
        for run_id, marked_at in pending:
            next_try, delay = self._mlflow_retry.get(run_id, (0.0, 1.0))
            if now < next_try:
                continue
            try:
                run = await asyncio.to_thread(self.store.get, run_id)
                if run.mlflow_run_id:
                    if run.backend_job_id:
                        await asyncio.to_thread(self.tracker.set_tags, run.mlflow_run_id,
                                                {"hpcml.backend_job_id": run.backend_job_id})
                    await asyncio.to_thread(self.tracker.set_status, run.mlflow_run_id,
                                            run.state, run.ended_at)
                await asyncio.to_thread(self.store.clear_mlflow_pending, run_id, marked_at)
                self._mlflow_retry.pop(run_id, None)
            except Exception as exc:  # noqa: BLE001 - MLflow still unavailable: later
                log.info("MLflow update of run %s still failing: %r", run_id, exc)
                self._mlflow_retry[run_id] = (now + delay, min(delay * 2, MLFLOW_RETRY_MAX_DELAY))

    async def _send_cancel(self, run: RunRecord) -> JobStatus | None:
        """Hand a recorded cancel to the backend (backends take a repeated cancel calmly)."""
        ended = await self.registry.for_run(run).cancel(run.job_ref())
        self._cancels_sent.add(run.id)
        return ended

    async def refresh(self, runs: Iterable[RunRecord] | None = None) -> list[RunRecord]:
        """One poll pass over every connection at once (the CLI, the Python API, tests):
        one ``poll`` call per backend connection for all its active runs; the polled runs
        as recorded after it. The server's poller polls each connection on its own
        schedule instead (``poll_connection``)."""
        await self.retry_mlflow()
        if runs is None:
            # Each connection reads its runs again under its own lock (a pass of it in
            # progress may change them); this read only says which connections to poll.
            active = await asyncio.to_thread(self.store.active)
            polled = await asyncio.gather(*(self.poll_connection(key)
                                            for key in dict.fromkeys(map(poll_key, active))))
        else:
            groups: dict[str, list[RunRecord]] = defaultdict(list)
            for run in runs:
                groups[poll_key(run)].append(run)
            polled = await asyncio.gather(*(self.poll_connection(key, group)
                                            for key, group in groups.items()))
        return [r for result in polled for r in result.runs]

    async def poll_connection(self, key: str,
                              runs: Iterable[RunRecord] | None = None) -> PollResult:
        """One poll pass over one connection (``poll_key``): ``runs``, by default its
        active runs as the store has them now. A slow connection holds only its own lock."""
        async with self._poll_locks[key]:
            if runs is None:
                active = await asyncio.to_thread(self.store.active)
                runs = [r for r in active if poll_key(r) == key]
            runs = list(runs)
            polled: list[RunRecord] = []
            held = [r for r in runs if r.held]
            for run in runs:
                if run.held:
                    continue  # a sweep's child waiting for a slot: no job to poll yet
                if run.cancel_requested and run.backend_job_id and run.id not in self._cancels_sent:
                    # Recorded but perhaps never delivered (a crash between the two, or
                    # recorded by another process): deliver it now.
                    try:
                        await self._send_cancel(run)
                    except Exception:  # noqa: BLE001 - tried again by the next pass
                        log.exception("could not cancel run %s", run.id)
                if run.state == RunState.SUBMITTING or not run.backend_job_id:
                    await self._resolve_interrupted(run)
                    continue
                polled.append(run)
            result = await self._poll_group(polled) if polled else PollResult()
            result.active = len(runs)
        if held and self.sweep_hooks is not None:
            await self.sweep_hooks.fill_slots(held)  # outside the lock: submissions may be slow
        return result

    async def _poll_group(self, runs: list[RunRecord]) -> PollResult:
        try:
            backend = self.registry.for_run(runs[0])
        except HpcmlError as exc:
            return PollResult([await self._apply(r, JobStatus(RunState.UNKNOWN, message=str(exc)))
                               for r in runs], answered=False)
        refs = [r.job_ref() for r in runs]
        try:
            statuses = await backend.poll(refs)
        except BackendUnavailable as exc:
            return PollResult([await self._apply(r, JobStatus(RunState.UNKNOWN, message=str(exc)))
                               for r in runs], answered=False)
        # Runs that ended copy their offline tracking (several remote commands each) before
        # the end is recorded: side by side, within a bound, not one run after another.
        bound = asyncio.Semaphore(SYNC_CONCURRENCY)

        async def apply(run: RunRecord) -> RunRecord:
            status = statuses.get(run.backend_job_id or "")
            if status is None:
                status = JobStatus(RunState.UNKNOWN, message="the backend no longer knows this job")
            async with bound:
                return await self._apply(run, status)

        out = list(await asyncio.gather(*(apply(r) for r in runs)))
        await self._sync_running(backend, [r for r in out if r.state == RunState.RUNNING
                                           and r.tracking_mode == "offline"], bound)
        return PollResult(out)

    async def _sync_running(self, backend: Backend[Any], runs: list[RunRecord],
                            bound: asyncio.Semaphore) -> None:
        """What running runs logged offline: their stores listed with one backend call for
        all, then only files that grew are read."""
        if not runs:
            return
        try:
            listings = await self.offline_sync.list_runs(backend, runs)
        except BackendUnavailable as exc:
            log.info("offline tracking sync skipped this pass: %s", exc)
            return

        async def one(run: RunRecord) -> None:
            listing = listings.get(run.id)
            if isinstance(listing, BaseException):
                log.info("offline tracking sync of run %s skipped this pass: %s", run.id, listing)
                return
            async with bound:
                await self._sync_offline(run, final=False, listing=listing)

        await asyncio.gather(*(one(r) for r in runs))

    @staticmethod
    def _being_submitted(run: RunRecord) -> bool:
        """Whether the run's submitter may still be at work on it."""
        if run.id in IN_FLIGHT:
            return True  # this process is submitting it right now
        if (run.submitter_host == HOST and run.submitter_pid != os.getpid()
                and run.submitter_pid and pid_alive(run.submitter_pid)):
            return True  # another process on this machine is still submitting it
        return run.submitter_host != HOST and time.time() - run.updated_at < FOREIGN_SUBMIT_TIMEOUT

    async def _resolve_interrupted(self, run: RunRecord) -> None:
        """A SUBMITTING run whose submitter is gone: adopt its job if it exists, else FAILED."""
        if self._being_submitted(run):
            return
        if run.state == RunState.STAGING:  # no job can exist before its data is staged
            if run.schedule_id and run.array_task is None:
                await self._resubmit(run)
            else:
                await self._apply(run, JobStatus(RunState.FAILED, message=INTERRUPTED))
            return
        if not run.mlflow_run_id and run.mlflow_experiment_name:
            # Interrupted between the record and its MLflow run: find that run, so that it
            # is closed with the record instead of staying RUNNING for ever.
            try:
                found = await asyncio.to_thread(
                    self.tracker.find_run, run.mlflow_experiment_name, run.id)
            except Exception:  # noqa: BLE001 - MLflow unavailable: the next pass tries again
                log.exception("could not look up the MLflow run of run %s", run.id)
                return
            if found:
                updated = await asyncio.to_thread(self.store.update, run.id,
                                                  mlflow_experiment_id=found[0],
                                                  mlflow_run_id=found[1])
                if updated.state != run.state:
                    return  # the submission ended meanwhile: decide nothing from an old snapshot
                run = updated
        try:
            backend = self.registry.for_run(run)
            job_id = await self._find_submitted(backend, run)
        except BackendUnavailable:
            return
        if job_id:
            await self._apply(run, JobStatus(RunState.QUEUED, message=REATTACHED),
                              backend_job_id=job_id)
        elif run.schedule_id and run.array_task is None:
            await self._resubmit(run)  # nobody is there to submit it again by hand
        else:
            await self._apply(run, JobStatus(RunState.FAILED, message=INTERRUPTED))

    async def _resubmit(self, run: RunRecord) -> None:
        """Submit again a run whose submitter died before its job reached the backend: the
        same record, command and code. Taken over first (compare-and-set on its submitter),
        so of two processes that find it only one submits it."""
        taken = await asyncio.to_thread(
            self.store.transition, run.id, RunState.SUBMITTING,
            expect=(RunState.SUBMITTING, RunState.STAGING),
            where={"submitter_host": run.submitter_host, "submitter_pid": run.submitter_pid},
            message=RESUBMITTED, log_message=True,
            submitter_host=HOST, submitter_pid=os.getpid())
        if taken is None:
            return
        IN_FLIGHT.add(run.id)
        try:
            snapshot = await asyncio.to_thread(
                snapshot_mod.load_snapshot, run.snapshot_id, self.object_dir,
                self.manifest_dir) if run.snapshot_id else None
            plan, _ = await self.plan(SubmitRequest(
                project=run.project_path, entry_point=run.entry_point,
                backend_config=run.config_path, overrides=run.config_overrides,
            ), snapshot=snapshot)
            await self.take_code(plan)
            plan.code = run.code
            scheduling = None
            if not taken.mlflow_run_id:
                taken, scheduling = await self._create_mlflow_run(
                    taken, self.run_tags(plan, taken))
            await self._launch(taken, plan, scheduling)
        except Exception as exc:  # noqa: BLE001 - it must end in a definite state
            log.exception("submitting run %s again failed", run.id)
            await self._apply(taken, JobStatus(
                RunState.FAILED, message=f"{INTERRUPTED}; submitting it again failed: {exc}"))
        finally:
            IN_FLIGHT.discard(run.id)

    @staticmethod
    async def _find_submitted(backend: Backend[Any], run: RunRecord) -> str | None:
        """The job of a run whose submission was interrupted, if it exists (see
        ``Backend.find_submitted``); an array task's through its array's record."""
        if not run.run_dir:
            return None  # nothing was prepared: nothing can have been submitted
        ctx = job_context.recorded_context(run, backend)
        if run.array_task is None:
            return await backend.find_submitted(ctx)
        try:
            found = await backend.find_submitted_tasks(
                ctx.replace(run_id=run.array_name or run.id), [run.array_task])
        except Unsupported:
            return None
        return (found or {}).get(run.array_task)

    async def _sync_offline(self, run: RunRecord, final: bool,
                            listing: dict[str, Any] | None = None) -> tuple[float, str] | None:
        """Copy what the job appended to its offline store; one process at a time per run.

        Returns None when done, else (since when the final sync fails, why): the caller
        keeps the run open and the next poll tries again."""
        with try_lock(self.data_dir / "locks" / f"sync-{run.id}.lock") as locked:
            if not locked:  # another process (CLI, kernel) is copying; it records the end
                return (time.time(), "another process is copying it") if final else None
            state = await asyncio.to_thread(self.store.get_sync_state, run.id)
            if state.get("final_done"):
                return None
            try:
                backend = self.registry.for_run(run)
                # sync() advances `state` in place after each write, so a fault halfway
                # still saves what was copied and nothing is sent twice.
                await self.offline_sync.sync(backend, run, state, final=final, listing=listing)
                if final:
                    state["final_done"] = True
                    state.pop("final_failing_since", None)
                return None
            except Exception as exc:  # noqa: BLE001 - sync is retried on the next poll
                log.exception("offline tracking sync of run %s failed", run.id)
                if not final:
                    return None
                since = state.setdefault("final_failing_since", time.time())
                return since, f"{type(exc).__name__}: {exc}"
            finally:
                await asyncio.to_thread(self.store.set_sync_state, run.id, state)

    # ------------------------------------------------------------------ actions

    async def get(self, run_id: str) -> RunRecord:
        return await asyncio.to_thread(self.store.get, run_id)

    async def cancel(self, run_id: str) -> RunRecord:
        run = await asyncio.to_thread(self.store.get, run_id)
        if run.state.terminal:
            raise Conflict(f"run {run.id} already ended ({run.state.value})")
        run = await asyncio.to_thread(self.store.update, run.id, cancel_requested=True)
        if not run.backend_job_id:
            if run.state in (RunState.SUBMITTING, RunState.STAGING) and \
                    self._being_submitted(run):
                return run  # its submitter cancels the job once it has an id (see _launch)
            # Its submission was interrupted: the job may exist all the same.
            backend = self.registry.for_run(run)
            job_id = await self._find_submitted(backend, run)
            if not job_id:
                return await self._apply(run, JobStatus(
                    RunState.CANCELLED, message="cancelled before the job started"))
            run = await self._apply(run, JobStatus(
                RunState.QUEUED, message=REATTACHED),
                backend_job_id=job_id)
            if run.state.terminal:
                return run
        ended = await self._send_cancel(run)
        if ended is not None and ended.state.terminal:
            # The job had ended by itself before the cancel reached it: its own end stands.
            run = await asyncio.to_thread(self.store.update, run.id, cancel_requested=False)
            return await self._apply(run, ended)
        return await asyncio.to_thread(self.store.get, run.id)

    async def delete(self, run_id: str, *, delete_mlflow: bool = False) -> DeleteResult:
        """Delete an ended run: its record and state history, its local run directory, and
        with ``delete_mlflow`` its MLflow run (MLflow's soft delete; kept by default, since
        MLflow is the user's record). An active run is refused (Conflict): cancel it first.

        The record goes last, so a fault halfway leaves a run that can be deleted again."""
        run = await asyncio.to_thread(self.store.get, run_id)
        if not run.state.terminal:
            raise Conflict(f"run {run.id} is {run.state.value}: cancel it first, then delete it")
        result = DeleteResult(id=run.id)
        if delete_mlflow and run.mlflow_run_id:
            try:
                await asyncio.to_thread(self.tracker.delete_run, run.mlflow_run_id)
            except Exception as exc:  # noqa: BLE001 - tracking store down: nothing deleted yet
                raise BackendUnavailable(
                    f"could not delete MLflow run {run.mlflow_run_id} ({exc}); nothing was deleted"
                ) from exc
            result.mlflow_run_deleted = True
        elif run.mlflow_run_id:
            result.kept.append(f"MLflow run kept: {run.mlflow_run_id}")
        result.run_dir_removed, kept = await asyncio.to_thread(
            cleanup.remove_run_files, run, self.data_dir)
        result.kept += kept
        await asyncio.to_thread(self.store.delete, run.id, expect=TERMINAL_STATES)
        if run.snapshot_id:
            result.snapshot_removed = await asyncio.to_thread(
                cleanup.remove_unused_manifest, run.snapshot_id, self.manifest_dir,
                self.store.snapshot_in_use)
        log.info("deleted run %s (%s)", run.id, "; ".join(result.kept) or "nothing kept")
        return result

    async def set_archived(self, run_id: str, archived: bool) -> RunRecord:
        """Archive (hide from default listings) or unarchive an ended run; reversible.
        An active run is refused (Conflict): hiding it would hide a job still using resources."""
        run = await asyncio.to_thread(self.store.get, run_id)
        if archived and not run.state.terminal:
            raise Conflict(f"run {run.id} is {run.state.value}: only ended runs can be archived")
        return await asyncio.to_thread(self.store.update, run.id, archived=archived)

    async def read_log(self, run_id: str, stream: str, offset: int = 0,
                       max_bytes: int = 256 * 1024) -> logs.LogChunk:
        logs.check_request(stream, offset, max_bytes)
        run = await asyncio.to_thread(self.store.get, run_id)
        if not run.run_dir:
            return logs.to_chunk(run, stream, b"", offset, None)  # type: ignore[arg-type]
        chunk = await self._log_reader(run, stream)(offset, max_bytes)
        # The answer's text is cut to max_bytes of JSON too (binary output grows up to 12x
        # in JSON); a large chunk is measured off the event loop.
        args = (run, stream, chunk.data, chunk.offset, chunk.size, max_bytes)
        if len(chunk.data) > logs.INLINE_BYTES:
            return await asyncio.to_thread(logs.to_chunk, *args)  # type: ignore[arg-type]
        return logs.to_chunk(*args)  # type: ignore[arg-type]

    async def log_tail(self, run_id: str, stream: str, lines: int) -> logs.LogChunk:
        """The last ``lines`` lines of a run's log (see ``logs.read_tail``)."""
        logs.check_request(stream, 0, 1)
        if lines < 0:
            raise UserInputError(Problem("lines must be >= 0", key="lines"))
        run = await asyncio.to_thread(self.store.get, run_id)
        if not run.run_dir:
            return logs.to_chunk(run, stream, b"", 0, None)  # type: ignore[arg-type]
        read_chunk = self._log_reader(run, stream)

        async def read(offset: int, max_bytes: int) -> tuple[bytes, int | None]:
            chunk = await read_chunk(offset, max_bytes)
            return chunk.data, chunk.size

        start, data, size = await logs.read_tail(read, lines)
        return await asyncio.to_thread(
            logs.to_chunk, run, stream, data, start, size)  # type: ignore[arg-type]

    def _log_reader(self, run: RunRecord, stream: str) -> Callable[[int, int], Awaitable[Chunk]]:
        """Reads of a run's log file: the one place that knows which file that is (an
        array task's own, in its array's shared directory)."""
        backend, ref = self.registry.for_run(run), run.job_ref()
        return functools.partial(backend.read, ref, backend.log_path(stream, ref))

    async def rerun(self, run_id: str, req: RerunRequest, root: Path | None = None) -> RunRecord:
        old = await asyncio.to_thread(self.store.get, run_id)
        snapshot = None
        if not req.fresh_code and old.snapshot_id:
            snapshot = await asyncio.to_thread(
                snapshot_mod.load_snapshot, old.snapshot_id, self.object_dir, self.manifest_dir
            )
        submit = SubmitRequest(
            project=old.project_path,
            entry_point=old.entry_point,
            parameters={**old.parameters, **req.parameters},
            backend_config=old.config_path,
            overrides=_merge_overrides(old.config_overrides, req.overrides),
            run_name=req.run_name,
            experiment_name=req.experiment_name or old.mlflow_experiment_name,
            # The same datasets as before unless narrowed (all declared if it read none).
            data=req.data if req.data is not None else [u.name for u in old.datasets] or None,
        )
        return await self.submit(submit, rerun_of=old, snapshot=snapshot, root=root)


def _merge_overrides(old: Overrides, new: Overrides) -> Overrides:
    """Later overrides win; both forms (dotted strings, nested dicts) are accepted."""
    if not old:
        return new
    if not new:
        return old
    return [*_as_list(old), *_as_list(new)]


def _as_list(overrides: Overrides) -> list[str]:
    return overrides if isinstance(overrides, list) else _flatten(overrides)


def _flatten(d: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in d.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(_flatten(value, path + "."))
        else:
            out.append(f"{path}={json.dumps(value) if not isinstance(value, str) else value}")
    return out

