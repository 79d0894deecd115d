"""The local backend: each job is a detached process group on the Jupyter server's machine.

``submit`` starts ``local_runner`` in a new session; the runner runs the pre/post
commands and the program and writes ``.hpcml/exit_code``. Everything needed to
follow a job afterwards (pid, process start time, exit code, a cancel's SIGKILL
deadline) lives in the run directory, so a restarted server or the CLI can poll and
cancel a job another process started. Pid reuse is detected by comparing the process
start time from ``/proc``.

A job is judged by its whole process group, not by the runner alone: a runner killed
on its own leaves its program running in the group, and the program's exit code
(recorded beside it, see ``local_runner.RECORDER``) is what the run ends with.

GPUs: on a machine with GPUs (``gpu_slots``), a job with ``Resources.GPUsPerNode`` g gets g
GPUs of its own through ``CUDA_VISIBLE_DEVICES``; its runner waits for them (the job is
QUEUED meanwhile) and holds them as locks, so two jobs never share a GPU and a job's end,
cancel or crash frees them. GPUsPerNode 0 hides the GPUs; without GPUsPerNode a job sees
what the server sees, as before.
"""
from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from ..core.config_models import Environment, LocalConfig
from ..core.errors import Conflict, NotFound, Problem, UserInputError
from ..core.files import META_DIR, Chunk, FileInfo, run_relpath
from ..core.job import (
    DataProgress,
    DataStage,
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
from ..core.snapshots import ProgressCallback, Snapshot, materialize
from ..core.states import JobStatus, RunState
from . import gpu_slots, local_data
from .base import Backend, DirectTunnel, Features, Tunnel
from .data_links import data_path
from .exitrecord import EXIT_FILE, exit_message, parse_exit_record, record_status
from .local_data import LocalDataStore
from .local_env import inherited_environment
from .local_runner import GPUS_FILE, PROGRAM_EXIT, RUNNER_FILE, group_members

# The runner is started by file path in isolated mode (-I): it is stdlib-only, so it
# works whether or not the package is importable from the job's cwd and environment
# (no PYTHONPATH/PYTHONHOME from Variables, no package __init__ to import: fast start).
RUNNER = str(Path(__file__).with_name("local_runner.py"))
JOB_FILE = f"{META_DIR}/job.json"
PROGRAM_EXIT_FILE = f"{META_DIR}/{PROGRAM_EXIT}"
GPU_FILE = f"{META_DIR}/{GPUS_FILE}"
# Written when a cancel's SIGTERM went out: when it was sent and when to SIGKILL what is
# left. On disk, so that the SIGKILL also happens after a restart (any poll acts on it).
CANCEL_FILE = f"{META_DIR}/cancel.json"
# Written when the backend itself stops an orphaned program at its Runtime limit.
TIMEOUT_FILE = f"{META_DIR}/timeout.json"
NO_EXIT_CODE = "the job's process ended without recording an exit code"
RUNNER_GONE = "the job's wrapper ended before the program; post-run commands did not run"
# The runner kills what ignored a cancel's SIGTERM after kill_grace; the backend does it
# this much later, in case the runner itself is gone or stuck.
KILL_MARGIN = 5.0

# Resources keys the local backend honours (the rest are ignored with a note); GPUsPerNode
# too on a machine with GPUs.
HONOURED_RESOURCES = ("Runtime",)
GPU_RESOURCE = "GPUsPerNode"
IGNORED_ENVIRONMENT = {
    "Modules": "Environment.Modules ignored by the local backend (no module system)",
    "Apptainer": "Environment.Apptainer ignored by the local backend (runs without a container)",
}


# ---------------------------------------------------------------- /proc helpers


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a process, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = stat[stat.rindex(b")") + 2 :].split()
    return rest[0].decode(), int(rest[19])  # fields 3 (state) and 22 (starttime)


def _is_our_process(pid: int, start_time: int | None) -> bool:
    """The pid is alive (not a zombie) and, if known, started when our job did."""
    st = _proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return start_time is None or st[1] == start_time


def _may_signal_group(pid: int, start_time: int | None) -> bool:
    """Signalling group ``pid`` cannot hit a stranger.

    Either the leader is our runner, or no process has that pid any more: then a
    group with that id can only be what is left of our job (the kernel does not
    hand out a pid still in use as a process group id).
    """
    st = _proc_stat(pid)
    return st is None or start_time is None or st[1] == start_time


def _killpg(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the job already ended


def _find_runner(run_dir: Path) -> int | None:
    """The pid of a live runner started for ``run_dir``, found by its command line."""
    wanted = [RUNNER.encode(), str(run_dir).encode()]
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv[-3:-1] == wanted and _is_our_process(int(entry.name), None):
            return int(entry.name)
    return None


def _group_alive(pgid: int) -> bool:
    """Some live process (not a zombie) is in process group ``pgid``.

    Only asked once the runner (the group's leader) is gone; then every member is what
    is left of our job, see ``_may_signal_group``."""
    return bool(group_members(pgid, live_only=True))


# ---------------------------------------------------------------- small file helpers


def _waiting(count: int) -> str:
    return f"waiting for {count} GPU{'s' if count != 1 else ''}"


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return data


class LocalBackend(Backend[LocalConfig]):
    kind = "local"
    service_bind = "127.0.0.1"  # the job runs here: nothing else may reach it
    config_model = LocalConfig
    # Seconds between cancel's SIGTERM and SIGKILL; the runner uses the same grace on timeout.
    kill_grace: float = 10.0

    def __init__(self, config: LocalConfig | Mapping[str, Any] | None, data_dir: Path):
        super().__init__(config, data_dir)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}  # job id → runner, to reap it
        gpu_slots.start_detection()  # nvidia-smi, once per process, off the event loop

    def _kill_grace(self, config: LocalConfig) -> float:
        grace = config.local.kill_grace
        return self.kill_grace if grace is None else float(grace)

    # ------------------------------------------------------------ layout

    def _work_dir(self, config: LocalConfig) -> Path:
        wd = config.local.work_dir
        return Path(wd).expanduser().absolute() if wd else Path(self.data_dir) / "runs"

    @property
    def work_dir(self) -> Path:
        return self._work_dir(self.config)

    def _run_dir(self, run_id: str, run_dir: str | None, config: LocalConfig | None = None) -> Path:
        """The run's directory: as recorded, else ``<WorkDir>/<run id>``."""
        if run_dir:
            return Path(run_dir)
        if not run_id or "/" in run_id or "\\" in run_id or run_id in (".", ".."):
            raise UserInputError(Problem(f"invalid run id {run_id!r}"))
        return self._work_dir(config or self.config) / run_id

    def _ctx_dir(self, ctx: JobContext[LocalConfig]) -> Path:
        return self._run_dir(ctx.run_id, ctx.run_dir, ctx.config)

    def _ref_dir(self, ref: JobRef) -> Path:
        return self._run_dir(ref.run_id, ref.run_dir)

    async def run_dir_for(self, ctx: JobContext[LocalConfig]) -> str:
        return str(self._ctx_dir(ctx))

    def _resolve(self, ref: JobRef, relpath: str) -> Path:
        """``relpath`` inside the run directory, also after following symlinks."""
        root = self._ref_dir(ref).resolve()
        target = (root / run_relpath(relpath)).resolve()
        if target != root and not target.is_relative_to(root):
            raise UserInputError(Problem(f"path leaves the run directory: {relpath!r}"))
        return target

    # ------------------------------------------------------------ features and notes

    @staticmethod
    def _honoured_resources() -> tuple[str, ...]:
        # While nvidia-smi has not answered (None), it is there: GPUs are likely.
        gpus = gpu_slots.known_gpus()
        return HONOURED_RESOURCES + ((GPU_RESOURCE,) if gpus is None or gpus else ())

    @property
    def slots_dir(self) -> Path:
        """Where the GPU slot locks live: one place for every job of this data dir."""
        return Path(self.data_dir) / "gpu-slots"

    def supported_features(self) -> Features:
        gpus = bool(gpu_slots.known_gpus())
        return Features(
            cancel=True,
            logs=True,
            artifacts=True,
            rerun=True,
            upload_progress=False,
            resources=list(HONOURED_RESOURCES + ((GPU_RESOURCE,) if gpus else ())),
            queue=gpus,  # without GPUs a job starts the moment it is submitted
            data_staging=True,
            services=True,
            tunnel=True,
        )

    async def open_tunnel(self, ref: JobRef, endpoint: ServiceEndpoint) -> Tunnel:
        return DirectTunnel(endpoint)  # the job listens on this machine's loopback

    # ------------------------------------------------------------ data

    @functools.cached_property
    def data_store(self) -> LocalDataStore:
        return LocalDataStore(self.data_dir / "datasets")

    async def stage_data(self, versions: Sequence[DataVersion],
                         progress: DataProgress | None = None) -> list[StagedData]:
        return await asyncio.to_thread(self.data_store.stage, versions, progress)

    async def target_listing(self, path: str) -> TargetListing:
        return await asyncio.to_thread(local_data.listing, Path(path))

    async def staged_versions(self) -> list[StagedVersion]:
        return await asyncio.to_thread(self.data_store.staged)

    async def remove_staged(self, digest: str) -> bool:
        return await asyncio.to_thread(self.data_store.remove, digest)

    def config_notes(self, config: LocalConfig) -> list[str]:
        """Human notes for the run record: what of the config has no local meaning."""
        honoured = self._honoured_resources()
        notes = [
            f"Resources.{key} ignored by the local backend"
            for key in config.resources.given()
            if key not in honoured
        ]
        given = config.environment.given()
        notes += [note for key, note in IGNORED_ENVIRONMENT.items() if given.get(key)]
        return notes

    # ------------------------------------------------------------ prepare

    async def prepare(
        self,
        ctx: JobContext[LocalConfig],
        snapshot: Snapshot,
        extra_files: Mapping[str, bytes] | None = None,
        progress: ProgressCallback | None = None,
    ) -> PreparedJob[LocalConfig]:
        run_dir = self._ctx_dir(ctx)
        await self._gpu_request(ctx)  # more GPUs than the machine has: refused before copying
        # A key ending in "/" is an empty directory (the offline MLflow store needs some).
        extras = {
            (PurePosixPath(run_relpath(k, "extra file")), k.endswith("/")): v
            for k, v in (extra_files or {}).items()
        }
        await asyncio.to_thread(self._prepare_sync, run_dir, snapshot, extras, ctx.data)
        if progress:
            total = snapshot.total_bytes + sum(len(v) for v in extras.values())
            progress(total, total)
        return PreparedJob(ctx, str(run_dir))

    def _prepare_sync(
        self, run_dir: Path, snapshot: Snapshot, extras: dict[tuple[PurePosixPath, bool], bytes],
        datasets: Sequence[DataStage] = (),
    ) -> None:
        if self._launch_info(run_dir):  # never overwrite the files of a launched job
            raise Conflict(f"a job was already started in {run_dir}")
        materialize(snapshot, run_dir)
        for stage in datasets:  # the data path links to the staged version (or mapped data)
            link = run_dir / data_path(stage)
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.is_file():
                link.unlink()
            link.symlink_to(stage.location)
        for (rel, is_dir), data in extras.items():
            target = run_dir / rel
            if is_dir:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (run_dir / META_DIR).mkdir(exist_ok=True)

    # ------------------------------------------------------------ GPUs

    async def _gpu_request(self, ctx: JobContext[LocalConfig]) -> dict[str, Any] | None:
        """What the runner needs to take the job's GPUs ("gpus" in job.json); None when
        the job asks for none or the machine has none (GPUsPerNode ignored, see notes)."""
        count = ctx.resources.gpus_per_node
        if not count:
            return None
        devices = await asyncio.to_thread(gpu_slots.machine_gpus)
        if not devices:
            return None
        if count > len(devices):
            raise UserInputError(Problem(
                f"GPUsPerNode is {count} but this machine has {len(devices)} "
                f"GPU{'s' if len(devices) != 1 else ''}", key="Resources.GPUsPerNode"))
        # The job's place in line is its submission's, taken here in submission order (a
        # runner's own start time would let a later job whose process started faster cut in).
        return {"count": count, "devices": devices, "slots_dir": str(self.slots_dir),
                "queued_at": time.time_ns()}

    # ------------------------------------------------------------ submit

    def _venv_dir(self, environment: Environment, run_dir: Path) -> Path | None:
        python = environment.python
        if not python:
            return None
        venv = run_dir / Path(str(python)).expanduser()  # relative paths: from the job's cwd
        if venv.is_file():  # the interpreter itself was given: <venv>/bin/python
            venv = venv.parent.parent
        if not (venv / "bin").is_dir():
            raise UserInputError(
                Problem(
                    f"no virtual environment at {venv} (no bin/ directory)",
                    key="Environment.Python",
                )
            )
        return venv

    def _job_environment(self, ctx: JobContext[LocalConfig], venv: Path | None) -> dict[str, str]:
        # The server's environment without its credentials (see local_env), then what
        # the engine hands this job, then the config's Variables.
        env = inherited_environment(os.environ)
        env.update(ctx.env)
        env.update(ctx.environment.variables)
        if ctx.resources.gpus_per_node == 0:  # asked for none: must not use others' GPUs
            env["CUDA_VISIBLE_DEVICES"] = ""
        # Put the right Python first so `python` and `mlflow` resolve as intended:
        # the given venv, or else the Jupyter server's own environment.
        bin_dir = str(venv / "bin") if venv else os.path.dirname(sys.executable)
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
        if venv:
            env["VIRTUAL_ENV"] = str(venv)
            env.pop("PYTHONHOME", None)
        env.setdefault("PYTHONUNBUFFERED", "1")  # logs appear while the job runs
        return env

    def _job_record(self, ctx: JobContext[LocalConfig], venv: Path | None,
                    gpus: dict[str, Any] | None = None) -> dict[str, Any]:
        """What goes into job.json: non-secret data only (never ``ctx.env``)."""
        e = ctx.environment
        runtime = ctx.resources.runtime
        return {
            "run_id": ctx.run_id,
            "command": ctx.command,
            "pre_run_login": e.pre_run_login or None,
            "pre_run_compute": e.pre_run_compute or None,
            "post_run_compute": e.post_run_compute or None,
            "post_run_login": e.post_run_login or None,
            "python": str(venv) if venv else None,
            "variables": dict(e.variables),
            "runtime_seconds": float(runtime) if runtime else None,
            "kill_grace": self._kill_grace(ctx.config),
            "gpus": gpus,
            "pid": None,
            "start_time": None,
            "submitted_at": time.time(),
        }

    async def submit(self, prepared: PreparedJob[LocalConfig]) -> Submission:
        run_dir = Path(prepared.run_dir)
        gpus = await self._gpu_request(prepared.ctx)
        proc = await asyncio.to_thread(self._spawn, run_dir, prepared.ctx, gpus)
        job_id = str(proc.pid)
        self._procs[job_id] = proc
        if gpus:  # the runner reports its GPUs in gpus.json once it has them
            return Submission(job_id, JobStatus(RunState.QUEUED, message=_waiting(gpus["count"])))
        return Submission(job_id, JobStatus(RunState.RUNNING))

    def _spawn(self, run_dir: Path, ctx: JobContext[LocalConfig],
               gpus: dict[str, Any] | None = None) -> subprocess.Popen[bytes]:
        meta = run_dir / META_DIR
        meta.mkdir(parents=True, exist_ok=True)
        venv = self._venv_dir(ctx.environment, run_dir)
        record = self._job_record(ctx, venv, gpus)
        job_file = run_dir / JOB_FILE
        _write_json_atomic(job_file, record)  # the runner reads its instructions from here
        with open(meta / "stdout.log", "ab") as out, open(meta / "stderr.log", "ab") as err:
            proc = subprocess.Popen(
                [sys.executable, "-I", RUNNER, str(run_dir)],
                start_new_session=True,  # own process group: cancel reaches every descendant
                cwd=run_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self._job_environment(ctx, venv),
            )
        st = _proc_stat(proc.pid)  # unreaped, so /proc/<pid> exists even if it already exited
        record.update(pid=proc.pid, start_time=st[1] if st else None)
        _write_json_atomic(job_file, record)  # now find_submitted / poll can re-attach
        return proc

    # ------------------------------------------------------------ find / poll

    def _launch_info(self, run_dir: Path) -> tuple[int, int | None] | None:
        """(pid, start time) of the job's runner: as the submitter recorded it, else as
        the runner recorded itself (the submitter may have died in between)."""
        for name in (JOB_FILE, f"{META_DIR}/{RUNNER_FILE}"):
            try:
                record = _read_json(run_dir / name)
            except (ValueError, OSError):
                record = None
            if record and record.get("pid"):
                return int(record["pid"]), record.get("start_time")
        return None

    def _runner_info(self, run_dir: Path) -> tuple[int, int | None] | None:
        """``_launch_info``, or a runner started too recently to have recorded itself."""
        info = self._launch_info(run_dir)
        if info is None:
            pid = _find_runner(run_dir)
            info = (pid, None) if pid else None
        return info

    async def find_submitted(self, ctx: JobContext[LocalConfig]) -> str | None:
        info = await asyncio.to_thread(self._runner_info, self._ctx_dir(ctx))
        return str(info[0]) if info else None

    def _reap(self) -> None:
        """Collect runners this process started, so that no zombie stays behind."""
        for job_id, proc in list(self._procs.items()):
            if proc.poll() is not None:
                del self._procs[job_id]

    async def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        self._reap()
        return await asyncio.to_thread(lambda: {j.job_id: self._status(j) for j in jobs})

    def _status(self, ref: JobRef) -> JobStatus:
        run_dir = Path(ref.run_dir)
        final = self._final_status(run_dir)
        if final is not None:
            return final
        info = self._launch_info(run_dir)
        if info is None and ref.job_id.isdigit():  # job.json lost: trust the job id alone
            info = (int(ref.job_id), None)
        if info is not None:
            pid, start_time = info
            runner_alive = _is_our_process(pid, start_time)
            # A runner killed on its own leaves the program running in its group.
            if runner_alive or (_may_signal_group(pid, start_time) and _group_alive(pid)):
                self._enforce_deadlines(run_dir, pid, start_time, runner_alive)
                return self._gpu_wait(run_dir) or JobStatus(RunState.RUNNING)
        # The runner may have written its exit code and exited since the first look.
        return self._final_status(run_dir) or self._status_without_runner(run_dir)

    @staticmethod
    def _gpu_wait(run_dir: Path) -> JobStatus | None:
        """QUEUED while the job's runner waits for its GPUs (no gpus.json yet)."""
        if (run_dir / GPU_FILE).exists():
            return None
        try:
            gpus = (_read_json(run_dir / JOB_FILE) or {}).get("gpus")
        except (ValueError, OSError):
            return None
        return JobStatus(RunState.QUEUED, message=_waiting(int(gpus["count"]))) if gpus else None

    def _status_without_runner(self, run_dir: Path) -> JobStatus:
        """The whole group is gone and the runner recorded nothing: it was killed. The
        program's own exit code, if it got that far, says how the job ended."""
        try:
            code = int((run_dir / PROGRAM_EXIT_FILE).read_text().strip())
        except (OSError, ValueError):
            return JobStatus(RunState.FAILED, None, NO_EXIT_CODE)
        if (run_dir / TIMEOUT_FILE).exists():
            return JobStatus(RunState.TIMEOUT, code, f"runtime limit reached; {RUNNER_GONE}")
        if code == 0:
            return JobStatus(RunState.FINISHED, 0, RUNNER_GONE)
        return JobStatus(RunState.FAILED, code, f"{exit_message(code)}; {RUNNER_GONE}")

    def _enforce_deadlines(
        self, run_dir: Path, pid: int, start_time: int | None, runner_alive: bool
    ) -> None:
        """Act on deadlines kept on disk: a cancel's SIGKILL, and, when the runner that
        enforces the Runtime limit is gone, that limit (SIGTERM, then SIGKILL)."""
        now = time.time()
        for name in (CANCEL_FILE, TIMEOUT_FILE):
            try:
                pending = _read_json(run_dir / name)
            except (ValueError, OSError):
                pending = None
            if pending and now >= float(pending.get("kill_at") or 0):
                _killpg(pid, signal.SIGKILL)
                return
        if runner_alive or (run_dir / TIMEOUT_FILE).exists():
            return
        try:
            job = _read_json(run_dir / JOB_FILE) or {}
        except (ValueError, OSError):
            return
        runtime, since = job.get("runtime_seconds"), job.get("submitted_at")
        try:  # with GPUs, the Runtime counts from when the job got them
            since = (_read_json(run_dir / GPU_FILE) or {}).get("acquired_at", since)
        except (ValueError, OSError):
            pass
        if runtime and since and now >= float(since) + float(runtime):
            self._stop_group(run_dir, TIMEOUT_FILE, pid, start_time)

    @staticmethod
    def _final_status(run_dir: Path) -> JobStatus | None:
        """The job's end as recorded by the runner, or None while there is no record."""
        try:
            data: bytes | None = (run_dir / EXIT_FILE).read_bytes()
        except FileNotFoundError:
            data = None
        except OSError as exc:
            return JobStatus(RunState.FAILED, None, f"unreadable exit code file: {exc}")
        record = parse_exit_record(data)
        return None if record is None else record_status(record, missing=NO_EXIT_CODE)

    # ------------------------------------------------------------ cancel

    async def cancel(self, ref: JobRef) -> None:
        """SIGTERM to the job's process group, once; what ignores it is killed after
        ``kill_grace`` by the runner, or (runner gone) by the next poll of any process."""
        run_dir = self._ref_dir(ref)
        info = await asyncio.to_thread(self._runner_info, run_dir)
        if info is None:
            return  # nothing was launched
        await asyncio.to_thread(self._stop_group, run_dir, CANCEL_FILE, *info)

    def _stop_group(self, run_dir: Path, marker: str, pid: int, start_time: int | None) -> None:
        """SIGTERM the group unless ``marker`` says it was done; then record the SIGKILL
        deadline there. Signal first, record second: a crash in between means one more
        SIGTERM after the restart, never a cancel that is believed sent but was not."""
        if (run_dir / marker).exists() or (run_dir / EXIT_FILE).exists():
            return  # signalled before (a repeated cancel keeps the first deadline), or ended
        if not _may_signal_group(pid, start_time):
            return  # the pid belongs to another process now: our job is long gone
        _killpg(pid, signal.SIGTERM)
        try:
            job = _read_json(run_dir / JOB_FILE) or {}
        except (ValueError, OSError):
            job = {}
        grace = float(job.get("kill_grace") or self.kill_grace)
        now = time.time()
        _write_json_atomic(run_dir / marker, {"sent_at": now, "kill_at": now + grace + KILL_MARGIN})

    # ------------------------------------------------------------ files

    async def read(self, ref: JobRef, relpath: str, offset: int, max_bytes: int) -> Chunk:
        if offset < 0 or max_bytes < 0:
            raise UserInputError(Problem("offset and max_bytes must not be negative"))
        path = self._resolve(ref, relpath)
        return await asyncio.to_thread(self._read_sync, path, offset, max_bytes)

    @staticmethod
    def _read_sync(path: Path, offset: int, max_bytes: int) -> Chunk:
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if offset >= size:  # seeking far beyond the end is EINVAL on some file systems
                    return Chunk(b"", offset, offset, size)
                f.seek(offset)
                data = f.read(max_bytes)
        except FileNotFoundError:
            return Chunk(b"", offset, offset, None)
        except IsADirectoryError:
            raise UserInputError(Problem(f"not a file: {path.name}")) from None
        return Chunk(data, offset, offset + len(data), size)

    async def list_files(self, ref: JobRef, relpath: str = "") -> list[FileInfo]:
        root = self._resolve(ref, relpath)
        return await asyncio.to_thread(self._list_sync, self._ref_dir(ref).resolve(), root)

    @staticmethod
    def _list_sync(run_root: Path, root: Path) -> list[FileInfo]:
        if not root.exists():
            raise NotFound(f"no such directory in the run directory: {root.name}")
        if not root.is_dir():
            raise UserInputError(Problem(f"not a directory: {root.name}"))
        out: list[FileInfo] = []
        # followlinks=False: a linked directory could lead outside or loop.
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            base = Path(dirpath)
            for name in dirnames + filenames:
                p = base / name
                if p.is_symlink() and not p.resolve().is_relative_to(run_root):
                    continue  # points outside the run directory: not ours to show
                try:
                    st = p.stat()
                except OSError:
                    continue  # dangling link or removed meanwhile
                is_dir = name in dirnames
                out.append(
                    FileInfo(
                        path=p.relative_to(root).as_posix(),
                        is_dir=is_dir,
                        size=None if is_dir else st.st_size,
                        mtime=st.st_mtime,
                    )
                )
        return sorted(out, key=lambda f: f.path)

    async def fetch(self, ref: JobRef, relpath: str, dest: Path) -> None:
        src = self._resolve(ref, relpath)
        await asyncio.to_thread(self._fetch_sync, src, Path(dest), relpath)

    @staticmethod
    def _fetch_sync(src: Path, dest: Path, relpath: str) -> None:
        if not src.exists():
            raise NotFound(f"no such file in the run directory: {relpath}")
        if not src.is_file():
            raise UserInputError(Problem(f"not a file: {relpath}"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)

    async def close(self) -> None:
        # Pending SIGKILL deadlines stay on disk, for the runner or the next poll.
        self._reap()
