"""The interface every compute backend implements (local, Slurm-SSH, FirecREST, UNICORE).

The engine above it is backend-neutral: it snapshots code, builds a ``JobSpec``
and asks a backend to upload, submit, poll many jobs at once, read files by byte
offset, list/fetch files and cancel. Backends never write the run store.
"""
from __future__ import annotations

import abc
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..core.connections import ConnectionIdentity, connection_identity
from ..core.errors import NotFound
from ..core.files import META_DIR, Chunk, FileInfo
from ..core.snapshots import ProgressCallback, Snapshot
from ..core.states import JobStatus
from ..engine.models import RunRecord


class Features(BaseModel):
    """What a backend can do, so the UI shows only the controls that work."""

    cancel: bool = True
    logs: bool = True
    log_follow: bool = True
    artifacts: bool = True
    rerun: bool = True
    upload_progress: bool = False
    offline_tracking: bool = True
    # Resources keys the backend honours; the others are ignored with a note.
    resources: list[str] = []


@dataclass
class JobSpec:
    """What to run. ``env`` may hold secrets (tracking token): backends must pass it
    to the job without writing it to disk in plain form, logs or the run record."""

    run_id: str
    command: str  # shell command, parameters already quoted
    env: dict[str, str] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)  # normalised (Runtime in s, Memory in MiB)
    environment: dict[str, Any] = field(default_factory=dict)  # backend config "Environment" section
    backend_config: dict[str, Any] = field(default_factory=dict)  # full config (unredacted)
    job_name: str = "hpcml"


@dataclass
class JobRef:
    run_id: str
    job_id: str
    run_dir: str


class Backend(abc.ABC):
    """One configured connection to a compute system. Async throughout."""

    kind: str = "abstract"

    def __init__(self, config: dict[str, Any], data_dir: Path):
        self.config = config
        self.data_dir = data_dir

    @functools.cached_property
    def identity(self) -> ConnectionIdentity:
        """The system this backend talks to and where its secrets go: the same function
        as the config's, so the registry, the credentials store and the backend agree."""
        return connection_identity(self.kind, self.config)

    @property
    def connection_name(self) -> str:
        """A stable name for the connection (runs are polled per connection)."""
        return self.identity.name

    @abc.abstractmethod
    def supported_features(self) -> Features: ...

    def check_ready(self) -> None:
        """Raise UserInputError when the backend cannot be used as configured (e.g. no
        credentials), before a submission creates anything. Cheap: no network."""

    def run_dir_for(self, run: RunRecord) -> str | None:
        """Where ``prepare`` will put the run, when known beforehand (absolute job-side paths
        can then be baked into files such as the offline MLflow store)."""
        return None

    @abc.abstractmethod
    async def prepare(
        self,
        run: RunRecord,
        snapshot: Snapshot,
        extra_files: dict[str, bytes] | None = None,
        progress: ProgressCallback | None = None,
    ) -> str:
        """Get the snapshot and ``extra_files`` (relative path → content, e.g. the offline
        MLflow store layout) ready to become the run's working directory; return its path.

        The directory must exist with all its files when ``submit`` starts the job; a
        backend may create it here or in ``submit`` (Slurm over SSH does the latter, in the
        same remote command as ``sbatch``, to save a round trip)."""

    @abc.abstractmethod
    async def submit(self, run: RunRecord, job: JobSpec) -> tuple[str, JobStatus]:
        """Start the job in ``run.run_dir``; return (job id, initial status)."""

    @abc.abstractmethod
    async def find_submitted(self, run: RunRecord) -> str | None:
        """After a crash mid-submission: the job id if the job was in fact submitted."""

    @abc.abstractmethod
    async def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        """States of many jobs in one call, keyed by job id. Raise BackendUnavailable
        when the system cannot be reached (the engine records UNKNOWN)."""

    @abc.abstractmethod
    async def read(self, run: RunRecord, relpath: str, offset: int, max_bytes: int) -> Chunk:
        """Read up to ``max_bytes`` of a file in the run directory from ``offset``."""

    @abc.abstractmethod
    async def list_files(self, run: RunRecord, relpath: str = "") -> list[FileInfo]:
        """List a directory of the run directory (recursively)."""

    async def list_files_many(
        self, items: Sequence[tuple[RunRecord, str]]
    ) -> list[list[FileInfo] | BaseException]:
        """``list_files`` for many (run, directory) pairs, in order; a directory that does not
        exist lists as empty, another failure is returned in its place. A poll pass lists
        the offline stores of all running runs so; remote backends override this with one
        request for all (this default asks one by one)."""
        out: list[list[FileInfo] | BaseException] = []
        for run, relpath in items:
            try:
                out.append(await self.list_files(run, relpath))
            except (NotFound, FileNotFoundError):
                out.append([])
            except Exception as exc:  # noqa: BLE001 - returned in its place
                out.append(exc)
        return out

    @abc.abstractmethod
    async def fetch(self, run: RunRecord, relpath: str, dest: Path) -> None:
        """Copy one file of the run directory to a local path."""

    @abc.abstractmethod
    async def cancel(self, run: RunRecord) -> JobStatus | None:
        """Ask the job to stop; the next poll reports its final state. A backend that
        finds the job had already ended by itself returns that (terminal) status instead,
        so the run keeps its own end rather than being recorded as cancelled."""

    def log_path(self, stream: str) -> str:
        """Path of stdout/stderr relative to the run directory."""
        return f"{META_DIR}/{stream}.log"

    async def close(self) -> None:
        """Release connections."""
