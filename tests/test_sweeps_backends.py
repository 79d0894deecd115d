"""The same 2x3 sweep with max parallel 2 on every remote backend, through the Engine:
Slurm over SSH (the real test cluster) and FirecREST (its loopback server) as ONE array job;
UNICORE (its loopback server) as six jobs, at most two active. One child fails with its
exit code, the others finish; MLflow has one parent with six nested children."""
from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.models import SweepView
from jupyterlab_hpcml.engine.requests import SweepRequest, SweepRerunRequest
from jupyterlab_hpcml.engine.service import Engine

from . import slurm_cluster
from .test_backend_contract import Skipped, firecrest_target, ssh_target, unicore_target

# Prints when it ran (read back through the engine's logs, the same on every backend).
PROBE = '''import os, sys, time
import mlflow
value = int(sys.argv[1])
print("START", time.time(), flush=True)
with mlflow.start_run():
    mlflow.log_metric("score", value * 10.0, step=0)
    time.sleep(float(sys.argv[2]))
print("END", time.time(), flush=True)
sys.exit(3 if value == int(os.environ.get("HPCML_FAIL_AT", "-1")) else 0)
'''
MLPROJECT = '''name: sweepprobe
entry_points:
  main:
    parameters:
      value: {type: int, default: 0}
      mode: {type: string, default: a}
      delay: {type: float, default: 2}
    command: "python probe.py {value} {delay} {mode}"
'''
TARGETS = {"ssh": ssh_target, "firecrest": firecrest_target, "unicore": unicore_target}


def project_for(workdir: Path, config: dict) -> Path:
    project = workdir / "sweepprobe"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT)
    (project / "probe.py").write_text(PROBE)
    config = dict(config)
    env = dict(config.get("Environment") or {})
    env["Variables"] = {**(env.get("Variables") or {}), "HPCML_FAIL_AT": "2"}
    config["Environment"] = env
    (project / "backend.yaml").write_text(yaml.safe_dump(config))
    return project


async def wait_sweep(engine: Engine, sweep_id: str, timeout: float = 180) -> SweepView:
    deadline = time.monotonic() + timeout
    while True:
        view = await engine.current_sweep(sweep_id)
        if view.state is not None and view.state.terminal:
            return view
        assert time.monotonic() < deadline, (view.counts, [c.state_history[-1]
                                                            for c in view.children])
        await asyncio.sleep(0.5)


async def spans(engine: Engine, view: SweepView) -> list[tuple[float, float]]:
    out = []
    for child in view.children:
        text = (await engine.read_log(child.id, "stdout")).data
        start = float(re.search(r"START (\S+)", text).group(1))  # type: ignore[union-attr]
        end = float(re.search(r"END (\S+)", text).group(1))  # type: ignore[union-attr]
        out.append((start, end))
    return out


def most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


