"""The detached wrapper that runs one local job.

``python -I .../local_runner.py <run_dir>`` (as LocalBackend starts it) or
``python -m jupyterlab_hpcml.backends.local_runner <run_dir>``.

Started by ``LocalBackend.submit`` in a new session, so this process is the leader
of the job's process group and every step it starts (``bash -c``) inherits the group.
It reads ``.hpcml/job.json`` (non-secret data only; secrets arrive in the environment),
runs the pre-run commands, the program and the post-run commands, enforces the
Runtime limit and writes ``.hpcml/exit_code`` last, so that any process can tell
from the run directory alone how the job ended.

The program runs under a small recording shell that writes its exit code to
``.hpcml/program_exit`` itself: if this wrapper is killed, the program goes on in the
same process group, and the backend (which judges a job by its whole group) still
learns how it ended. On a cancel (SIGTERM) the wrapper forwards the signal and, if
the program is still there after the grace period, kills it, so a program that
ignores SIGTERM ends even when no server is running to escalate.

A job given GPUs (``job.json`` "gpus") first waits for its GPU slots (``gpu_slots``,
loaded by path), then runs every step with ``CUDA_VISIBLE_DEVICES`` set to them; its
Runtime limit counts from then.

Standard library only and no package imports: it must start fast and must not
depend on the lab's heavier modules.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

META_DIR = ".hpcml"
DEFAULT_KILL_GRACE = 10.0
PROGRAM_EXIT = "program_exit"  # the program's own exit code, written by RECORDER
# This runner's pid and start time, written first thing: the server that started it may die
# before it records them in job.json, and a restarted one must find the job all the same.
RUNNER_FILE = "runner.json"

# Runs the program (``$1``, a shell command) in a child shell exactly as ``bash -c``
# would, and writes its exit status to ``$2``. The trap keeps this recording shell alive
# through the SIGTERM of a cancel (it is in the job's process group too) until the program
# has ended; a trap (unlike an ignored signal) is not inherited by the program.
# The GPUs the job got, written once it has them (``LocalBackend`` reports QUEUED before).
GPUS_FILE = "gpus.json"

RECORDER = 'trap : TERM INT HUP; bash -c "$1"; rc=$?; printf "%s\\n" "$rc" > "$2"; exit "$rc"'


@dataclass
class StepResult:
    exit_code: int
    signal: str | None = None  # name of the signal that killed the step, if any
    timed_out: bool = False


@dataclass
class RunnerState:
    """What signal handlers and the step loop share."""

    pgid: int
    grace: float = DEFAULT_KILL_GRACE
    cancelled: bool = False
    child: subprocess.Popen[bytes] | None = None
    notes: list[str] = field(default_factory=list)


def _log(msg: str) -> None:
    print(f"hpcml: {msg}", file=sys.stderr, flush=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _commands(value: Any) -> list[str]:
    """A pre/post command may be a string or a list of strings (run one after the other)."""
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if str(v).strip()]
    return [str(value)]


def group_members(pgid: int, *, skip: int | None = None, live_only: bool = False) -> list[int]:
    """Pids in process group ``pgid`` (read from /proc), without ``skip``; with
    ``live_only``, zombies and dead processes left out. Shared with the local backend."""
    pids: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == skip:
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rindex(b")") + 2 :].split()
        if int(rest[2]) != pgid:  # field 5: process group id
            continue
        if not (live_only and rest[0] in (b"Z", b"X")):
            pids.append(int(entry.name))
    return pids


def _group_members(pgid: int) -> list[int]:
    """Pids of the job's process group except this runner.

    The runner must signal its children without signalling itself: a self-sent
    signal would be indistinguishable from a user's cancel.
    """
    return group_members(pgid, skip=os.getpid())


def _signal_children(state: RunnerState, sig: signal.Signals) -> None:
    for pid in _group_members(state.pgid):
        try:
            os.kill(pid, sig)
        except OSError:
            pass  # already gone


def _wait_or_kill(state: RunnerState, proc: subprocess.Popen[bytes], grace: float) -> None:
    """After a SIGTERM: give the children ``grace`` seconds, then SIGKILL what is left."""
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_children(state, signal.SIGKILL)
        proc.wait()


def _signal_name(number: int) -> str | None:
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def _result_from_returncode(rc: int, timed_out: bool = False) -> StepResult:
    if rc < 0:  # killed by a signal: shell convention 128 + signum
        return StepResult(128 - rc, _signal_name(-rc), timed_out)
    # A shell reports a child killed by signal N as 128 + N (so does RECORDER).
    return StepResult(rc, _signal_name(rc - 128) if rc > 128 else None, timed_out)


def run_step(
    state: RunnerState,
    command: str,
    deadline: float | None,
    grace: float,
    record_to: Path | None = None,
    keep_fds: tuple[int, ...] = (),
) -> StepResult:
    """Run one ``bash -c`` step in the job's process group; kill it at ``deadline``.
    With ``record_to``, the step's exit code is also written there by RECORDER.
    ``keep_fds`` are inherited by the step (GPU slot locks: held while the program lives,
    even if this runner is killed on its own)."""
    argv = ["bash", "-c", command]
    if record_to is not None:
        argv = ["bash", "-c", RECORDER, "hpcml-program", command, str(record_to)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, pass_fds=keep_fds)
    state.child = proc
    try:
        if state.cancelled:  # the cancel arrived just before the step started
            _signal_children(state, signal.SIGTERM)
        timed_out = False
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                proc.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                timed_out = True
                _log("runtime limit reached, stopping the job")
                _signal_children(state, signal.SIGTERM)
                _wait_or_kill(state, proc, grace)
                break
        return _result_from_returncode(proc.returncode, timed_out)
    finally:
        state.child = None


def _install_handlers(state: RunnerState) -> None:
    def on_signal(signum: int, _frame: Any) -> None:
        # A cancel: forward to the children (they may not have received it when only
        # the runner was signalled) and let the step loop record the exit code. What has
        # not ended after the grace period is killed, by this process: the server that
        # asked may be gone by then.
        if not state.cancelled:
            state.cancelled = True
            _log(f"received {signal.Signals(signum).name}, stopping the job")
            timer = threading.Timer(state.grace, _signal_children, (state, signal.SIGKILL))
            timer.daemon = True
            timer.start()
        _signal_children(state, signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)


def _run_pre(
    state: RunnerState, spec: dict[str, Any], deadline: float | None, grace: float
) -> StepResult | None:
    """Run the pre-run commands; return the failing step's result, or None if all succeeded."""
    for cmd in _commands(spec.get("pre_run_login")) + _commands(spec.get("pre_run_compute")):
        if state.cancelled:
            return StepResult(128 + signal.SIGTERM, signal.SIGTERM.name)
        res = run_step(state, cmd, deadline, grace)
        if res.exit_code != 0:
            if not state.cancelled and not res.timed_out:
                _log(f"pre-run command failed with exit code {res.exit_code}: {cmd}")
            return res
    return None


