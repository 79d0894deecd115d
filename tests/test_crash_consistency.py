"""The store, the jobs and MLflow agree after a crash: failed MLflow writes are retried
(also after a restart), an interrupted submission's MLflow run is closed, a recorded
cancel is carried out after a restart, and a run that finished although cancelled says so.

Each "restart" is a second Engine on the same data dir after the first was dropped
without any clean-up of the work in question, as after a SIGKILL (tests/test_kill9.py
does the same with real server processes killed at random moments)."""
from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.models import RunRecord, StateChange
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.runs import FINISHED_BEFORE_CANCEL
from jupyterlab_hpcml.engine.service import Engine

from .test_engine import dead_pid

WAIT_PY = """import pathlib, sys, time
print("started", flush=True)
while not pathlib.Path("go").exists():
    time.sleep(0.05)
sys.exit(int(sys.argv[1]))
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = tmp_path / "waiter"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: waiter\nentry_points:\n  main:\n"
        "    parameters:\n      code: {type: int, default: 0}\n"
        "    command: python wait.py {code}\n")
    (project / "wait.py").write_text(WAIT_PY)
    return project


def mlflow_db(data: Path) -> Path:
    return data / "mlflow.db"


def mlflow_status(engine: Engine, run: RunRecord) -> str:
    assert run.mlflow_run_id
    return engine.tracker.client.get_run(run.mlflow_run_id).info.status


async def submit(engine: Engine, project: Path, code: int = 0) -> RunRecord:
    return await engine.runs.submit(
        SubmitRequest(project=str(project), entry_point="main", parameters={"code": code}))


async def until(engine: Engine, run_id: str, check, timeout: float = 30) -> RunRecord:
    deadline = time.monotonic() + timeout
    while True:
        await engine.runs.refresh()
        run = engine.store.get(run_id)
        if check(run):
            return run
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.1)


async def test_failed_mlflow_status_update_is_retried_after_a_restart(hpcml_data, project):
    first = Engine(data_dir=hpcml_data)
    run = await submit(first, project, code=3)
    run = await until(first, run.id, lambda r: r.state == RunState.RUNNING)
    assert mlflow_status(first, run) == "RUNNING"

    # The tracking store fails while the job ends (here: its runs table is unavailable).
    db = sqlite3.connect(mlflow_db(hpcml_data), isolation_level=None)
    db.execute("ALTER TABLE runs RENAME TO runs_unavailable")
    (Path(run.run_dir or "") / "go").touch()
    run = await until(first, run.id, lambda r: r.state.terminal)
    assert (run.state, run.exit_code) == (RunState.FAILED, 3)  # the store is not held up
    db.execute("ALTER TABLE runs_unavailable RENAME TO runs")
    db.close()
    assert mlflow_status(first, run) == "RUNNING"  # the write really failed
    first.store.close()  # dropped: no retry in this process

    second = Engine(data_dir=hpcml_data)
    await second.runs.refresh()
    assert mlflow_status(second, run) == "FAILED"
    assert second.store.mlflow_pending() == []
    await second.close()


async def test_mlflow_run_of_an_interrupted_submission_is_closed(hpcml_data, project):
    """The crash between storing the record and storing its MLflow run's id: the record is
    SUBMITTING without an MLflow run id, the MLflow run exists (tagged with the record's id)."""
    engine = Engine(data_dir=hpcml_data)
    exp_id, mlflow_run_id = engine.tracker.create_run(
        "waiter", "interrupted", {"code": "0"}, {"hpcml.run_id": "orphan000001"})
    engine.store.insert(RunRecord(
        id="orphan000001", name="interrupted", project_path=str(project), project_name="waiter",
        entry_point="main", command="python wait.py 0", backend="local", connection="local",
        state=RunState.SUBMITTING, state_history=[StateChange(state=RunState.SUBMITTING)],
        mlflow_experiment_name="waiter",
        submitter_host=socket.gethostname(), submitter_pid=dead_pid(),
    ))
    await engine.runs.refresh()
    run = engine.store.get("orphan000001")
    assert run.state == RunState.FAILED
    assert (run.mlflow_experiment_id, run.mlflow_run_id) == (exp_id, mlflow_run_id)
    assert mlflow_status(engine, run) == "FAILED"
    await engine.close()


async def test_submission_stores_the_record_before_the_mlflow_run(hpcml_data, project):
    """A submission refused by MLflow (deleted experiment) leaves nothing behind."""
    from jupyterlab_hpcml.core.errors import Conflict

    engine = Engine(data_dir=hpcml_data)
    exp = engine.tracker.client.create_experiment("gone")
    engine.tracker.client.delete_experiment(exp)
    with pytest.raises(Conflict):
        await engine.runs.submit(SubmitRequest(
            project=str(project), entry_point="main", experiment_name="gone"))
    assert engine.store.list()[1] == 0
    await engine.close()


async def test_recorded_cancel_is_carried_out_after_a_restart(hpcml_data, project):
    first = Engine(data_dir=hpcml_data)
    run = await submit(first, project)
    run = await until(first, run.id, lambda r: r.state == RunState.RUNNING)
    # What cancel() records first; the server dies before the signal goes out.
    first.store.update(run.id, cancel_requested=True)
    first.store.close()

    second = Engine(data_dir=hpcml_data)
    run = await until(second, run.id, lambda r: r.state.terminal, timeout=20)
    assert run.state == RunState.CANCELLED
    assert not (Path(run.run_dir or "") / "go").exists()  # it did not end by itself
    assert mlflow_status(second, run) == "KILLED"
    await second.close()


async def test_run_that_finished_before_the_cancel_took_effect_says_so(hpcml_data, project):
    engine = Engine(data_dir=hpcml_data)
    run = await submit(engine, project)
    run = await until(engine, run.id, lambda r: r.state == RunState.RUNNING)
    engine.store.update(run.id, cancel_requested=True)  # recorded, not delivered yet
    (Path(run.run_dir or "") / "go").touch()
    exit_file = Path(run.run_dir or "") / ".hpcml" / "exit_code"
    while not exit_file.exists():
        await asyncio.sleep(0.05)
    run = await until(engine, run.id, lambda r: r.state.terminal)
    assert (run.state, run.exit_code) == (RunState.FINISHED, 0)
    assert FINISHED_BEFORE_CANCEL in (run.state_history[-1].message or "")
    await engine.close()


async def test_poll_from_before_a_cancel_records_the_cancel(hpcml_data, project):
    """A poll pass reads its runs, then a cancel is recorded and signalled, then the pass
    sees the job ended: CANCELLED, not FAILED (the kill -9 test met this race)."""
    engine = Engine(data_dir=hpcml_data)
    run = await submit(engine, project)
    run = await until(engine, run.id, lambda r: r.state == RunState.RUNNING)
    stdout = Path(run.run_dir or "") / ".hpcml" / "stdout.log"
    while "started" not in stdout.read_text():  # the program runs: its end comes from the cancel
        await asyncio.sleep(0.05)
    snapshot = engine.store.get(run.id)  # what the poll pass read
    await engine.runs.cancel(run.id)
    exit_file = Path(run.run_dir or "") / ".hpcml" / "exit_code"
    while not exit_file.exists():
        await asyncio.sleep(0.05)
    await engine.runs.refresh([snapshot])
    run = engine.store.get(run.id)
    assert (run.state, run.exit_code) == (RunState.CANCELLED, 128 + 15)
    await engine.close()


async def test_cancel_during_the_submission_stops_the_job(hpcml_data, project):
    """A cancel that arrives while the run is being submitted: the submitter cancels the
    job as soon as it exists (it used to start and run on, unknown to the record)."""
    engine = Engine(data_dir=hpcml_data)
    submitting = asyncio.ensure_future(submit(engine, project))
    while not engine.store.list()[0]:  # the record is stored before the MLflow run
        await asyncio.sleep(0.002)
    run_id = engine.store.list()[0][0].id
    answer = await engine.runs.cancel(run_id)
    assert answer.state == RunState.SUBMITTING and answer.cancel_requested
    await submitting
    run = await until(engine, run_id, lambda r: r.state.terminal)
    assert run.state == RunState.CANCELLED
    assert run.backend_job_id and not _alive(int(run.backend_job_id))
    await engine.close()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"
