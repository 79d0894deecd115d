"""The contract between the engine and a compute backend — a guide for backend authors.

A backend is one configured connection to a compute system (the local machine, a Slurm
cluster over SSH, a FirecREST or UNICORE site, or a plug-in's own). The engine above it
is backend-neutral: it takes the code snapshot, creates the MLflow run, keeps the run
record and its state machine; a backend moves files, starts, watches and stops jobs.

Lifecycle of a run
------------------
1. The engine parses the run's backend config once into the backend's
   :attr:`Backend.config_model` and asks :meth:`~Backend.check_ready` (cheap, no network:
   e.g. are there credentials?) and :meth:`~Backend.config_notes` (what of the config
   this backend ignores). Nothing exists yet; a refusal here leaves nothing behind.
2. ``run_dir = await run_dir_for(ctx)`` — where the run will live, when the backend can
   say so before anything is uploaded (absolute paths then go into the job's environment
   and into files such as the offline MLflow store). None: relative to the job's cwd.
3. ``prepared = await prepare(ctx, snapshot, extra_files, progress)`` — get the code
   (and ``extra_files``) to the target; returns a :class:`~..core.job.PreparedJob`. The
   engine records ``prepared.run_dir`` before it submits.
4. ``job_id, status = await submit(prepared)`` — start the job; the engine records both.
5. ``await poll([JobRef, ...])`` — many jobs of this connection at once, again and again
   until each reports a terminal state. ``read`` / ``list_files`` / ``fetch`` (logs,
   offline tracking, artifacts) may come at any time, also after the job ended.
6. ``await cancel(ref)`` on the user's request, possibly more than once.
7. After a crash or restart of the engine (or in another process: the CLI, a kernel),
   the engine rebuilds the context from its record and asks ``find_submitted(ctx)``
   for a run interrupted in submission, and goes on polling the others.

What the engine guarantees
--------------------------
* One backend instance per connection (:attr:`Backend.identity`), shared by all runs of
  that connection and by every face of this process. Other processes may hold their own
  instance for the same connection at the same time: keep state that matters on the
  target (files in the run directory, job names/comments), not in memory.
* ``prepare`` and ``submit`` are called at most once per run, in that order, in one
  process; ``submit`` gets exactly the object ``prepare`` returned.
* ``poll`` gets only jobs that have a job id; an unknown job id in the answer is left out
  and the engine records UNKNOWN for it ("the backend no longer knows this job").
* The run's context carries ``env`` only in ``run_dir_for``/``prepare``/``submit``; it
  is never stored. Credentials for the target itself are not in the context: ask the
  credentials store (``backends/credentials.py``) at the moment of use.

What a backend must do
----------------------
* Be async throughout; blocking work (file I/O, a blocking client library) goes to a
  thread (``asyncio.to_thread``): the lab's event loop must never stall.
* Report states with :class:`~..core.states.JobStatus`: ``exit_code`` 128+n for a job
  killed by signal n; TIMEOUT when a runtime limit ended it; FAILED with a message that
  says why. A system that cannot be reached raises
  :class:`~..core.errors.BackendUnavailable` (the engine shows UNKNOWN, never FAILED).
* Keep every path inside the run directory: check each relative path it is given with
  :func:`~..core.files.run_relpath` (they may come from a user), follow no symlink out.
* Write the job's stdout/stderr to :meth:`Backend.log_path` and, when the program ends,
  its exit code where a restarted engine finds it (``.hpcml/exit_code``).
* Make ``find_submitted`` answer None only when sure the job was never started, and
  ``cancel`` safe to repeat (the engine re-sends a cancel after a crash).
* Declare what it can in :meth:`supported_features`; the UI and engine offer only that.

What a backend must not do
--------------------------
* Import from ``engine/``, the faces (handlers, CLI, magics, widget), tornado or
  IPython (``tests/test_import_graph.py`` fails on it); read a raw config dict or a run
  record; write the run store or MLflow.
* Write a secret (``ctx.env`` values, credentials) to a log, an error message, a command
  line, a run record, or a file other than one readable only by the user.
* Keep state between ``prepare`` and ``submit`` on the instance: put it in the
  ``PreparedJob`` (subclass it).

What comes next (the contract's place for each; not implemented yet)
--------------------------------------------------------------------
* **Array jobs (sweeps)** — ``Features.job_arrays``; :meth:`Backend.submit_array` takes
  one prepared run directory (the code, laid out once) and the tasks
  (:class:`~..core.job.ArrayTask`: each a run of its own with its command and env) and
  starts them as ONE job. Each task's ``JobRef`` has job id "<array id>_<index>" and
  ``task=index``; ``poll`` reports tasks by those ids, ``log_path(stream, ref)`` and the
  exit-code file are per task.
* **Requeue** — ``Features.requeue``; ``ctx.requeue`` (:class:`~..core.job.RequeuePolicy`)
  asks for it. A requeued job keeps its job id and run directory; ``poll`` reports it
  QUEUED/RUNNING again (never a terminal state in between), appending to the same logs.
* **Service jobs (model serving)** — ``Features.services``; ``ctx.service``
  (:class:`~..core.job.ServiceSpec`) marks the job as one. The job picks a free port on
  its node and writes where it listens to ``.hpcml/service.json`` (``SERVICE_FILE``);
  :meth:`Backend.service_endpoint` reads it (the default does, through ``read``). With
  ``Features.tunnel``, :meth:`Backend.open_tunnel` makes it reachable from the lab's
  machine (a local job: directly; Slurm over SSH: a port forwarded over the existing
  connection).

Data staging (``Features.data_staging``)
----------------------------------------
Datasets go to a target once, into a data store of its own that all runs of that target
share (``<data_dir>/datasets`` locally, beside the code cache on a cluster):

* ``await stage_data([DataVersion, ...], progress)`` — before ``prepare``: make the store
  hold each version (its files under the version's digest), sending only contents it
  lacks, verified by sha256; answers where each version lies (:class:`~..core.job.StagedData`).
  A version's folder is never written once complete; nothing is written outside the store;
  ``progress(sent_bytes, total_bytes, sent_files, total_files)`` as contents go.
* ``ctx.data`` (:class:`~..core.job.DataStage`) then names the links ``prepare`` lays out
  in the run directory: job path → the version's location (or a path the config maps a
  dataset to, already on the target: ``await target_listing(path)`` gives its version).
* ``staged_versions()`` / ``remove_staged(digest)`` list and free the store.
* With ``Features.data_fetch``, ``fetch_data(name, url)`` has the target download an
  ``https://`` dataset itself (the backend config's ``DataFetch: cluster``), nothing
  passing through the lab's machine.
"""
from __future__ import annotations

