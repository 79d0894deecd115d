"""UI benchmark in headless Chromium; prints figures, asserts nothing.

1. time to render the runs tab with 10,000 runs in the store (command → first rows
   painted), and to jump to the middle of the list (scroll → that page fetched and painted);
2. the server's answer for the charts of a 100,000-point metric, on its first call
   after start-up (cold) and on later calls (warm);
3. time to render a chart of a 100,000-point metric (command → canvas drawn), with
   the share spent in the browser drawing it.

The store is filled directly (RunStore + RunRecord, as bench_engine.py does); the
100,000 points are logged with MLflow's client to an MLflow run that one run record
references. Then a real `jupyter lab` with the extension serves them and Debian's
Chromium (/usr/bin/chromium, or $HPCML_CHROMIUM) drives the lab via playwright-core
from ui-tests/node_modules (bench/bench_ui.js).

Run: ``.venv/bin/python bench/bench_ui.py`` (about two minutes; needs the
labextension built and ui-tests' node modules installed).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

N_RUNS = 10_000
N_POINTS = 100_000


def log_big_metric(tracking_uri: str) -> tuple[str, str]:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.create_experiment("bench-ui")
    run = client.create_run(exp, run_name="bench-100k")
    now = int(time.time() * 1000) - N_POINTS * 10
    for start in range(0, N_POINTS, 1000):  # MLflow takes at most 1000 metrics per batch
        client.log_batch(run.info.run_id, metrics=[
            Metric("loss", 1.0 / (1 + i) + (0.5 if i % 997 == 0 else 0.0), now + i * 10, i)
            for i in range(start, min(start + 1000, N_POINTS))
        ])
    client.set_terminated(run.info.run_id, "FINISHED")
    return exp, run.info.run_id


def add_chart_run(data: Path, exp: str, mlflow_run: str) -> str:
    from jupyterlab_hpcml.core.states import RunState
    from jupyterlab_hpcml.engine.models import RunRecord, StateChange
    from jupyterlab_hpcml.engine.store import RunStore

    store = RunStore(data / "runs.sqlite")
    now = time.time()
    store.insert(RunRecord(
        id="bench100kpts", name="bench-100k", project_path="/p/digits", project_name="digits",
        entry_point="train", command="python train.py", parameters={"epochs": "100000"},
        backend="local", state=RunState.FINISHED, mlflow_experiment_id=exp,
        mlflow_experiment_name="bench-ui", mlflow_run_id=mlflow_run,
        state_history=[StateChange(state=RunState.SUBMITTING, at=now - 60),
                       StateChange(state=RunState.RUNNING, at=now - 59),
                       StateChange(state=RunState.FINISHED, at=now - 1)],
        created_at=now, updated_at=now,
    ))
    store.close()
    return "bench100kpts"


def main() -> None:
    from bench_engine import fill_store

    tmp = Path(tempfile.mkdtemp(prefix="hpcml-bench-ui-"))
    data = tmp / "data"
    tracking = f"sqlite:///{data}/mlflow.db"
    t0 = time.perf_counter()
    fill_store(data, N_RUNS)
    print(f"filled the store with {N_RUNS} runs in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    exp, mlflow_run = log_big_metric(tracking)
    run_id = add_chart_run(data, exp, mlflow_run)
    print(f"logged {N_POINTS} points of one metric with MLflow in {time.perf_counter() - t0:.1f} s")

    port, token = int(os.environ.get("HPCML_BENCH_PORT", "18899")), "bench-token"
    env = {**os.environ, "HPCML_DATA_DIR": str(data), "MLFLOW_TRACKING_URI": tracking,
           "JUPYTER_CONFIG_DIR": str(tmp / "jcfg"), "JUPYTER_RUNTIME_DIR": str(tmp / "jrt")}
    lab = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
         f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={tmp}", "--ServerApp.jpserver_extensions=jupyterlab_hpcml=True",
         "--LabApp.expose_app_in_browser=True"],  # window.jupyterapp, as Galata uses it
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/hpcml/api/runs-view/histories?run={run_id}&max_points=1500",
            headers={"Authorization": f"token {token}"})
        # Cold: the server's first metric request (nothing of the tracking store opened yet).
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=60) as resp:
            body = json.loads(resp.read())
        print(f"server: histories of the 100k-point metric, downsampled to "
              f"{len(body['runs'][0]['metrics'][0]['points'])} points: "
              f"{(time.perf_counter() - t) * 1000:.0f} ms (cold: first call)")
        warm = []
        for _ in range(5):
            t = time.perf_counter()
            with urllib.request.urlopen(req, timeout=60) as resp:
                resp.read()
            warm.append((time.perf_counter() - t) * 1000)
        print(f"server: the same again (warm): median {statistics.median(warm):.0f} ms "
              f"(min {min(warm):.0f}, max {max(warm):.0f}) over {len(warm)}")
        out = subprocess.run(
            ["node", str(REPO / "bench" / "bench_ui.js")],
            env={**os.environ, "BENCH_URL": f"http://127.0.0.1:{port}", "BENCH_TOKEN": token,
                 "BENCH_RUN": run_id, "BENCH_TOTAL": str(N_RUNS + 1)},
            capture_output=True, text=True, timeout=600,
        )
        sys.stdout.write(out.stdout)
        if out.returncode:
            sys.stderr.write(out.stderr)
            raise SystemExit(out.returncode)
    finally:
        lab.terminate()
        lab.wait(timeout=30)


if __name__ == "__main__":
    main()
