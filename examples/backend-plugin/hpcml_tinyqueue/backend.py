"""The tinyqueue backend: what jupyterlab-hpcml calls, mapped onto the queue on disk.

Each method is one step of the contract in ``jupyterlab_hpcml/backends/base.py``; the
comments say which promise of the contract a line keeps. Blocking file work goes to a
thread (``asyncio.to_thread``): the lab's event loop must never wait on a disk.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from jupyterlab_hpcml.backends.base import Backend, Features
from jupyterlab_hpcml.core.errors import NotFound, Problem, UserInputError
from jupyterlab_hpcml.core.files import Chunk, FileInfo, run_relpath
from jupyterlab_hpcml.core.job import JobContext, JobRef, PreparedJob, Submission
from jupyterlab_hpcml.core.snapshots import ProgressCallback, Snapshot, materialize
from jupyterlab_hpcml.core.states import JobStatus, RunState

from . import jobfiles
from .config import TinyQueueConfig

IGNORED_ENVIRONMENT = ("Apptainer", "Modules", "PreRunCommandOnLoginNode",
                       "PostRunCommandOnLoginNode", "PreRunCommandOnComputeNode",
                       "PostRunCommandOnComputeNode")


class TinyQueueBackend(Backend[TinyQueueConfig]):
    kind = "tinyqueue"  # the entry point's name: what `Backend: tinyqueue` selects
    config_model = TinyQueueConfig

    @property
    def root(self) -> Path:
        """The queue's directory (one queue per root, shared by every process)."""
        configured = self.config.tinyqueue.root
        return Path(configured).expanduser() if configured else self.data_dir / "tinyqueue"

    # ------------------------------------------------------------ before anything exists

    def supported_features(self) -> Features:
        # Only what really works: the UI offers exactly these controls.
        return Features(cancel=True, logs=True, log_follow=True, artifacts=True, rerun=True,
                        offline_tracking=True, resources=["Runtime"])

    def config_notes(self, config: TinyQueueConfig) -> list[str]:
        given = config.environment.given()
        return [f"Environment.{key} ignored by the tinyqueue backend"
                for key in IGNORED_ENVIRONMENT if key in given]

    async def run_dir_for(self, ctx: JobContext[TinyQueueConfig]) -> str:
        return str(self.root / "runs" / ctx.run_id)  # run ids are safe in paths

    # ------------------------------------------------------------ starting a job

    async def prepare(self, ctx: JobContext[TinyQueueConfig], snapshot: Snapshot,
                      extra_files: Mapping[str, bytes] | None = None,
                      progress: ProgressCallback | None = None) -> PreparedJob:
        run_dir = Path(ctx.run_dir or await self.run_dir_for(ctx))
        await asyncio.to_thread(_lay_out, run_dir, snapshot, dict(extra_files or {}))
        return PreparedJob(ctx=ctx, run_dir=str(run_dir))  # submit gets exactly this

    async def submit(self, prepared: PreparedJob) -> Submission:
        return await asyncio.to_thread(self._submit, prepared)

    def _submit(self, prepared: PreparedJob) -> Submission:
        ctx, run_dir = prepared.ctx, Path(prepared.run_dir)
        config = ctx.config if isinstance(ctx.config, TinyQueueConfig) else self.config
        env = {**ctx.environment.variables, **ctx.env}
        path_prefix = _python_bin(ctx.environment.python)
        with jobfiles.locked(self.root):
            jobfiles.write_json(self.root / "settings.json",
                                {"max_parallel": config.tinyqueue.max_parallel})
            job_id = jobfiles.next_id(self.root)
            # The environment may hold secrets (a tracking token): a file only the user
            # can read, deleted by the dispatcher the moment the job starts.
            fd = os.open(run_dir / jobfiles.ENV_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(env, f)
            jobfiles.write_job({
                "id": job_id, "run_id": ctx.run_id, "run_dir": str(run_dir),
                "root": str(self.root), "command": ctx.command, "path_prefix": path_prefix,
                "runtime": ctx.resources.runtime, "kill_grace": config.tinyqueue.kill_grace,
                "state": "QUEUED", "submitted": time.time(),
            })
            (self.root / "queue").mkdir(exist_ok=True)
            (self.root / "queue" / job_id).write_text(str(run_dir))
        jobfiles.start_dispatcher(self.root)
        return Submission(job_id, JobStatus(RunState.QUEUED))

    async def find_submitted(self, ctx: JobContext[TinyQueueConfig]) -> str | None:
        # The job file is written (atomically) before submit returns: no file, no job.
        job = await asyncio.to_thread(jobfiles.read_job, ctx.run_dir) if ctx.run_dir else None
        return job["id"] if job and job.get("run_id") == ctx.run_id else None

    # ------------------------------------------------------------ following jobs

    async def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        return await asyncio.to_thread(self._poll, jobs)

    def _poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        out: dict[str, JobStatus] = {}
        waiting: set[Path] = set()
        for ref in jobs:
            job = jobfiles.read_job(ref.run_dir)
            if job is None or job["id"] != ref.job_id:
                continue  # the engine records UNKNOWN: "the backend no longer knows this job"
            out[ref.job_id] = _status(job)
            if job["state"] in ("QUEUED", "RUNNING"):
                waiting.add(Path(job["root"]))
        for root in waiting:  # e.g. after a reboot: jobs wait, nobody dispatches them
            jobfiles.start_dispatcher(root)
        return out

    async def read(self, ref: JobRef, relpath: str, offset: int, max_bytes: int) -> Chunk:
        path = _inside(ref.run_dir, relpath)
        return await asyncio.to_thread(_read, path, offset, max_bytes)

    async def list_files(self, ref: JobRef, relpath: str = "") -> list[FileInfo]:
        return await asyncio.to_thread(_list, _inside(ref.run_dir, relpath))

    async def fetch(self, ref: JobRef, relpath: str, dest: Path) -> None:
        path = _inside(ref.run_dir, relpath)
        if not path.is_file():
            raise NotFound(f"no file {relpath!r} in the run directory")
        await asyncio.to_thread(shutil.copyfile, path, dest)

    async def cancel(self, ref: JobRef) -> JobStatus | None:
        return await asyncio.to_thread(self._cancel, ref)

    def _cancel(self, ref: JobRef) -> JobStatus | None:
        job = jobfiles.read_job(ref.run_dir)
        if job is None:
            return None
        root = Path(job["root"])
        with jobfiles.locked(root):
            job = jobfiles.read_job(ref.run_dir) or job  # again, under the lock
            if job["state"] in jobfiles.ENDED:
                # Ended by itself before the cancel: say so (a repeated cancel lands here too).
                return None if job.get("cancel_at") else _status(job)
            if job["state"] == "QUEUED":  # never started: nothing to stop
                jobfiles.end_job(root, job, "CANCELLED", None, "cancelled while queued")
                return None
            now = time.time()
            job.update(cancel_at=now, kill_at=now + job.get("kill_grace", 5.0))
            jobfiles.write_job(job)
            try:  # SIGTERM now; the dispatcher sends SIGKILL at kill_at if needed
                os.killpg(job["pid"], signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        return None  # the next poll reports CANCELLED


# ---------------------------------------------------------------- helpers


def _python_bin(python: str | None) -> str:
    """The folder that goes first on the job's PATH, so that `python` in the command is the
    configured environment's (a venv, or its bin/python), else the lab's own."""
    if not python:
        return str(Path(sys.executable).parent)
    path = Path(python).expanduser()
    return str(path.parent if path.name.startswith("python") else path / "bin")


def _status(job: dict) -> JobStatus:
    return JobStatus(RunState(job["state"]), job.get("exit_code"), job.get("message"))


def _inside(run_dir: str, relpath: str) -> Path:
    """``relpath`` inside the run directory, also after following symlinks (the paths
    come from users: the contract asks every backend to check them)."""
    root = Path(run_dir).resolve()
    target = (root / run_relpath(relpath)).resolve()
    if target != root and not target.is_relative_to(root):
        raise UserInputError(Problem(f"path leaves the run directory: {relpath!r}"))
    return target


def _lay_out(run_dir: Path, snapshot: Snapshot, extra: dict[str, bytes]) -> None:
    materialize(snapshot, run_dir)
    for relpath, data in extra.items():
        target = run_dir / run_relpath(relpath)
        if relpath.endswith("/"):  # an empty directory (e.g. of the offline MLflow store)
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    (run_dir / jobfiles.META).mkdir(exist_ok=True)


def _read(path: Path, offset: int, max_bytes: int) -> Chunk:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(offset)
            data = f.read(max_bytes)
    except FileNotFoundError:
        return Chunk(b"", offset, offset, None)
    return Chunk(data, offset, offset + len(data), size)


def _list(root: Path) -> list[FileInfo]:
    if not root.is_dir():
        raise NotFound(f"no directory {root.name!r} in the run directory")
    out: list[FileInfo] = []
    for dirpath, dirnames, filenames in os.walk(root):  # symlinked dirs are not entered
        here = Path(dirpath)
        for name in dirnames + filenames:
            path = here / name
            if path.is_symlink():
                continue  # could point anywhere: not part of the run's files
            st = path.stat()
            out.append(FileInfo(path=str(path.relative_to(root)), is_dir=path.is_dir(),
                                size=None if path.is_dir() else st.st_size, mtime=st.st_mtime))
    return out
