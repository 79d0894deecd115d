"""Sweeps on the local backend: children as processes of their own, at most K at once,
one MLflow parent with its children nested, re-run of the failed ones, cancel."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from jupyterlab_hpcml.core.errors import Conflict, UserInputError
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.models import SweepView
from jupyterlab_hpcml.engine.requests import SweepRequest, SweepRerunRequest
from jupyterlab_hpcml.engine.service import Engine

# A probe that records when it ran, and fails for one value.
PROBE = '''import os, sys, time
import mlflow
value, delay = int(sys.argv[1]), float(sys.argv[2])
start = time.time()
with mlflow.start_run():
    mlflow.log_metric("score", value * 10.0, step=0)
    time.sleep(delay)
    mlflow.log_metric("score", value * 10.0 + 1, step=1)
open(os.path.join(os.environ["HPCML_TIMES"], os.environ["HPCML_RUN_ID"]), "w").write(
    f"{start} {time.time()}")
sys.exit(3 if value == int(os.environ.get("HPCML_FAIL_AT", "-1")) else 0)
'''

MLPROJECT = '''name: probe
entry_points:
  main:
    parameters:
      value: {type: int, default: 0}
      delay: {type: float, default: 0.5}
      mode: {type: string, default: a}
    command: "python probe.py {value} {delay}"
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "probe"
    dest.mkdir()
    (dest / "MLproject").write_text(MLPROJECT)
    (dest / "probe.py").write_text(PROBE)
    return dest


@pytest.fixture
def engine(hpcml_data: Path) -> Engine:
    return Engine(data_dir=hpcml_data, poll_interval=0.2)


def config(project: Path, times: Path, fail_at: int = -1) -> str:
    (project / "local.yaml").write_text(
        "Local: {}\nEnvironment:\n  Variables:\n"
        f"    HPCML_TIMES: {times}\n    HPCML_FAIL_AT: '{fail_at}'\n")
    return "local.yaml"


async def wait_all(engine: Engine, sweep_id: str, timeout: float = 90) -> SweepView:
    deadline = time.monotonic() + timeout
    while True:
        view = await engine.current_sweep(sweep_id)
        if view.state is not None and view.state.terminal:
            return view
        assert time.monotonic() < deadline, view.counts
        await asyncio.sleep(0.2)


def overlap(times: Path) -> int:
    """The largest number of children that ran at the same moment."""
    spans = [tuple(map(float, f.read_text().split())) for f in times.iterdir()]
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


async def test_grid_with_cap_one_parent_and_rerun_failed(engine: Engine, project: Path,
                                                         tmp_path: Path) -> None:
    times = tmp_path / "times"
    times.mkdir()
    req = SweepRequest(project=str(project), parameters={
        "value": "range(0,3)", "mode": "a,b", "delay": 0.6},
        max_parallel=2, backend_config=config(project, times, fail_at=1), run_name="grid")
    view = await engine.submit_sweep(req)
    assert view.definition.points == 6 and len(view.children) == 6
    assert [c.sweep_index for c in view.children] == list(range(6))
    # First parameter varies slowest: the grid's order.
    assert [(c.parameters["value"], c.parameters["mode"]) for c in view.children] == [
        ("0", "a"), ("0", "b"), ("1", "a"), ("1", "b"), ("2", "a"), ("2", "b")]
    assert sum(c.held for c in view.children) == 4  # only two started
    view = await wait_all(engine, view.id)
    assert len(list(times.iterdir())) == 6
    assert overlap(times) <= 2  # the cap held
    by_state = {c.sweep_index: c for c in view.children}
    assert {i for i, c in by_state.items() if c.state == RunState.FAILED} == {2, 3}
    assert all(by_state[i].exit_code == 3 for i in (2, 3))
    assert view.state == RunState.FAILED and view.counts == {"FINISHED": 4, "FAILED": 2}

    # MLflow: one parent, six children nested under it, each with its own metrics.
    client = MlflowClient(engine.tracking_uri)
    parent = client.get_run(view.mlflow_run_id)
    assert parent.data.tags["hpcml.sweep_id"] == view.id
    assert parent.info.status == "FAILED"
    kids = client.search_runs([view.mlflow_experiment_id],
                              f"tags.`mlflow.parentRunId` = '{view.mlflow_run_id}'")
    assert sorted(r.info.run_id for r in kids) == sorted(c.mlflow_run_id for c in view.children)
    for child in view.children:
        history = client.get_metric_history(child.mlflow_run_id, "score")
        value = int(child.parameters["value"])
        assert [(m.step, m.value) for m in history] == [(0, value * 10.0), (1, value * 10.0 + 1)]

    # Re-run only the failed children: same snapshot, the fix as a config override.
    again = await engine.rerun_sweep(view.id, SweepRerunRequest(
        overrides=["Environment.Variables.HPCML_FAIL_AT=-1"]))
    new = [c for c in again.children if c.rerun_of]
    assert sorted(c.sweep_index for c in new) == [2, 3]
    assert {c.rerun_of for c in new} == {by_state[2].id, by_state[3].id}
    assert all(c.snapshot_id == view.snapshot_id for c in new)
    done = await wait_all(engine, view.id)
    # The sweep goes by its points' latest attempts; the failed ones stay among its children.
    assert done.state == RunState.FINISHED and done.counts == {"FINISHED": 6}
    assert len(done.children) == 8
    assert {c.superseded_by for c in done.children if c.state == RunState.FAILED} == {
        c.id for c in new}
    assert all(c.state == RunState.FINISHED for c in done.children if c.rerun_of)
    assert client.get_run(view.mlflow_run_id).info.status in ("FINISHED", "FAILED")
    with pytest.raises(Conflict):
        await engine.rerun_sweep(view.id, SweepRerunRequest())


async def test_bad_values_named_before_anything_is_created(engine: Engine,
                                                           project: Path) -> None:
    req = SweepRequest(project=str(project), parameters={"value": "1,x,2", "delay": "abc"})
    with pytest.raises(UserInputError) as err:
        await engine.submit_sweep(req)
    keys = {p.key for p in err.value.problems}
    assert keys == {"parameters.value", "parameters.delay"}
    assert "'x'" in str(err.value) and "'abc'" in str(err.value)
    assert await engine.list_sweeps() == []
    assert (await engine.list_runs())[1] == 0


async def test_cancel_sweep_cancels_running_and_held(engine: Engine, project: Path,
                                                     tmp_path: Path) -> None:
    times = tmp_path / "times"
    times.mkdir()
    view = await engine.submit_sweep(SweepRequest(
        project=str(project), parameters={"value": "1,2,3,4", "delay": 60},
        max_parallel=1, backend_config=config(project, times)))
    cancelled = await engine.cancel_sweep(view.id)
    assert {c.state for c in cancelled.children if c.held is False} <= {
        RunState.CANCELLED, RunState.RUNNING, RunState.QUEUED}
    view = await wait_all(engine, view.id, timeout=30)
    assert view.state == RunState.CANCELLED
    assert view.counts == {"CANCELLED": 4}
    assert len(list(times.iterdir())) == 0  # nothing ran to its end


async def test_preview_counts_without_creating(engine: Engine, project: Path) -> None:
    preview = await engine.preview_sweep(SweepRequest(
        project=str(project), parameters={"value": "range(0,10)", "mode": "a,b,c"}))
    assert preview.points == 30 and preview.mode == "grid"
    assert preview.sample[0] == {"value": "0", "mode": "a", "delay": "0.5"}
    assert await engine.list_sweeps() == []


def test_sweep_ids_are_never_run_ids() -> None:
    assert Engine.is_sweep_id("s0a1b2c3d4e5") and Engine.is_sweep_id("s0a1")
    assert not Engine.is_sweep_id("0a1b2c3d4e5f") and not Engine.is_sweep_id("s0")