import abc
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from ..core.config_models import BackendConfigModel
from ..core.connections import ConnectionIdentity, connection_identity
from ..core.errors import NotFound, Unsupported
from ..core.files import META_DIR, SERVICE_FILE, Chunk, FileInfo
from ..core.job import (
    ArrayTask,
    DataProgress,
    DataVersion,
    JobContext,
    JobRef,
    PreparedJob,
    ServiceEndpoint,
    StagedData,
    StagedVersion,
    Submission,
    TargetListing,
)
from ..core.snapshots import ProgressCallback, Snapshot
from ..core.states import JobStatus

__all__ = [
    "Backend", "Features", "JobContext", "JobRef", "JobSpec", "PreparedJob", "Submission",
    "Tunnel", "DirectTunnel", "parse_service_file",
]

C = TypeVar("C", bound=BackendConfigModel)


class Features(BaseModel):
    """What a backend can do, so that the UI shows only the controls that work and the
    engine asks only for what is there. Every optional capability is a field here."""

    cancel: bool = True
    logs: bool = True
    log_follow: bool = True
    artifacts: bool = True
    rerun: bool = True
    upload_progress: bool = False  # prepare() calls its progress callback as bytes go
    offline_tracking: bool = True  # the job can log MLflow to files in its run directory
    # Resources keys the backend honours; the others are ignored with a note.
    resources: list[str] = []
    # Jobs may wait QUEUED for resources before they start (False: they start at once).
    queue: bool = True
    # Characters a run file's name cannot hold here: such a file cannot be listed, read or
    # fetched (e.g. "'" on FirecREST, which pastes paths between single quotes).
    unsupported_name_chars: str = ""
    # What comes next (see the module docstring); off unless a backend implements it.
    job_arrays: bool = False  # submit_array(): many tasks, one job
    max_array_size: int = 0  # tasks per array job (0: no limit known)
    requeue: bool = False  # ctx.requeue honoured; a requeued job resumes under its run
    services: bool = False  # ctx.service honoured; service_endpoint() answers
    tunnel: bool = False  # open_tunnel() reaches a service job from the lab
    data_staging: bool = False  # stage_data() and friends; ctx.data laid out by prepare()
    data_fetch: bool = False  # fetch_data(): the target itself downloads an https:// dataset

    def check(self, ctx: JobContext[Any]) -> None:
        """Raise Unsupported when ``ctx`` asks for something that is off here. For the
        engine to call before it creates anything, once it produces such contexts."""
        asked = {"requeue": ctx.requeue is not None, "services": ctx.service is not None,
                 "data_staging": bool(ctx.data)}
        off = [name for name, wanted in asked.items() if wanted and not getattr(self, name)]
        if off:
            raise Unsupported(f"this backend does not support: {', '.join(off)}")


