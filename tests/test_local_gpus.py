"""GPU slots of the local backend, with real processes: the machine's GPUs are what the
server's CUDA_VISIBLE_DEVICES says (the real mechanism; nothing of the backend mocked)."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

from jupyterlab_hpcml.backends import gpu_slots
from jupyterlab_hpcml.backends.base import JobRef
from jupyterlab_hpcml.backends.local import LocalBackend
from jupyterlab_hpcml.core.errors import UserInputError
from jupyterlab_hpcml.core.states import JobStatus, RunState

from .test_local_backend import Env, as_ref, wait_end, wait_for_file

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

# Prints its GPUs, says it is ready, then holds them until told to end ("go" file).
HOLD = 'echo "gpus=$CUDA_VISIBLE_DEVICES"; touch ready; while [ ! -e go ]; do sleep 0.05; done'


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")


async def submit(env: Env, gpus: int | None, command: str = HOLD) -> tuple[JobRef, JobStatus]:
    resources = {} if gpus is None else {"GPUsPerNode": gpus}
    prepared = await env.prepare(command=command, resources=resources)
    job_id, status = await env.backend.submit(prepared)
    return as_ref(prepared, job_id), status


async def state(backend: LocalBackend, ref: JobRef) -> JobStatus:
    return (await backend.poll([ref]))[ref.job_id]


async def started(ref: JobRef) -> str:
    """The job's CUDA_VISIBLE_DEVICES, once it runs."""
    await wait_for_file(Path(ref.run_dir) / "ready", timeout=30)
    out = (Path(ref.run_dir) / ".hpcml" / "stdout.log").read_text()
    return out.split("gpus=", 1)[1].strip()


