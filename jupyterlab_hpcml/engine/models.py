"""The data the engine passes around: run records, states, code identity.

Pydantic models so that the store, the REST API, the CLI's ``--json`` and the
Python API all serialise a run the same way.
"""
from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..core.job import JobRef
from ..core.states import RunState

TrackingMode = Literal["direct", "offline"]


class StateChange(BaseModel):
    state: RunState
    at: float = Field(default_factory=time.time)  # epoch seconds
    message: str | None = None


class DatasetUse(BaseModel):
    """Which version of a dataset a run read, and where it was on the target.

    ``digest`` names the version: over each file's path, size and sha256 (``version``
    "content"), or, for data the config maps to a path already on the target, over each
    file's path, size and mtime (``version`` "listing": content is not read there)."""

    name: str
    source: str  # as declared (a mapped dataset: the path on the target)
    path: str  # where the job saw it, relative to its working directory
    digest: str
    version: Literal["content", "listing"] = "content"
    size: int = 0  # bytes
    files: int = 0
    location: str | None = None  # on the target: the staged version's folder, or the mapped path
    sent_bytes: int = 0  # what staging it for this run sent (0: it was there already)
    sent_files: int = 0


class CodeIdentity(BaseModel):
    """What code ran: git commit + hash of uncommitted changes, and always a content hash."""

    git_commit: str | None = None
    git_dirty_hash: str | None = None  # sha256 of the uncommitted diff (None when clean)
    content_hash: str  # sha256 over the snapshot manifest (paths + file hashes)


class RunRecord(BaseModel):
    """Everything needed to show, follow and reproduce a run. Never holds secrets."""

    id: str
    name: str
    project_path: str  # absolute path of the project on the submitting machine
    project_name: str
    entry_point: str
    command: str  # resolved shell command, parameters quoted
    parameters: dict[str, str] = Field(default_factory=dict)
    backend: str  # "local" | "ssh" | "firecrest" | "unicore"
    connection: str | None = None  # which cluster/connection (host, API URL, machine)
    config_path: str | None = None
    backend_config: dict[str, Any] = Field(default_factory=dict)  # with overrides, secrets redacted
    # As given, for re-runs.
    config_overrides: list[str] | dict[str, Any] = Field(default_factory=list)
    resources: dict[str, Any] = Field(default_factory=dict)
    tracking_mode: TrackingMode = "direct"
    backend_job_id: str | None = None
    run_dir: str | None = None  # where the job runs, as the backend sees it
    state: RunState = RunState.SUBMITTING
    state_history: list[StateChange] = Field(default_factory=list)
    exit_code: int | None = None
    cancel_requested: bool = False
    mlflow_experiment_id: str | None = None
    mlflow_experiment_name: str | None = None
    mlflow_run_id: str | None = None
    code: CodeIdentity | None = None
    snapshot_id: str | None = None  # manifest id in the local object store (re-run same code)
    datasets: list[DatasetUse] = Field(default_factory=list)  # the data it read (see datasets.yaml)
    rerun_of: str | None = None
    # A sweep's child: the sweep's id, the child's point (row of the sweep's parameter
    # table), and, when it runs as a task of an array job in the sweep's shared run
    # directory, its task index there (None: the child is a job of its own).
    sweep_id: str | None = None
    sweep_index: int | None = None
    array_task: int | None = None
    array_name: str | None = None  # the array's own run id (its directory, job name, comment)
    # A child re-run later (``rerun --failed``): the run that repeats its point. A sweep's
    # counts and state are its latest attempts'.
    superseded_by: str | None = None
    # A child held back by the sweep's max-parallel cap (QUEUED, no job yet): the engine
    # submits it when a slot frees up (see engine/sweeps.py).
    held: bool = False
    restarts: int = 0  # how often the scheduler requeued the job (the same run resumed)
    service: bool = False  # a service job (a deployment's replica): it runs until stopped
    # A schedule's run: the schedule's id and the time it fired for (epoch seconds; a
    # "run now" fires for the moment it was asked). Unique together (see engine/schedules.py).
    schedule_id: str | None = None
    scheduled_at: float | None = None
    # Who is submitting: a SUBMITTING run whose submitter died is resolved, never resubmitted.
    submitter_host: str | None = None
    submitter_pid: int | None = None
    notes: list[str] = Field(default_factory=list)  # e.g. "Resources.GPUsPerNode ignored locally"
    archived: bool = False  # hidden from default listings; reversible (RunService.archive)
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)

    def job_ref(self) -> JobRef:
        """The run's job as a backend knows it (the job id is "" before it has one)."""
        return JobRef(self.id, self.backend_job_id or "", self.run_dir or "", self.array_task)

    @property
    def started_at(self) -> float | None:
        return next((c.at for c in self.state_history if c.state == RunState.RUNNING), None)

    @property
    def ended_at(self) -> float | None:
        return next((c.at for c in self.state_history if c.state.terminal), None)


