"""Submit and poll at the same time: a poll pass works from a snapshot of the active runs
read a moment earlier, and must never overwrite a newer state with what it decided from
that snapshot (every state change is a compare-and-set on the state it was decided from).

Seen at scale: runs went QUEUED -> FAILED ("submission was interrupted before the job
started") ~120 ms after submission while their jobs ran on: the poll had read them while
still SUBMITTING, before their submission finished. Local backend and the real Slurm
test cluster (skips without it)."""
from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.models import RunRecord
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine

from .conftest import TOY_PROJECT
from .slurm_cluster import make_project, slurm  # noqa: F401 - fixture

INTERRUPTED = "submission was interrupted"


async def submit_seen_submitting(engine: Engine, req: SubmitRequest) -> tuple[RunRecord, RunRecord]:
    """Submit while another task keeps reading the active runs, as the poller does; return
    the run as the submission left it and the first snapshot that saw it SUBMITTING."""
    seen: dict[str, RunRecord] = {}
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            for run in await asyncio.to_thread(engine.store.active):
                if run.state == RunState.SUBMITTING:
                    seen.setdefault(run.id, run)
            await asyncio.sleep(0)

    task = asyncio.create_task(reader())
    try:
        run = await engine.runs.submit(req)
    finally:
        done.set()
        await task
    assert run.id in seen, "the reader never saw the run SUBMITTING"
    return run, seen[run.id]


def assert_not_set_back(run: RunRecord) -> None:
    states = [c.state for c in run.state_history]
    messages = " ".join(c.message or "" for c in run.state_history)
    assert INTERRUPTED not in messages, run.state_history
    assert RunState.SUBMITTING not in states[1:] and states.count(RunState.QUEUED) <= 1, states
    if RunState.RUNNING in states:
        assert RunState.QUEUED not in states[states.index(RunState.RUNNING):], states


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "toy"
    shutil.copytree(TOY_PROJECT, dest)
    return dest


async def test_a_poll_from_an_older_snapshot_leaves_a_running_local_run_alone(hpcml_data, project):
    engine = Engine(data_dir=hpcml_data)
    req = SubmitRequest(project=str(project), entry_point="sleep", parameters={"seconds": 30})
    run, stale = await submit_seen_submitting(engine, req)
    deadline = time.monotonic() + 30
    while (current := await engine.runs.get(run.id)).state != RunState.RUNNING:
        await engine.runs.refresh()
        assert time.monotonic() < deadline, current
        await asyncio.sleep(0.1)
    await engine.runs.refresh([stale])  # the pass that read the run while it was SUBMITTING
    after = await engine.runs.get(run.id)
    assert after.state == RunState.RUNNING, after.state_history
    assert after.backend_job_id == run.backend_job_id
    assert_not_set_back(after)
    await engine.runs.cancel(run.id)
    await engine.close()


async def test_concurrent_local_submits_and_polls_fail_no_live_run(hpcml_data, project):
    engine = Engine(data_dir=hpcml_data)
    stop = asyncio.Event()
    passes = 0

    async def poller() -> None:  # as fast as it goes: as many stale snapshots as possible
        nonlocal passes
        while not stop.is_set():
            await engine.runs.refresh()
            passes += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(poller())
    try:
        req = SubmitRequest(project=str(project), parameters={"steps": 1})
        runs = await asyncio.gather(*(engine.runs.submit(req) for _ in range(24)))
    finally:
        stop.set()
        await task
    assert passes > 0
    deadline = time.monotonic() + 90
    ended = []
    for run in runs:
        while not (current := await engine.runs.get(run.id)).state.terminal:
            await engine.runs.refresh()
            assert time.monotonic() < deadline, current
            await asyncio.sleep(0.2)
        ended.append(current)
    for run in ended:
        assert run.state == RunState.FINISHED and run.exit_code == 0, run.state_history
        assert_not_set_back(run)
    await engine.close()


async def test_a_poll_from_an_older_snapshot_leaves_a_slurm_run_alone(hpcml_data, tmp_path, slurm):  # noqa: F811
    engine = Engine(data_dir=hpcml_data)
    project = make_project(tmp_path / "toy", slurm)
    req = SubmitRequest(project=str(project), backend_config="slurm.yaml", entry_point="sleep",
                        parameters={"seconds": 60})
    await engine.runs.submit(req)  # connected, code on the cluster: the next submission is quick
    run, stale = await submit_seen_submitting(engine, req)
    assert run.state == RunState.QUEUED and run.backend_job_id, run
    try:
        deadline = time.monotonic() + 60
        while (current := await engine.runs.get(run.id)).state != RunState.RUNNING:
            await engine.runs.refresh()
            assert time.monotonic() < deadline, current
            await asyncio.sleep(0.5)
        await engine.runs.refresh([stale])
        after = await engine.runs.get(run.id)
        assert after.state == RunState.RUNNING, after.state_history
        assert after.backend_job_id == run.backend_job_id
        assert_not_set_back(after)
    finally:
        for r in await asyncio.to_thread(engine.store.active):
            await engine.runs.cancel(r.id)
        await engine.close()
