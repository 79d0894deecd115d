"""The dispatcher: starts queued jobs when a slot is free, waits for them, records ends.

``python -m hpcml_tinyqueue.dispatcher <root>``, started by the backend when a job is
submitted (or found waiting) and no dispatcher holds the queue. It exits after a few idle
seconds. It is the parent of the jobs' processes, so it learns their exit codes, signals
included (a job killed by signal n ends with 128+n).
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .jobfiles import (
    ENV_FILE,
    STDERR,
    STDOUT,
    end_job,
    exit_code_of,
    locked,
    pid_alive,
    queued_jobs,
    read_job,
    write_job,
)

TICK = 0.1  # seconds between looks at the queue
IDLE_EXIT = 5.0  # an empty queue this long: exit (the next submit starts a new one)


def main(root_arg: str) -> None:
    root = Path(root_arg)
    with open(root / "dispatcher.lock", "a") as mine:
        try:
            fcntl.flock(mine, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another dispatcher serves this queue
        Dispatcher(root).loop(mine)


class Dispatcher:
    def __init__(self, root: Path):
        self.root = root
        # job id → (its process, its run directory)
        self.children: dict[str, tuple[subprocess.Popen[bytes], str]] = {}

    def loop(self, lock_file: Any) -> None:
        idle_since = time.monotonic()
        while True:
            self.reap()
            with locked(self.root):
                jobs = queued_jobs(self.root)
                self.enforce_limits(jobs)
                self.start_waiting(jobs)
                if jobs or self.children:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > IDLE_EXIT:
                    # Let go of the queue while still holding its lock: a submit that
                    # follows sees no dispatcher and starts one.
                    fcntl.flock(lock_file, fcntl.LOCK_UN)
                    return
            time.sleep(TICK)

    def reap(self) -> None:
        for job_id, (proc, run_dir) in list(self.children.items()):
            rc = proc.poll()
            if rc is None:
                continue
            del self.children[job_id]
            with locked(self.root):
                job = read_job(run_dir)
                if job is None:
                    continue
                code = exit_code_of(rc)
                if job.get("cancel_at") and code != 0:  # exit 0: it finished first
                    state = "CANCELLED"
                elif job.get("timed_out"):
                    state = "TIMEOUT"
                else:
                    state = "FINISHED" if code == 0 else "FAILED"
                end_job(self.root, job, state, code, _why(rc))

    def start_waiting(self, jobs: list[dict[str, Any]]) -> None:
        settings = _settings(self.root)
        running = [j for j in jobs if j["state"] == "RUNNING" and pid_alive(j.get("pid"))]
        free = settings.get("max_parallel", 1) - len(running)
        for job in [j for j in jobs if j["state"] == "QUEUED"][: max(free, 0)]:
            self.start(job)
        for job in jobs:  # RUNNING, not ours, process gone: a dispatcher died with it
            if (job["state"] == "RUNNING" and job["id"] not in self.children
                    and not pid_alive(job.get("pid"))):
                end_job(self.root, job, "FAILED", None,
                        "the job's process ended while no dispatcher watched it")

    def start(self, job: dict[str, Any]) -> None:
        run_dir = Path(job["run_dir"])
        env = dict(os.environ)
        env_file = run_dir / ENV_FILE
        try:
            env.update(json.loads(env_file.read_text()))
        except FileNotFoundError:
            pass
        env_file.unlink(missing_ok=True)  # secrets: gone from disk once the job has them
        if job.get("path_prefix"):
            env["PATH"] = job["path_prefix"] + os.pathsep + env.get("PATH", "")
        try:
            with open(run_dir / STDOUT, "ab") as out, open(run_dir / STDERR, "ab") as err:
                proc = subprocess.Popen(
                    ["/bin/bash", "-c", job["command"]],
                    cwd=run_dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    start_new_session=True,  # its own process group: cancel stops all of it
                )
        except OSError as exc:
            end_job(self.root, job, "FAILED", None, f"could not start the job: {exc}")
            return
        self.children[job["id"]] = (proc, str(run_dir))
        job.update(state="RUNNING", pid=proc.pid, started=time.time())
        write_job(job)

    def enforce_limits(self, jobs: list[dict[str, Any]]) -> None:
        """Runtime limits (SIGTERM, then SIGKILL after the grace) and late SIGKILLs of
        cancelled jobs that ignored SIGTERM."""
        now = time.time()
        for job in jobs:
            if job["state"] != "RUNNING" or job["id"] not in self.children:
                continue
            runtime, started = job.get("runtime"), job.get("started") or now
            if runtime and not job.get("timed_out") and now > started + runtime:
                job.update(timed_out=True, kill_at=now + job.get("kill_grace", 5.0))
                write_job(job)
                _signal_group(job["pid"], signal.SIGTERM)
            if job.get("kill_at") and now > job["kill_at"]:
                _signal_group(job["pid"], signal.SIGKILL)


def _settings(root: Path) -> dict[str, Any]:
    try:
        return json.loads((root / "settings.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _why(returncode: int) -> str | None:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return None


if __name__ == "__main__":
    main(sys.argv[1])
