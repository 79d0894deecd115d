"""The run service's state machine: interrupted submissions, unreachable backends, defaults."""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from jupyterlab_hpcml.backends import registry
from jupyterlab_hpcml.backends.base import JobRef
from jupyterlab_hpcml.backends.local import LocalBackend
from jupyterlab_hpcml.core.errors import BackendUnavailable
from jupyterlab_hpcml.core.states import JobStatus, RunState
from jupyterlab_hpcml.engine import job_context
from jupyterlab_hpcml.engine import snapshot as snapshot_mod
from jupyterlab_hpcml.engine.models import RunRecord, StateChange
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine

from .conftest import TOY_PROJECT


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "toy"
    shutil.copytree(TOY_PROJECT, dest)
    return dest


@pytest.fixture
def engine(hpcml_data: Path) -> Engine:
    return Engine(data_dir=hpcml_data)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def interrupted_record(engine: Engine, project: Path, run_id: str) -> RunRecord:
    """What the store holds when the submitting process died before recording a job id."""
    snap = snapshot_mod.take_snapshot(
        project, engine.data_dir / "objects", engine.data_dir / "snapshots"
    )
    return RunRecord(
        id=run_id, name="interrupted", project_path=str(project), project_name="toy",
        entry_point="main", command="python train.py --steps 1 --lr 0.1 --label x --delay 0",
        backend="local", connection="local", snapshot_id=snap.id,
        state=RunState.SUBMITTING, state_history=[StateChange(state=RunState.SUBMITTING)],
        submitter_host=socket.gethostname(), submitter_pid=dead_pid(),
    )


async def wait_terminal(engine: Engine, run_id: str, timeout: float = 60) -> RunRecord:
    deadline = time.monotonic() + timeout
    while True:
        await engine.runs.refresh()
        run = engine.store.get(run_id)
        if run.state.terminal:
            return run
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.2)


async def test_interrupted_submission_without_a_job_ends_failed(engine, project):
    engine.store.insert(interrupted_record(engine, project, "int000000001"))
    await engine.runs.refresh()
    run = engine.store.get("int000000001")
    assert run.state == RunState.FAILED
    assert "interrupted before the job started" in (run.state_history[-1].message or "")
    await engine.close()


async def test_interrupted_submission_whose_job_started_is_adopted_not_resubmitted(engine, project):
    record = interrupted_record(engine, project, "int000000002")
    backend = LocalBackend({}, engine.data_dir)
    snap = snapshot_mod.load_snapshot(record.snapshot_id or "", engine.data_dir / "objects",
                                      engine.data_dir / "snapshots")
    prepared = await backend.prepare(job_context.recorded_context(record, backend), snap)
    record.run_dir = prepared.run_dir
    job_id, _ = await backend.submit(prepared)
    engine.store.insert(record)  # the crash happened before the job id was stored

    run = await wait_terminal(engine, record.id)
    assert run.backend_job_id == job_id
    assert run.state == RunState.FINISHED and run.exit_code == 0
    assert "re-attached" in " ".join(c.message or "" for c in run.state_history)
    assert (Path(run.run_dir or "") / ".hpcml" / "stdout.log").read_text().count("step 0") == 1
    await engine.close()


async def test_own_submission_in_progress_is_left_alone(engine, project):
    from jupyterlab_hpcml.engine import runs as runs_mod

    record = interrupted_record(engine, project, "int000000003")
    record.submitter_pid = os.getpid()
    engine.store.insert(record)
    runs_mod.IN_FLIGHT.add(record.id)
    try:
        await engine.runs.refresh()
        assert engine.store.get(record.id).state == RunState.SUBMITTING
    finally:
        runs_mod.IN_FLIGHT.discard(record.id)
    # Ours but no longer in flight (the submission gave up half-way): resolved.
    await engine.runs.refresh()
    assert engine.store.get(record.id).state == RunState.FAILED
    await engine.close()


class FlakyBackend(LocalBackend):
    """The local backend behind a link that can go down (what a cluster outage looks like)."""

    kind = "local"
    reachable = True

    async def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        if not FlakyBackend.reachable:
            raise BackendUnavailable("connection to the cluster lost")
        return await super().poll(jobs)


async def test_unreachable_backend_gives_unknown_then_recovers(engine, project, monkeypatch):
    monkeypatch.setitem(
        registry.available(),
        "local",
        EntryPoint("local", "tests.test_engine:FlakyBackend", registry.GROUP),
    )
    run = await engine.runs.submit(SubmitRequest(project=str(project), entry_point="sleep",
                                                 parameters={"seconds": 1}))
    FlakyBackend.reachable = False
    try:
        await engine.runs.refresh()
        down = engine.store.get(run.id)
        assert down.state == RunState.UNKNOWN
        assert down.state_history[-1].message == "connection to the cluster lost"
        await asyncio.sleep(1.5)  # the job ends while we cannot see it
        await engine.runs.refresh()
        assert engine.store.get(run.id).state == RunState.UNKNOWN  # never silently FAILED
    finally:
        FlakyBackend.reachable = True
    back = await wait_terminal(engine, run.id)
    assert back.state == RunState.FINISHED and back.exit_code == 0
    await engine.close()


async def test_default_backend_setting_picks_the_config(hpcml_data, project):
    engine = Engine(data_dir=hpcml_data, default_backend="local.yaml")
    run = await engine.runs.submit(SubmitRequest(project=str(project), parameters={"steps": 1}))
    assert run.config_path == str(project / "local.yaml")
    assert run.resources["Runtime"] == 600
    done = await wait_terminal(engine, run.id)
    assert done.state == RunState.FINISHED
    await engine.close()


async def test_failure_after_store_insert_leaves_a_definite_state(engine, project):
    """A fault while preparing the run directory ends FAILED with the reason, never stuck."""
    (engine.data_dir / "runs").write_text(
        "not a directory"
    )  # prepare cannot create run dirs under a file
    run = await engine.runs.submit(SubmitRequest(project=str(project), parameters={"steps": 1}))
    assert run.state == RunState.FAILED
    assert "submission failed" in (run.state_history[-1].message or "")
    from mlflow.tracking import MlflowClient

    assert (
        MlflowClient(engine.tracking_uri).get_run(run.mlflow_run_id or "").info.status == "FAILED"
    )
    await engine.close()


async def test_declared_environments_are_not_built_and_the_run_says_so(engine, project):
    mlproject = project / "MLproject"
    mlproject.write_text(
        mlproject.read_text().replace("name: toy\n", "name: toy\npython_env: python_env.yaml\n")
    )
    (project / "python_env.yaml").write_text("python: '3.11'\ndependencies: [mlflow]\n")
    run = await engine.runs.submit(SubmitRequest(project=str(project), parameters={"steps": 1}))
    notes = [n for n in run.notes if "python_env" in n]
    assert len(notes) == 1 and "not built" in notes[0]
    assert (await wait_terminal(engine, run.id)).state == RunState.FINISHED
    await engine.close()


async def test_resources_without_local_meaning_are_noted(engine, project):
    (project / "gpu.yaml").write_text("Local: {}\nResources:\n  GPUsPerNode: 4\n  Runtime: 5m\n")
    run = await engine.runs.submit(SubmitRequest(project=str(project), backend_config="gpu.yaml",
                                                 parameters={"steps": 1}))
    assert any("GPUsPerNode" in n and "ignored" in n for n in run.notes)
    assert not any("Runtime" in n for n in run.notes)  # honoured locally
    await wait_terminal(engine, run.id)
    await engine.close()