class DeleteResult(BaseModel):
    """What deleting a run removed and what it kept (and why), for every face to show."""

    id: str
    run_dir_removed: bool = False
    mlflow_run_deleted: bool = False
    snapshot_removed: bool = False
    kept: list[str] = Field(default_factory=list)  # human notes: what stayed and where


SweepMode = Literal["grid", "random", "rows"]


class SweepDefinition(BaseModel):
    """How a sweep's points were made, as given (enough to show and to make them again)."""

    parameters: dict[str, str] = Field(default_factory=dict)  # name → override text as given
    mode: SweepMode = "grid"
    samples: int | None = None  # --random N
    seed: int | None = None  # the random seed used (chosen and recorded when not given)
    rows_source: str | None = None  # --from FILE: its name (the rows are the children's params)
    points: int = 0  # how many children the definition made


class SweepRecord(BaseModel):
    """A sweep: many runs (its children, ``RunRecord.sweep_id``) of one entry point and
    code snapshot, one MLflow parent run. Its state is its children's (``counts``)."""

    id: str  # "s" + 11 hex digits: never a run id (those are hex only)
    name: str
    project_path: str
    project_name: str
    entry_point: str
    definition: SweepDefinition
    max_parallel: int | None = None  # children active at once (None: no cap)
    backend: str
    connection: str | None = None
    config_path: str | None = None
    backend_config: dict[str, Any] = Field(default_factory=dict)  # redacted, as for a run
    config_overrides: list[str] | dict[str, Any] = Field(default_factory=list)
    tracking_mode: TrackingMode = "direct"
    mlflow_experiment_id: str | None = None
    mlflow_experiment_name: str | None = None
    mlflow_run_id: str | None = None  # the parent run
    code: CodeIdentity | None = None
    snapshot_id: str | None = None
    array_jobs: list[str] = Field(default_factory=list)  # array job ids (Slurm), in order
    run_dir: str | None = None  # the shared run directory of its array job(s)
    notes: list[str] = Field(default_factory=list)
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    ended_at: float | None = None  # when its last child ended (its MLflow parent run closed)
    # Filled when read (not stored): its points' latest attempts by state, and the state
    # they make (earlier attempts, re-run since, are still among its children).
    counts: dict[str, int] = Field(default_factory=dict)
    state: RunState | None = None


class SweepView(SweepRecord):
    """A sweep with its children (by point), as every face shows it."""

    children: list[RunRecord] = Field(default_factory=list)


class SweepPreview(BaseModel):
    """What a sweep definition would make, before anything is created."""

    points: int
    mode: SweepMode
    sample: list[dict[str, str]] = Field(default_factory=list)  # the first points
    varying: list[str] = Field(default_factory=list)  # the parameters that vary
    max_parallel: int | None = None


Overlap = Literal["skip", "allow", "cancel-previous"]
CatchUp = Literal["latest", "none", "all"]
CodeMode = Literal["fresh", "pinned"]
ScheduleState = Literal["active", "paused", "ended"]
FiringState = Literal["pending", "submitted", "skipped", "failed"]


