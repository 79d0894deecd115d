"""The queue on disk, shared by the backend (in the lab's process) and the dispatcher.

Standard library only: the dispatcher imports nothing else, so it starts fast.

Layout::

    <root>/lock              flock held for every state change (submit, start, cancel, end)
    <root>/dispatcher.lock   flock held by the running dispatcher (at most one per root)
    <root>/next_id           the last job id handed out
    <root>/queue/<job id>    a job not ended yet: holds the path of its run directory
    <run dir>/.hpcml/job.json      the job: state, pid, exit code, ... (the truth)
    <run dir>/.hpcml/job.env       the job's environment, mode 0600, deleted at start
    <run dir>/.hpcml/exit_code     the exit code, once it ended
    <run dir>/.hpcml/stdout.log, stderr.log

The job's file lives in its run directory, so everything about a job is found from the
run directory alone (what the engine hands the backend as ``JobRef.run_dir``).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

META = ".hpcml"
JOB_FILE = f"{META}/job.json"
ENV_FILE = f"{META}/job.env"
EXIT_FILE = f"{META}/exit_code"
STDOUT = f"{META}/stdout.log"
STDERR = f"{META}/stderr.log"
ENDED = ("FINISHED", "FAILED", "CANCELLED", "TIMEOUT")


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """The queue's lock: one state change at a time, across processes."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically (readers never see half a file: they read without the lock)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def read_job(run_dir: str | Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / JOB_FILE).read_text())
    except FileNotFoundError:
        return None


def write_job(job: dict[str, Any]) -> None:
    write_json(Path(job["run_dir"]) / JOB_FILE, job)


def next_id(root: Path) -> str:
    """A new job id (call with the lock held): 1, 2, 3, ... per queue root."""
    path = root / "next_id"
    last = int(path.read_text()) if path.exists() else 0
    path.write_text(str(last + 1))
    return str(last + 1)


def queued_jobs(root: Path) -> list[dict[str, Any]]:
    """Jobs not ended yet, oldest first."""
    jobs = []
    queue = root / "queue"
    if not queue.is_dir():
        return []
    for entry in sorted(queue.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0):
        job = read_job(entry.read_text())
        if job is None or job["state"] in ENDED:
            entry.unlink(missing_ok=True)  # ended (or its run directory was deleted)
        else:
            jobs.append(job)
    return jobs


def end_job(root: Path, job: dict[str, Any], state: str, exit_code: int | None,
            message: str | None = None) -> None:
    """Record the end (call with the lock held): job file, exit-code file, queue entry."""
    job.update(state=state, exit_code=exit_code, ended=time.time(), message=message)
    if exit_code is not None:
        write_text_atomic(Path(job["run_dir"]) / EXIT_FILE, str(exit_code))
    write_job(job)
    (Path(job["run_dir"]) / ENV_FILE).unlink(missing_ok=True)  # never left behind
    (root / "queue" / job["id"]).unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


def exit_code_of(returncode: int) -> int:
    """Popen's returncode (-n when killed by signal n) as a shell reports it: 128+n."""
    return 128 - returncode if returncode < 0 else returncode


def dispatcher_running(root: Path) -> bool:
    """Whether a dispatcher holds this queue (asked without disturbing it)."""
    try:
        f = open(root / "dispatcher.lock", "a")
    except FileNotFoundError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def start_dispatcher(root: Path) -> None:
    """Start a dispatcher for ``root`` unless one runs (a second one would just exit).

    Detached (its own session): it outlives the lab, which may be restarted while jobs
    wait or run. It inherits this process's environment, which the jobs get too."""
    if dispatcher_running(root):
        return
    package_parent = Path(__file__).resolve().parents[1]
    with open(root / "dispatcher.log", "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "hpcml_tinyqueue.dispatcher", str(root)],
            cwd=package_parent, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, close_fds=True,
        )


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive (its parent has not reaped it yet)
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")
    except OSError:
        return True