@dataclass
class JobSpec:
    """A context's job as the script renderers read it (``batchscript.JobLike``, UNICORE's
    job description): Resources/Environment in the config's spelling, normalised, taken
    from the typed config (:meth:`from_context`). Not handed to backends by the engine."""

    run_id: str
    command: str
    env: dict[str, str] = field(default_factory=dict, repr=False)
    resources: dict[str, Any] = field(default_factory=dict)  # Runtime in s, Memory in MiB
    environment: dict[str, Any] = field(default_factory=dict)
    job_name: str = "hpcml"

    @classmethod
    def from_context(cls, ctx: JobContext[Any]) -> JobSpec:
        return cls(
            run_id=ctx.run_id,
            command=ctx.command,
            env=dict(ctx.env),
            resources=ctx.resources.given(),
            environment=ctx.environment.model_dump(by_alias=True, exclude_none=True),
            job_name=ctx.job_name,
        )


def parse_service_file(data: bytes) -> ServiceEndpoint | None:
    """A service job's ``SERVICE_FILE`` (None when it is not a complete one)."""
    try:
        found = json.loads(data)
        host, port = found["host"], found["port"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(host, str) or not host or isinstance(port, bool) \
            or not isinstance(port, int) or not 0 < port < 65536:
        return None
    return ServiceEndpoint(host=host, port=port)


class Tunnel(abc.ABC):
    """A way from the lab's machine to a service job's port (see ``open_tunnel``)."""

    local_url: str  # e.g. "http://127.0.0.1:53012"

    @property
    def alive(self) -> bool:
        """False once the tunnel carries no new connections (closed, or the connection it
        rides on dropped, e.g. SSH): ask ``open_tunnel`` for a new one. Optional."""
        return True

    @abc.abstractmethod
    async def close(self) -> None: ...


class DirectTunnel(Tunnel):
    """No tunnel needed: the lab's machine reaches the endpoint as it is (a local job)."""

    def __init__(self, endpoint: ServiceEndpoint):
        self.local_url = f"http://{_url_host(endpoint.host)}:{endpoint.port}"

    async def close(self) -> None:
        pass


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class Backend(abc.ABC, Generic[C]):
    """One configured connection to a compute system. Async throughout.

    A subclass sets :attr:`kind` (the config's backend kind) and :attr:`config_model`
    (the pydantic model its config parses into), and implements the abstract methods.
    """

    kind: ClassVar[str] = "abstract"
    # Where a service job binds: every interface of its node (reached from the login node
    # through the tunnel), or only loopback where the job runs on the lab's own machine.
    service_bind: ClassVar[str] = "0.0.0.0"
    # The typed config of this backend. The engine parses a run's config into it once
    # (``JobContext.config``); the instance's own ``config`` is the connection's.
    config_model: ClassVar[type[BackendConfigModel]] = BackendConfigModel

    def __init__(self, config: C | Mapping[str, Any] | None, data_dir: Path):
        """``config``: the connection's config, typed, or as written (parsed here). Only
        its connection section matters to the instance: each run brings its own config
        (resources, environment: normalised by the engine) in its context."""
        if isinstance(config, Mapping):  # as written: "Runtime: 2h" is the engine's to convert
            config = {k: v for k, v in config.items() if k not in ("Resources", "Environment")}
        self.config: C = self.parse_config(config)  # type: ignore[assignment]
        self.data_dir = Path(data_dir)

    @classmethod
    def parse_config(cls, data: BaseModel | Mapping[str, Any] | None) -> BackendConfigModel:
        """``data`` (a config as written, already checked against the JSON schema) as
        :attr:`config_model`. Tolerant of missing fields: ``parse_config({})`` works."""
        if isinstance(data, cls.config_model):
            return data
        if isinstance(data, BaseModel):
            data = data.model_dump(by_alias=True, exclude_none=True)
        return cls.config_model.model_validate(dict(data or {}))

    @functools.cached_property
    def identity(self) -> ConnectionIdentity:
        """The system this backend talks to and where its secrets go: the same function
        as the config's, so the registry, the credentials store and the backend agree."""
        return connection_identity(self.kind, self.config.model_dump(by_alias=True,
                                                                     exclude_none=True))

    @property
    def connection_name(self) -> str:
        """A stable name for the connection (runs are polled per connection)."""
        return self.identity.name

    # ------------------------------------------------------------ before anything exists

    @abc.abstractmethod
    def supported_features(self) -> Features:
        """What this backend can do (no network; works on an instance with an empty config)."""

    def check_ready(self) -> None:
        """Raise UserInputError when the backend cannot be used as configured (e.g. no
        credentials), before a submission creates anything. Cheap: no network."""

    def config_notes(self, config: C) -> list[str]:
        """Notes for the run record about a run's config: what this backend ignores
        (e.g. "Resources.GPUsPerNode ignored by the local backend"). By default: the
        Resources keys given that ``Features.resources`` does not list."""
        honoured = set(self.supported_features().resources)
        return [f"Resources.{key} ignored by the {self.kind} backend"
                for key in config.resources.given() if key not in honoured]

    async def run_dir_for(self, ctx: JobContext[C]) -> str | None:
        """Where ``prepare`` will put the run, when known beforehand (absolute job-side
        paths can then be baked into the job's environment and files such as the offline
        MLflow store). May ask the target (e.g. its home directory); None when the target
        decides at submit."""
        return None

    # ------------------------------------------------------------ starting a job

    @abc.abstractmethod
    async def prepare(
        self,
        ctx: JobContext[C],
        snapshot: Snapshot,
        extra_files: Mapping[str, bytes] | None = None,
        progress: ProgressCallback | None = None,
    ) -> PreparedJob[C]:
        """Get the snapshot and ``extra_files`` (relative path → content; a key ending in
        "/" is an empty directory, e.g. for the offline MLflow store) ready to become the
        run's working directory, at ``ctx.run_dir`` when that is set.

        The directory must exist with all its files when ``submit`` starts the job; a
        backend may create it here or in ``submit`` (Slurm over SSH does the latter, in
        the same remote command as ``sbatch``, to save a round trip). Whatever ``submit``
        needs goes into the returned ``PreparedJob`` (subclass it), not onto ``self``."""

    @abc.abstractmethod
    async def submit(self, prepared: PreparedJob[C]) -> Submission:
        """Start the job in ``prepared.run_dir``; return (job id, initial status).

        If the outcome is unknown (the connection dropped after the request went out),
        raise BackendUnavailable: the run becomes UNKNOWN and ``find_submitted`` decides."""

    async def submit_array(self, prepared: PreparedJob[C], tasks: Sequence[ArrayTask], *,
                           max_parallel: int | None = None) -> list[Submission]:
        """Start ``tasks`` as ONE job in the run directory ``prepared`` (``Features.job_arrays``):
        one ``Submission`` per task, in order, its job id "<array id>_<index>".
        ``max_parallel``: at most this many tasks run at once (None: no limit)."""
        raise Unsupported(f"the {self.kind} backend cannot submit array jobs")

    async def find_submitted_tasks(self, ctx: JobContext[C],
                                   indexes: Sequence[int]) -> dict[int, str] | None:
        """After a crash in ``submit_array``: the job ids of tasks ``indexes`` (``ctx``: the
        array's context, its shared run directory as ``prepare`` answered), None only when
        sure the array was never submitted; BackendUnavailable while that cannot be told."""
        raise Unsupported(f"the {self.kind} backend cannot look up an interrupted array")

    @abc.abstractmethod
    async def find_submitted(self, ctx: JobContext[C]) -> str | None:
        """After a crash mid-submission: the job id if the job was in fact submitted,
        None only when sure it was not; BackendUnavailable while that cannot be told.
        ``ctx.run_dir`` is what ``prepare`` answered; ``ctx.env`` is empty."""

    # ------------------------------------------------------------ following jobs

    @abc.abstractmethod
    async def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        """States of many jobs in one call, keyed by job id. Raise BackendUnavailable
        when the system cannot be reached (the engine records UNKNOWN)."""

    @abc.abstractmethod
    async def read(self, ref: JobRef, relpath: str, offset: int, max_bytes: int) -> Chunk:
        """Read up to ``max_bytes`` of a file in the run directory from ``offset``
        (a missing file: an empty chunk with ``size`` None)."""

    @abc.abstractmethod
    async def list_files(self, ref: JobRef, relpath: str = "") -> list[FileInfo]:
        """List a directory of the run directory (recursively)."""

    async def list_files_many(
        self, items: Sequence[tuple[JobRef, str]]
    ) -> list[list[FileInfo] | BaseException]:
        """``list_files`` for many (job, directory) pairs, in order; a directory that does
        not exist lists as empty, another failure is returned in its place. A poll pass
        lists the offline stores of all running runs so; remote backends override this
        with one request for all (this default asks one by one)."""
        out: list[list[FileInfo] | BaseException] = []
        for ref, relpath in items:
            try:
                out.append(await self.list_files(ref, relpath))
            except (NotFound, FileNotFoundError):
                out.append([])
            except Exception as exc:  # noqa: BLE001 - returned in its place
                out.append(exc)
        return out

    @abc.abstractmethod
    async def fetch(self, ref: JobRef, relpath: str, dest: Path) -> None:
        """Copy one file of the run directory to a local path."""

    @abc.abstractmethod
    async def cancel(self, ref: JobRef) -> JobStatus | None:
        """Ask the job to stop; the next poll reports its final state. A backend that
        finds the job had already ended by itself returns that (terminal) status instead,
        so the run keeps its own end rather than being recorded as cancelled."""

    def log_path(self, stream: str, ref: JobRef | None = None) -> str:
        """Path of stdout/stderr relative to the run directory (an array task's own)."""
        if ref is not None and ref.task is not None:
            return f"{META_DIR}/{stream}.{ref.task}.log"
        return f"{META_DIR}/{stream}.log"

    # ------------------------------------------------------------ data

    async def stage_data(self, versions: Sequence[DataVersion],
                         progress: DataProgress | None = None) -> list[StagedData]:
        """Make the target's data store hold ``versions`` (see "Data staging" above), in
        order; one answer per version."""
        raise Unsupported(f"the {self.kind} backend cannot stage data")

    async def fetch_data(self, name: str, url: str) -> StagedVersion:
        """The target downloads an ``https://`` dataset itself (``Features.data_fetch``),
        into its data store as a version (the same digest the lab's machine would compute:
        ``engine/dataset_versions.py``). Raises HpcmlError when the target cannot fetch it
        (the engine then fetches on this machine and sends it)."""
        raise Unsupported(f"the {self.kind} backend cannot fetch data on its side")

    async def target_listing(self, path: str) -> TargetListing:
        """The version of data already on the target at ``path`` (absolute); NotFound when
        nothing is there."""
        raise Unsupported(f"the {self.kind} backend cannot stage data")

    async def staged_versions(self) -> list[StagedVersion]:
        """The versions the target's data store holds."""
        raise Unsupported(f"the {self.kind} backend cannot stage data")

    async def remove_staged(self, digest: str) -> bool:
        """Free a version from the target's data store (False: it was not there). Run
        directories linking to it see it vanish: the engine checks no active run uses it."""
        raise Unsupported(f"the {self.kind} backend cannot stage data")

    # ------------------------------------------------------------ service jobs

    async def service_endpoint(self, ref: JobRef) -> ServiceEndpoint | None:
        """Where a running service job listens (None while it does not yet)
        (``Features.services``): by default what the job wrote to ``SERVICE_FILE``."""
        if not self.supported_features().services:
            raise Unsupported(f"the {self.kind} backend cannot run service jobs")
        chunk = await self.read(ref, SERVICE_FILE, 0, 4096)
        return parse_service_file(chunk.data) if chunk.data else None

    async def open_tunnel(self, ref: JobRef, endpoint: ServiceEndpoint) -> Tunnel:
        """A way from the lab's machine to ``endpoint`` (``Features.tunnel``); the caller
        closes it."""
        raise Unsupported(f"the {self.kind} backend cannot reach a job's port")

    async def close(self) -> None:
        """Release connections."""