async def stays_queued(backend: LocalBackend, ref: JobRef, seconds: float = 1.5) -> JobStatus:
    """Still waiting after ``seconds`` (the runner retries every 0.25 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = await state(backend, ref)
        assert status.state == RunState.QUEUED, status
        assert not (Path(ref.run_dir) / "ready").exists()
        await asyncio.sleep(0.1)
    return status


async def waiting(ref: JobRef, timeout: float = 30) -> None:
    """The job's runner is in line for its GPUs (it says so on the job's stderr)."""
    log = Path(ref.run_dir) / ".hpcml" / "stderr.log"
    deadline = time.monotonic() + timeout
    while not (log.exists() and "hpcml: waiting for" in log.read_text()):
        assert time.monotonic() < deadline, "the runner never queued"
        await asyncio.sleep(0.05)


def finish(ref: JobRef) -> None:
    (Path(ref.run_dir) / "go").touch()


async def test_concurrent_jobs_get_distinct_gpus_and_wait_for_enough(
        gpus: None, tmp_path: Path) -> None:
    env = Env(tmp_path)
    jobs = [await submit(env, 1) for _ in range(3)]
    assert all(st.state == RunState.QUEUED for _, st in jobs)  # until the runner has its GPU
    seen = [await started(ref) for ref, _ in jobs]
    assert sorted(seen) == ["0", "1", "2"]
    for ref, _ in jobs:
        assert (await state(env.backend, ref)).state == RunState.RUNNING
        recorded = json.loads((Path(ref.run_dir) / ".hpcml" / "gpus.json").read_text())
        assert recorded["CUDA_VISIBLE_DEVICES"] in seen

    two, status = await submit(env, 2)
    assert (status.state, status.message) == (RunState.QUEUED, "waiting for 2 GPUs")
    assert (await stays_queued(env.backend, two)).message == "waiting for 2 GPUs"

    (a, _), (b, _), (c, _) = jobs
    await env.backend.cancel(a)  # frees one GPU: not enough yet
    assert (await wait_end(env.backend, a)).state == RunState.FAILED
    await stays_queued(env.backend, two)
    finish(b)  # frees a second one
    assert (await wait_end(env.backend, b)).state == RunState.FINISHED
    got = await started(two)
    assert sorted(got.split(",")) == sorted([seen[0], seen[1]])
    assert (await state(env.backend, two)).state == RunState.RUNNING
    finish(c), finish(two)
    for ref in (c, two):
        assert (await wait_end(env.backend, ref)).state == RunState.FINISHED


async def test_first_come_first_served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A later one-GPU job does not overtake a waiting two-GPU job (no starvation)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa,GPU-bbbb")
    env = Env(tmp_path)
    first, _ = await submit(env, 1)
    await started(first)
    big, _ = await submit(env, 2)
    # In line once its runner waits: a job submitted later never overtakes it then. (A
    # later job whose runner checks before this one's runner has started at all still
    # can: the window is the runner's start-up, see gpu_slots.acquire.)
    await waiting(big)
    small, _ = await submit(env, 1)
    await stays_queued(env.backend, small)  # a GPU is free, but the big job came first
    finish(first)
    assert sorted((await started(big)).split(",")) == ["GPU-aaaa", "GPU-bbbb"]
    assert (await state(env.backend, small)).state == RunState.QUEUED
    finish(big)
    assert await started(small) in ("GPU-aaaa", "GPU-bbbb")
    finish(small)
    assert (await wait_end(env.backend, small)).state == RunState.FINISHED


async def test_cancel_while_waiting_runs_nothing(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    env = Env(tmp_path)
    holder, _ = await submit(env, 1)
    assert await started(holder) == "0"
    waiter, _ = await submit(env, 1)
    await stays_queued(env.backend, waiter, 0.5)
    await env.backend.cancel(waiter)
    status = await wait_end(env.backend, waiter)
    assert (status.state, status.exit_code) == (RunState.FAILED, 143)
    assert not (Path(waiter.run_dir) / ".hpcml" / "started").exists()
    # The queue is not blocked by the cancelled job's ticket.
    finish(holder)
    assert (await wait_end(env.backend, holder)).state == RunState.FINISHED
    after, _ = await submit(env, 1)
    assert await started(after) == "0"
    finish(after)
    await wait_end(env.backend, after)


async def test_slots_survive_a_server_restart_and_a_crash_frees_them(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    env = Env(tmp_path)
    a, _ = await submit(env, 1)
    b, _ = await submit(env, 1)
    assert sorted([await started(a), await started(b)]) == ["0", "1"]

    # A restarted server (a new instance, no memory) still sees both GPUs taken.
    env.backend = LocalBackend({}, env.data_dir)
    c, _ = await submit(env, 1)
    await stays_queued(env.backend, c)

    # Only b's runner is killed: its program goes on, and so does its hold on the GPU.
    os.kill(int(b.job_id), signal.SIGKILL)
    await stays_queued(env.backend, c)

    os.killpg(int(a.job_id), signal.SIGKILL)  # a crash of the whole job frees its GPU
    a_gpu = json.loads((Path(a.run_dir) / ".hpcml" / "gpus.json").read_text())
    assert await started(c) == a_gpu["CUDA_VISIBLE_DEVICES"]
    for ref in (b, c):
        finish(ref)
        await wait_end(env.backend, ref)


async def test_gpus_per_node_zero_hides_gpus_and_unset_keeps_the_servers(
        gpus: None, tmp_path: Path) -> None:
    env = Env(tmp_path)
    none, status = await submit(env, 0)
    assert status.state == RunState.RUNNING
    unset, status = await submit(env, None)
    assert status.state == RunState.RUNNING
    assert await started(none) == ""
    assert await started(unset) == "0,1,2"
    for ref in (none, unset):
        finish(ref)
        await wait_end(env.backend, ref)


async def test_more_gpus_than_the_machine_has_is_refused(gpus: None, tmp_path: Path) -> None:
    env = Env(tmp_path)
    with pytest.raises(UserInputError, match="GPUsPerNode is 4 but this machine has 3 GPUs"):
        await env.prepare(resources={"GPUsPerNode": 4})


def test_features_and_notes_follow_the_machine(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    config = LocalBackend.parse_config({"Resources": {"GPUsPerNode": 1}})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    backend = LocalBackend({}, tmp_path)
    features = backend.supported_features()
    assert features.queue and features.resources == ["Runtime", "GPUsPerNode"]
    assert backend.config_notes(config) == []

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU: as before
    features = backend.supported_features()
    assert not features.queue and features.resources == ["Runtime"]
    assert backend.config_notes(config) == ["Resources.GPUsPerNode ignored by the local backend"]


async def test_no_gpus_runs_at_once_ignoring_gpus_per_node(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    env = Env(tmp_path)
    ref, status = await submit(env, 2, "echo ran")
    assert status.state == RunState.RUNNING
    assert (await wait_end(env.backend, ref)).state == RunState.FINISHED
    assert json.loads((Path(ref.run_dir) / ".hpcml" / "job.json").read_text())["gpus"] is None


def test_detection_parsers() -> None:
    assert gpu_slots.parse_visible_devices("0, 2,GPU-x") == ["0", "2", "GPU-x"]
    assert gpu_slots.parse_visible_devices("") == []
    assert gpu_slots.parse_visible_devices("-1") == []
    assert gpu_slots.parse_visible_devices("1,-1,2") == ["1"]  # CUDA stops at an invalid id
    smi = (
        "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-11111111-2222-3333-4444-555555555555)\n"
        "GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-66666666-2222-3333-4444-555555555555)\n"
        "  MIG 3g.20gb     Device  0: (UUID: MIG-aaaaaaaa-2222-3333-4444-555555555555)\n"
        "  MIG 3g.20gb     Device  1: (UUID: MIG-bbbbbbbb-2222-3333-4444-555555555555)\n"
    )
    assert gpu_slots.parse_nvidia_smi(smi) == [
        "GPU-11111111-2222-3333-4444-555555555555",
        "MIG-aaaaaaaa-2222-3333-4444-555555555555",
        "MIG-bbbbbbbb-2222-3333-4444-555555555555",
    ]
