"""GPU slots of the local machine: which GPUs there are, and which job holds which.

Detection (server side, once per process): the server's own ``CUDA_VISIBLE_DEVICES``
when it is set (ids or UUIDs, comma-separated; an empty value means no GPU), else
``nvidia-smi -L`` (absent or failing: no GPU). ``nvidia-smi`` lists GPUs in PCI order
while CUDA numbers them fastest-first, so its UUIDs are used, not its indices.

Assignment (job side, in ``local_runner``): a job asking for ``count`` GPUs takes an
exclusive ``flock`` on one lock file per GPU in the slots directory and keeps it as long
as the job's processes live. The kernel drops a lock when its holder dies, so a slot is
freed by a job's end, its cancel or its crash alike, and a restarted server needs no
bookkeeping: the locks held by the jobs still alive *are* the assignment. Waiting jobs
take their turn first come, first served (a ticket per waiting job, see ``acquire``), so
a job wanting two GPUs is not starved by later one-GPU jobs.

Standard library only: ``local_runner`` (started with ``python -I``) loads this file by
its path.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

NVIDIA_SMI_TIMEOUT = 5.0
_GPU_LINE = re.compile(r"^GPU \d+:.*\(UUID: (?P<uuid>[^)\s]+)\)")
_MIG_LINE = re.compile(r"^\s+MIG .*\(UUID: (?P<uuid>[^)\s]+)\)")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

# ---------------------------------------------------------------- detection


def parse_visible_devices(value: str) -> list[str]:
    """``CUDA_VISIBLE_DEVICES`` as a list ("" or "-1": none; CUDA stops at an invalid id,
    so "-1" hides every GPU and is treated as no GPU)."""
    out: list[str] = []
    for item in (part.strip() for part in value.split(",")):
        if not item or item.startswith("-"):
            break  # CUDA ignores an invalid id and every id after it
        out.append(item)
    return out


def parse_nvidia_smi(output: str) -> list[str]:
    """UUIDs from ``nvidia-smi -L``; a GPU split into MIG devices counts as its MIG devices."""
    out: list[str] = []
    for line in output.splitlines():
        if m := _GPU_LINE.match(line):
            out.append(m["uuid"])
        elif (m := _MIG_LINE.match(line)) and out:
            if not out[-1].startswith("MIG-"):
                out.pop()  # the parent GPU is used through its MIG devices only
            out.append(m["uuid"])
    return out


def _nvidia_smi_gpus() -> list[str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        done = subprocess.run([exe, "-L"], capture_output=True, text=True,
                              timeout=NVIDIA_SMI_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(done.stdout) if done.returncode == 0 else []


_detected: list[str] | None = None
_detect_lock = threading.Lock()


def machine_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs local jobs may use. Blocking (may run ``nvidia-smi``): call it from a
    thread. ``CUDA_VISIBLE_DEVICES`` is read each time (cheap); ``nvidia-smi`` runs once."""
    global _detected
    env = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in env:
        return parse_visible_devices(env["CUDA_VISIBLE_DEVICES"])
    with _detect_lock:
        if _detected is None:
            _detected = _nvidia_smi_gpus()
        return list(_detected)


def known_gpus(environ: Mapping[str, str] | None = None) -> list[str] | None:
    """``machine_gpus`` without blocking: None while ``nvidia-smi`` has not answered yet
    (for synchronous callers such as ``supported_features``)."""
    env = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in env:
        return parse_visible_devices(env["CUDA_VISIBLE_DEVICES"])
    if _detected is not None:
        return list(_detected)
    if shutil.which("nvidia-smi") is None:
        return []
    return None


def start_detection() -> None:
    """Run ``nvidia-smi`` in the background now, so the answer is there when asked."""
    if _detected is None and "CUDA_VISIBLE_DEVICES" not in os.environ:
        threading.Thread(target=machine_gpus, name="hpcml-gpu-detect", daemon=True).start()


# ---------------------------------------------------------------- assignment (job side)


def lock_file(slots_dir: Path, device: str) -> Path:
    return slots_dir / f"gpu-{_UNSAFE.sub('_', device)}.lock"


@dataclass
class Claim:
    """GPUs held by this process (and by the children that inherit ``fds``)."""

    devices: list[str]
    fds: list[int] = field(default_factory=list)

    @property
    def visible_devices(self) -> str:
        return ",".join(self.devices)

    def release(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _try_claim(slots_dir: Path, devices: Sequence[str], count: int) -> Claim | None:
    """``count`` free GPUs, locked; None (nothing held) when fewer are free."""
    claim = Claim([])
    for device in devices:
        fd = _open(lock_file(slots_dir, device))
        if _try_lock(fd):
            claim.devices.append(device)
            claim.fds.append(fd)
            if len(claim.devices) == count:
                return claim
        else:
            os.close(fd)
    claim.release()
    return None


def _first_in_line(queue: Path, mine: str) -> bool:
    """No live ticket older than ours. A ticket nobody holds a lock on is a waiting job
    that died: removed (we hold the allocation lock, so no one else is looking)."""
    for name in sorted(os.listdir(queue)):
        if name >= mine:
            return True
        fd = os.open(queue / name, os.O_RDWR | os.O_CLOEXEC)
        try:
            if not _try_lock(fd):
                return False  # an earlier job is still waiting
            os.unlink(queue / name)
        finally:
            os.close(fd)
    return True


def acquire(slots_dir: Path, devices: Sequence[str], count: int,
            should_stop: Callable[[], bool], pause: float = 0.25,
            queued_at: int | None = None) -> Claim | None:
    """Wait for ``count`` of ``devices``, first come first served by ``queued_at`` (ns,
    when the job was submitted; default now); None if ``should_stop`` said so first. The
    caller keeps the returned claim's fds open while the job runs."""
    queue = slots_dir / "queue"
    queue.mkdir(parents=True, exist_ok=True)
    # The ticket is locked before it is visible under its sortable name: a ticket seen
    # unlocked is always a dead one.
    mine = f"{queued_at or time.time_ns():020d}-{os.getpid()}"
    tmp = queue.parent / f".ticket-{mine}"
    ticket = _open(tmp)
    fcntl.flock(ticket, fcntl.LOCK_EX)
    os.rename(tmp, queue / mine)
    alloc = _open(slots_dir / "alloc.lock")
    try:
        while not should_stop():
            fcntl.flock(alloc, fcntl.LOCK_EX)  # one job at a time looks and takes
            try:
                claim = _first_in_line(queue, mine) and _try_claim(slots_dir, devices, count)
                if claim:
                    os.unlink(queue / mine)
                    return claim
            finally:
                fcntl.flock(alloc, fcntl.LOCK_UN)
            time.sleep(pause)
        os.unlink(queue / mine)
        return None
    finally:
        os.close(alloc)
        os.close(ticket)
