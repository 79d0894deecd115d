"""What the engine hands a backend about one job, and the handles a backend hands back.

* :class:`JobContext` — everything needed to start one run's job: ids, names, the run's
  directory on the target, the command with its parameters rendered, the environment
  the job gets (may hold secrets), and the run's backend config parsed once into the
  backend's typed ``config_model``. Built by the engine from its run record; a backend
  never sees the record itself nor a raw config dict.
* :class:`PreparedJob` — what ``Backend.prepare`` returns and ``Backend.submit`` takes:
  the context, the run directory as prepared, and (in a backend's subclass) whatever
  else submit needs. Nothing is left on the backend between the two calls.
* :class:`Submission` — what ``submit`` answers: the job id and the first status.
* :class:`JobRef` — the handle of a job that exists: run id, job id, run directory.
  ``poll``, ``read``, ``list_files``, ``fetch`` and ``cancel`` take only this.

And the places for what comes next (see ``backends/base.py`` for the contract):
:class:`ArrayTask` (many tasks, one job), :class:`RequeuePolicy` (a job requeued
resumes under the same run), :class:`ServiceSpec` / :class:`ServiceEndpoint` (a
long-running job with a port to reach), :class:`DataStage` (data next to the code: a
version staged by ``Backend.stage_data``, :class:`DataVersion` → :class:`StagedData`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from .config_models import BackendConfigModel, Environment, Resources
from .states import JobStatus

# Staging progress: (bytes sent, bytes to send, files sent, files to send).
DataProgress = Callable[[int, int, int, int], None]

ConfigT = TypeVar("ConfigT", bound=BackendConfigModel, covariant=True)


# ------------------------------------------------------------------ what comes next


@dataclass(frozen=True)
class RequeuePolicy:
    """The job may be requeued (preempted, or cut at its time limit after a checkpoint)
    and resume under the same run: same run id, MLflow run, run directory and job id.

    ``max_requeues``: how often the job script requeues itself before the run ends as it
    is (``Resources.MaxRequeues``). ``signal_before_end``: seconds before the time limit
    the job script gets SIGUSR2 (Slurm's ``--signal=B:USR2@<s>``), passes it on to the
    program so it checkpoints, and requeues the job (``Resources.RequeueSignalSeconds``).
    The program finds its checkpoint directory in ``$HPCML_CHECKPOINT_DIR`` and how often
    it was restarted in ``$HPCML_RESTART_COUNT``.
    """

    max_requeues: int = 3
    signal_before_end: int = 120


@dataclass(frozen=True)
class ServiceSpec:
    """The job is a long-running service (e.g. model serving) listening on ``port`` on
    the node it runs on (0: a free port it picks; it writes where it listens to
    ``core.files.SERVICE_FILE``); ``health_path``: an HTTP path answering 200 once ready."""

    port: int = 0
    health_path: str | None = None


@dataclass(frozen=True)
class ServiceEndpoint:
    """Where a running service job listens, as the backend sees it (a compute node's
    name and port); reach it from the lab through ``Backend.open_tunnel``."""

    host: str
    port: int


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset version: where it lies in the dataset, its content, and where
    that content is on this machine (read from there when the target lacks it)."""

    relpath: str  # posix, inside the dataset (a one-file dataset: the file's name)
    size: int
    sha256: str
    local_path: str


@dataclass(frozen=True)
class DataVersion:
    """A dataset version to stage (``Backend.stage_data``): content-addressed like code, so
    a target that holds a version (or some of its contents) is sent only what it lacks.
    ``digest`` names the version (the digest of its content listing)."""

    name: str
    digest: str
    files: tuple[DataFile, ...]
    single_file: bool = False  # the dataset is one file (its job path names that file)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class StagedData:
    """Where a staged version lies on the target, and what staging it sent now."""

    digest: str
    location: str  # absolute on the target: the version's folder (one file: the file)
    sent_bytes: int = 0
    sent_files: int = 0


@dataclass(frozen=True)
class TargetListing:
    """What is at a path on the target (a dataset mapped to data already there). Its
    ``digest`` is over each file's path, size and mtime: content is not read."""

    path: str
    digest: str
    size: int
    files: int


@dataclass(frozen=True)
class StagedVersion:
    """A version held in the target's data store (``Backend.staged_versions``)."""

    digest: str
    location: str
    size: int
    files: int
    staged_at: float  # epoch seconds


@dataclass(frozen=True)
class DataStage:
    """Data the job sees in its run directory: ``path`` (relative to the run directory)
    is made to point at ``location`` on the target (a staged version, or data that lives
    there already). ``prepare`` lays it out as a symbolic link; nothing is copied."""

    name: str
    path: str
    location: str


@dataclass(frozen=True)
class ArrayTask:
    """One task of an array job (a sweep point): a run of its own (its own record, MLflow
    run, command and env in ``context``) submitted with its siblings as ONE job, in the
    array's shared run directory. Its logs and exit code are its own
    (``.hpcml/stdout.<index>.log``, ``.hpcml/exit_code.<index>``); its ``JobRef`` has the
    array's id and the index joined as the scheduler writes it (Slurm: "123_4") and
    ``task=index``."""

    index: int
    context: JobContext[BackendConfigModel]


# ------------------------------------------------------------------ one job


@dataclass(frozen=True)
class JobContext(Generic[ConfigT]):
    """One run's job, as the backend needs it. Immutable: a backend derives, never edits."""

    run_id: str  # the engine's run id: [0-9a-f]{12}, safe in paths and job names
    run_name: str  # the user's name for the run (free text: quote it)
    project_name: str  # the MLproject's name (free text)
    entry_point: str
    job_name: str  # for the scheduler's queue (free text: sanitise to its rules)
    command: str  # a shell command, parameters rendered and quoted; runs in the run dir
    config: ConfigT  # this run's backend config, typed (the backend's ``config_model``)
    # Where the project lives on the submitting machine: files the config names relative
    # to the project (e.g. a local Apptainer image) are found from here.
    project_path: str = ""
    # The run's directory on the target: what ``Backend.run_dir_for`` answered (None
    # when the target decides it at submit, e.g. a UNICORE job's working directory),
    # or, after a restart, what ``prepare`` answered then.
    run_dir: str | None = None
    # The job's environment: tracking ids and URI, HPCML_RUN_ID, and in direct tracking
    # mode the tracking credentials. Pass it to the job's process only: never into a
    # file in plain form, a command line, a log or an error message. Empty when the
    # context is rebuilt from a record (``find_submitted``): secrets are not stored.
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    # What comes next: declared in ``Features`` by the backends that can; the engine
    # refuses a context asking for one where the feature is off (``Features.check``).
    requeue: RequeuePolicy | None = None
    service: ServiceSpec | None = None
    data: tuple[DataStage, ...] = ()

    @property
    def resources(self) -> Resources:
        return self.config.resources

    @property
    def environment(self) -> Environment:
        return self.config.environment

    def replace(self, **changes: object) -> JobContext[ConfigT]:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PreparedJob(Generic[ConfigT]):
    """What ``prepare`` hands to ``submit``. A backend that needs more (e.g. where the
    code waits in a cache) subclasses it; the engine only reads ``run_dir`` and passes
    the object on unchanged."""

    ctx: JobContext[ConfigT]
    run_dir: str  # the run directory as the job will see it (recorded before submit)


class Submission(NamedTuple):
    """What ``submit`` answers (a tuple: ``job_id, status = await backend.submit(p)``)."""

    job_id: str
    status: JobStatus


@dataclass(frozen=True)
class JobRef:
    """A job that exists. ``job_id`` may be "" for a run that has a run directory but no
    job yet (its submission was interrupted): reads and listings still work then."""

    run_id: str
    job_id: str
    run_dir: str
    task: int | None = None  # the index of an array task (see ArrayTask); None: a whole job