@pytest.mark.parametrize("backend", list(TARGETS))
async def test_sweep_2x3_max_parallel_2(backend: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if backend == "firecrest":
        # More points than the site's largest array: split, each array after the previous.
        from jupyterlab_hpcml.backends.firecrest import FirecrestBackend
        monkeypatch.setattr(FirecrestBackend, "max_array_size", 4)
    try:
        with TARGETS[backend](tmp_path, monkeypatch, tmp_path) as target:
            project = project_for(tmp_path, target.config or {})
            engine = Engine(data_dir=tmp_path / "data", poll_interval=0.3,
                            tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
            engine.start()
            try:
                await run_sweep(backend, engine, project)
            finally:
                await engine.close()
    except Skipped as why:
        pytest.skip(str(why))


async def run_sweep(backend: str, engine: Engine, project: Path) -> None:
    view = await engine.submit_sweep(SweepRequest(
        project=str(project), backend_config="backend.yaml", max_parallel=2,
        parameters={"value": "range(0,3)", "mode": "a,b"}, run_name=f"grid-{backend}"))
    assert len(view.children) == 6, view
    arrays = engine.registry.get(view.backend, {}).supported_features().job_arrays
    job_ids = [c.backend_job_id for c in view.children]
    if arrays and backend == "firecrest":  # split at 4 tasks: two arrays, one directory
        assert len(view.array_jobs) == 2, view.array_jobs
        first, second = view.array_jobs
        assert job_ids == [*(f"{first}_{i}" for i in range(4)), f"{second}_0", f"{second}_1"]
        assert any("MaxArraySize" in n and "2 array jobs" in n for n in view.notes), view.notes
        assert {c.run_dir for c in view.children} == {view.run_dir}
    elif arrays:  # ONE array job: every child is one of its tasks
        assert len(view.array_jobs) == 1, view.array_jobs
        assert job_ids == [f"{view.array_jobs[0]}_{i}" for i in range(6)]
        assert {c.run_dir for c in view.children} == {view.run_dir}
    else:
        assert sum(c.held for c in view.children) == 4
    view = await wait_sweep(engine, view.id)
    by_index = {c.sweep_index: c for c in view.children}
    # value 2 fails: points 4 and 5 (in the second array where the sweep is split)
    assert {i for i, c in by_index.items() if c.state == RunState.FAILED} == {4, 5}, view.counts
    assert all(by_index[i].exit_code == 3 for i in (4, 5))
    assert all(by_index[i].state == RunState.FINISHED for i in (0, 1, 2, 3))
    assert most_at_once(await spans(engine, view)) <= 2
    for child in view.children:  # each child's own log, also by its tail (an array task's)
        assert (await engine.log_tail(child.id, "stdout", 1)).data.startswith("END "), child.id

    client = MlflowClient(engine.tracking_uri)
    kids = client.search_runs([view.mlflow_experiment_id],
                              f"tags.`mlflow.parentRunId` = '{view.mlflow_run_id}'")
    assert sorted(r.info.run_id for r in kids) == sorted(c.mlflow_run_id for c in view.children)
    for child in view.children:
        history = client.get_metric_history(child.mlflow_run_id, "score")
        assert [m.value for m in history] == [int(child.parameters["value"]) * 10.0]
    if backend == "ssh":
        s = slurm_cluster.cluster_settings()
        assert s is not None
        listed = slurm_cluster.ssh_cmd(
            s, f"sacct -n -X -P -o JobID -j {view.array_jobs[0]}").split()
        assert sorted(listed) == sorted(job_ids), listed
        again = await engine.rerun_sweep(view.id, SweepRerunRequest(
            overrides=["Environment.Variables.HPCML_FAIL_AT=-1"]))
        reruns = [c for c in again.children if c.rerun_of]
        assert sorted(c.sweep_index for c in reruns) == [4, 5]
        assert len(again.array_jobs) == 2  # the re-run is one more array job
        done = await wait_sweep(engine, view.id)
        assert all(c.state == RunState.FINISHED for c in done.children if c.rerun_of)


async def test_array_interrupted_mid_submission_is_adopted(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The array reached Slurm but the engine died before recording its children's job
    ids: a restarted engine finds each task's job through the array's record."""
    try:
        with ssh_target(tmp_path, monkeypatch, tmp_path) as target:
            project = project_for(tmp_path, target.config or {})
            engine = Engine(data_dir=tmp_path / "data", tracking_uri=f"sqlite:///{tmp_path}/m.db")
            view = await engine.submit_sweep(SweepRequest(
                project=str(project), backend_config="backend.yaml",
                parameters={"value": "0,1,3", "delay": 1}))  # HPCML_FAIL_AT is 2
            submitted = {c.id: c.backend_job_id for c in view.children}
            assert all(submitted.values()) and len(view.array_jobs) == 1
            dead = await asyncio.create_subprocess_exec("true")
            await dead.wait()
            for child in view.children:  # what a crash inside submit_array leaves
                engine.store.transition(child.id, RunState.SUBMITTING, backend_job_id=None,
                                        submitter_pid=dead.pid)
            await engine.close()

            restarted = Engine(data_dir=tmp_path / "data",
                               tracking_uri=f"sqlite:///{tmp_path}/m.db", poll_interval=0.3)
            restarted.start()
            try:
                done = await wait_sweep(restarted, view.id)
                assert {c.id: c.backend_job_id for c in done.children} == submitted
                assert done.counts == {"FINISHED": 3}, [c.state_history for c in done.children]
                assert all(any(h.message and "re-attached" in h.message for h in c.state_history)
                           for c in done.children)
            finally:
                await restarted.close()
    except Skipped as why:
        pytest.skip(str(why))


def test_requeue_is_noted_where_the_backend_cannot_requeue(tmp_path: Path) -> None:
    """A config asking for requeue on a backend without it says so in the run's notes."""
    from jupyterlab_hpcml.backends.firecrest import FirecrestBackend
    from jupyterlab_hpcml.backends.ssh.slurm import SlurmBackend
    from jupyterlab_hpcml.backends.unicore import UnicoreBackend

    resources = {"Resources": {"Requeue": True, "MaxRequeues": 2, "Runtime": 60}}
    for backend in (FirecrestBackend, UnicoreBackend):
        config = backend.parse_config(resources)
        notes = backend({}, tmp_path).config_notes(config)
        assert f"Resources.Requeue ignored by the {backend.kind} backend" in notes, notes
        assert not any("Runtime" in n for n in notes)
    ssh = SlurmBackend({}, tmp_path)
    assert ssh.config_notes(SlurmBackend.parse_config(resources)) == []