class ScheduleRecord(BaseModel):
    """A schedule: what to run (as a submission) and when (cron in a zone, or one time).
    ``next_at`` is the first time not yet fired for: the only cursor (see engine/schedules.py)."""

    id: str  # "t" + 11 hex digits: never a run or sweep id
    name: str
    project_path: str  # absolute
    project_name: str
    root: str | None = None  # the server root the project had to stay in (None: CLI)
    entry_point: str
    parameters: dict[str, str] = Field(default_factory=dict)
    config_path: str | None = None
    config_overrides: list[str] | dict[str, Any] = Field(default_factory=list)
    backend: str
    connection: str | None = None
    run_name: str  # a template: {schedule}, {n} and {time} (with a strftime format: {time:%H%M})
    experiment_name: str | None = None
    cron: str | None = None  # five fields (aliases expanded); None: a one-off at ``at``
    cron_text: str | None = None  # as given (e.g. "@daily")
    at: float | None = None
    timezone: str
    overlap: Overlap = "skip"
    catch_up: CatchUp = "latest"
    catch_up_limit: int = 10  # catch-up "all": at most this many missed times fire
    end_at: float | None = None  # no firing after this time
    max_runs: int | None = None  # it ends after this many scheduled firings
    fired: int = 0  # scheduled firings recorded (not "run now"; skipped ones too)
    code: CodeMode = "fresh"  # snapshot at each firing, or the one taken when created
    snapshot_id: str | None = None  # pinned code
    code_identity: CodeIdentity | None = None  # pinned code's identity
    paused: bool = False
    ended: str | None = None  # why it fires no more (end date, max runs, one-off done)
    next_at: float | None = None
    missed: int = 0  # times not fired because of the catch-up policy, in all
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)

    @property
    def state(self) -> ScheduleState:
        return "ended" if self.ended else "paused" if self.paused else "active"


class Firing(BaseModel):
    """One time a schedule fired: keyed by (schedule id, scheduled time), never twice.
    ``run_id`` is chosen when the firing is recorded, so the run it creates is unique too."""

    schedule_id: str
    scheduled_at: float
    run_id: str
    state: FiringState = "pending"
    manual: bool = False  # "run now"
    message: str | None = None  # why it was skipped or failed
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    # Filled when read: the state of the run it created (None: no run).
    run_state: RunState | None = None


class ScheduleView(ScheduleRecord):
    """A schedule as every face shows it: its state, next times and recent firings."""

    status: ScheduleState = "active"
    next_times: list[float] = Field(default_factory=list)  # the next five (none when paused)
    runs: int = 0  # runs it created
    firings: list[Firing] = Field(default_factory=list)  # newest first


class CronPreview(BaseModel):
    """The next fire times of a cron expression or one time, as the sidebar shows them."""

    cron: str | None = None  # the five fields
    timezone: str
    next_times: list[float] = Field(default_factory=list)


DeploymentState = Literal["STARTING", "READY", "FAILED", "STOPPED"]
ACTIVE_DEPLOYMENT: tuple[DeploymentState, ...] = ("STARTING", "READY")


class DeploymentRecord(BaseModel):
    """A registered model version served by one or more service jobs (each a run: its log,
    job id and state are the run's), reachable through the lab's authenticated proxy."""

    name: str  # [a-z0-9][a-z0-9-]*: the proxy's path segment
    model_uri: str  # as asked, e.g. models:/digits@champion
    model_name: str
    model_version: str  # the version it resolved to when deployed
    model_source: str  # the version's source (models:/<model_id> or runs:/...)
    backend: str
    connection: str | None = None
    config_path: str | None = None
    replicas: int = 1
    run_ids: list[str] = Field(default_factory=list)  # one service job per replica
    state: DeploymentState = "STARTING"
    message: str | None = None
    created_at: float = Field(default_factory=time.time)
    ready_at: float | None = None
    stopped_at: float | None = None
    updated_at: float = Field(default_factory=time.time)