def _run_post(state: RunnerState, spec: dict[str, Any], grace: float) -> None:
    """Post-run commands run after success, failure and timeout; not after a cancel.
    Their failure is reported but does not change the job's exit code."""
    for cmd in _commands(spec.get("post_run_compute")) + _commands(spec.get("post_run_login")):
        if state.cancelled:
            return
        res = run_step(state, cmd, None, grace)
        if res.exit_code != 0 and not state.cancelled:
            _log(f"post-run command failed with exit code {res.exit_code}: {cmd}")


def _gpu_slots() -> ModuleType:
    """``gpu_slots.py`` beside this file, loaded by path (no package imports here)."""
    import importlib.util

    path = Path(__file__).with_name("gpu_slots.py")
    spec = importlib.util.spec_from_file_location("hpcml_gpu_slots", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _take_gpus(run_dir: Path, state: RunnerState, gpus: dict[str, Any]) -> Any:
    """Wait for the job's GPUs (a cancel stops the wait: None); every step then sees them."""
    count = int(gpus["count"])
    slots = _gpu_slots()
    _log(f"waiting for {count} GPU{'s' if count != 1 else ''}")
    claim = slots.acquire(Path(gpus["slots_dir"]), list(gpus["devices"]), count,
                          lambda: state.cancelled, queued_at=gpus.get("queued_at"))
    if claim is None:
        return None
    os.environ["CUDA_VISIBLE_DEVICES"] = claim.visible_devices
    _write_atomic(run_dir / META_DIR / GPUS_FILE, json.dumps({
        "CUDA_VISIBLE_DEVICES": claim.visible_devices, "acquired_at": time.time()}))
    _log(f"got GPU{'s' if count != 1 else ''} {claim.visible_devices}")
    return claim


def run_job(run_dir: Path, state: RunnerState) -> StepResult:
    spec = json.loads((run_dir / META_DIR / "job.json").read_text())
    grace = state.grace = float(spec.get("kill_grace") or DEFAULT_KILL_GRACE)
    claim = None
    if spec.get("gpus"):
        claim = _take_gpus(run_dir, state, spec["gpus"])
        if claim is None:  # cancelled while waiting: nothing ran, nothing to clean up
            return StepResult(128 + signal.SIGTERM, signal.SIGTERM.name)
    runtime = spec.get("runtime_seconds")
    deadline = time.monotonic() + float(runtime) if runtime else None

    result = _run_pre(state, spec, deadline, grace)
    if result is None:
        if state.cancelled:
            result = StepResult(128 + signal.SIGTERM, signal.SIGTERM.name)
        else:
            _write_atomic(run_dir / META_DIR / "started", json.dumps({"started_at": time.time()}))
            record_to = run_dir / META_DIR / PROGRAM_EXIT
            keep = tuple(claim.fds) if claim else ()
            result = run_step(state, str(spec["command"]), deadline, grace, record_to, keep)
    _run_post(state, spec, grace)
    return result


def _record_self(run_dir: Path) -> None:
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        start_time: int | None = int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        start_time = None
    _write_atomic(run_dir / META_DIR / RUNNER_FILE,
                  json.dumps({"pid": os.getpid(), "start_time": start_time}))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m jupyterlab_hpcml.backends.local_runner <run_dir>", file=sys.stderr)
        return 2
    run_dir = Path(args[0]).resolve()
    _record_self(run_dir)
    state = RunnerState(pgid=os.getpgid(0))
    _install_handlers(state)
    try:
        result = run_job(run_dir, state)
    except Exception as exc:  # record *something*: a job must never end without an exit code
        _log(f"the job wrapper failed: {exc!r}")
        result = StepResult(1)
    record = {
        "exit_code": result.exit_code,
        "timeout": result.timed_out,
        "signal": result.signal,
        "cancelled": state.cancelled,
        "ended_at": time.time(),
    }
    _write_atomic(run_dir / META_DIR / "exit_code", json.dumps(record))
    return result.exit_code & 0xFF


if __name__ == "__main__":
    sys.exit(main())
