"""Requeue through the Engine on the real test cluster: a sweep's children survive an
admin's ``scontrol requeue`` and their time limit (USR2 → checkpoint → requeue), each as
ONE run: the same MLflow run with every step logged once and in order, the log appended,
the restarts in the run's history. (Backend-level details: tests/test_slurm_requeue.py.)"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.requests import SweepRequest
from jupyterlab_hpcml.engine.service import Engine

from . import slurm_cluster
from .slurm_cluster import slurm, ssh_cmd  # noqa: F401 - fixture

TRAIN = '''import os, signal, sys, time
import mlflow
ck = os.path.join(os.environ["HPCML_CHECKPOINT_DIR"], "step")
step = int(open(ck).read()) if os.path.exists(ck) else 0
print("start", step, "restart", os.environ["HPCML_RESTART_COUNT"], flush=True)
stop = []
signal.signal(signal.SIGUSR2, lambda *a: stop.append(1))
total = int(sys.argv[1])
with mlflow.start_run():
    while step < total:
        if stop:
            print("checkpointed at", step, flush=True)
            sys.exit(0)
        time.sleep(1)
        step += 1
        mlflow.log_metric("progress", float(step), step=step)
        with open(ck + ".tmp", "w") as f:
            f.write(str(step))
        os.replace(ck + ".tmp", ck)
        print("step", step, flush=True)
print("done", step, flush=True)
'''
MLPROJECT = '''name: requeue
entry_points:
  main:
    parameters:
      total: {type: int, default: 45}
      tag: {type: string, default: a}
    command: "python train.py {total}"
'''


async def test_children_requeued_by_admin_and_by_time_limit_stay_one_run(
        tmp_path: Path, slurm: dict[str, str]) -> None:  # noqa: F811
    project = tmp_path / "requeue"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT)
    (project / "train.py").write_text(TRAIN)
    # 45 s of work under a 1-minute limit: no start can do it all before USR2 (10-40 s in).
    config = slurm_cluster.backend_config(slurm, Resources={
        "Runtime": 60, "Requeue": True, "MaxRequeues": 3, "RequeueSignalSeconds": 20})
    (project / "slurm.yaml").write_text(yaml.safe_dump(config))
    engine = Engine(data_dir=tmp_path / "data", poll_interval=0.5,
                    tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    engine.start()
    try:
        view = await engine.submit_sweep(SweepRequest(
            project=str(project), backend_config="slurm.yaml", parameters={"tag": "a,b"}))
        first = view.children[0]
        requeued_by_admin = False
        holds = slurm_cluster.RequeueHolds(slurm)
        deadline = time.monotonic() + 280
        while True:
            view = await engine.current_sweep(view.id)
            if view.state is not None and view.state.terminal:
                break
            for child in view.children:
                if child.state == RunState.QUEUED and child.restarts:
                    holds.lift(child.backend_job_id, child.restarts)
            if not requeued_by_admin:
                log = (await engine.read_log(first.id, "stdout")).data
                if "step 3\n" in log:
                    ssh_cmd(slurm, f"scontrol requeue {first.backend_job_id}")
                    requeued_by_admin = True
            assert time.monotonic() < deadline, view.counts
            await asyncio.sleep(1)
        assert view.counts == {"FINISHED": 2}, [c.state_history for c in view.children]

        client = MlflowClient(engine.tracking_uri)
        for child in view.children:
            assert child.restarts >= 1, child.state_history
            assert any(c.message == f"requeued (restart {child.restarts})"
                       for c in child.state_history), child.state_history
            assert not any(c.state.terminal for c in child.state_history[:-1])
            steps = [m.step for m in client.get_metric_history(child.mlflow_run_id, "progress")]
            assert steps == list(range(1, 46)), steps  # one run, every step once, in order
            assert client.get_run(child.mlflow_run_id).info.status == "FINISHED"
            log = (await engine.read_log(child.id, "stdout")).data
            starts = [ln for ln in log.splitlines() if ln.startswith("start ")]
            assert starts[0] == "start 0 restart 0" and len(starts) == child.restarts + 1, log
            assert log.rstrip().endswith("done 45"), log
            err = (await engine.read_log(child.id, "stderr")).data
            assert "received SIGUSR2" in err and "requeueing job" in err, err
            assert "checkpointed at" in log, log
        assert view.children[0].restarts >= 2  # the admin's requeue and the time limit's
    finally:
        await engine.close()


