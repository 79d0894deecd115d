"""Engine benchmarks; prints figures, asserts nothing.

1. submit-to-RUNNING latency of the local backend (median of 20), next to starting the
   same command with plain ``subprocess``;
2. REST ``GET /hpcml/api/runs`` latency with 10,000 runs in the store (p50/p95), against
   a real jupyter server process;
3. import time of the server extension (median of 5 fresh interpreters).

Run: ``.venv/bin/python bench/bench_engine.py`` (about a minute).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MLPROJECT = """name: bench
entry_points:
  main:
    parameters: {n: {type: int, default: 1}}
    command: "python -c 'print({n})'"
"""


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def bench_submit(tmp: Path) -> None:
    from jupyterlab_hpcml.engine.requests import SubmitRequest
    from jupyterlab_hpcml.engine.service import Engine

    project = tmp / "project"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT)
    engine = Engine(data_dir=tmp / "data")
    await engine.runs.submit(SubmitRequest(project=str(project)))  # warm-up: MLflow import, DB init
    submit_ms = []
    for i in range(20):
        t0 = time.perf_counter()
        run = await engine.runs.submit(SubmitRequest(project=str(project), parameters={"n": i}))
        submit_ms.append((time.perf_counter() - t0) * 1000)
        assert run.state.value == "RUNNING", run.state
    await engine.close()

    plain_ms = []
    for i in range(20):
        t0 = time.perf_counter()
        proc = subprocess.Popen(["bash", "-c", f"python -c 'print({i})'"], cwd=project,
                                stdout=subprocess.DEVNULL)
        plain_ms.append((time.perf_counter() - t0) * 1000)
        proc.wait()
    print(f"submit→RUNNING, local backend: median {statistics.median(submit_ms):.1f} ms "
          f"(p95 {pct(submit_ms, 0.95):.1f} ms) over 20 submissions")
    print(
        f"plain subprocess.Popen of the same command: median {statistics.median(plain_ms):.1f} ms"
    )


def fill_store(data: Path, n: int) -> None:
    from jupyterlab_hpcml.core.states import RunState
    from jupyterlab_hpcml.engine.models import RunRecord, StateChange
    from jupyterlab_hpcml.engine.store import RunStore

    store = RunStore(data / "runs.sqlite")
    now = time.time() - n
    states = [RunState.FINISHED, RunState.FAILED, RunState.CANCELLED]
    for i in range(n):
        state = states[i % 3]
        store.insert(RunRecord(
            id=uuid.uuid4().hex[:12], name=f"run-{i}", project_path="/p/digits",
            project_name="digits", entry_point="train", command="python train.py",
            parameters={"lr": "0.01", "epochs": str(i % 50)}, backend="local", state=state,
            state_history=[StateChange(state=RunState.SUBMITTING, at=now + i),
                           StateChange(state=state, at=now + i + 1)],
            backend_job_id=str(10_000 + i), created_at=now + i, updated_at=now + i + 1,
        ))
    store.close()


def bench_rest_list(tmp: Path, n: int = 10_000, calls: int = 200) -> None:
    data = tmp / "rest-data"
    t0 = time.perf_counter()
    fill_store(data, n)
    print(f"filled the store with {n} runs in {time.perf_counter() - t0:.1f} s")
    port, token = 18888, "bench-token"
    env = {**os.environ, "HPCML_DATA_DIR": str(data),
           "MLFLOW_TRACKING_URI": f"sqlite:///{data}/mlflow.db",
           "JUPYTER_CONFIG_DIR": str(tmp / "jcfg"), "JUPYTER_RUNTIME_DIR": str(tmp / "jrt")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
         f"--ServerApp.port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={tmp}", "--ServerApp.jpserver_extensions=jupyterlab_hpcml=True"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        def get(query: str) -> float:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/hpcml/api/runs?{query}",
                                         headers={"Authorization": f"token {token}"})
            t = time.perf_counter()
            with urllib.request.urlopen(req, timeout=30) as resp:
                resp.read()
            return (time.perf_counter() - t) * 1000

        for _ in range(300):
            try:
                get("limit=1")
                break
            except OSError:
                time.sleep(0.1)
        for query in (
            "limit=50",
            "limit=50&state=FAILED",
            "limit=50&q=run-99",
            "limit=50&offset=5000",
        ):
            times = [get(query) for _ in range(calls)]
            print(f"GET /hpcml/api/runs?{query} with {n} runs: p50 {pct(times, 0.5):.1f} ms, "
                  f"p95 {pct(times, 0.95):.1f} ms ({calls} calls)")
    finally:
        server.terminate()
        server.wait(20)


def bench_import() -> None:
    code = ("import time, jupyter_server.extension.application, pydantic, jsonschema, yaml;"
            "t=time.perf_counter(); import jupyterlab_hpcml.app;"
            "own=time.perf_counter()-t; import sys;"
            "print(own, 'mlflow' in sys.modules)")
    code_total = ("import time; t=time.perf_counter(); import jupyterlab_hpcml.app;"
                  "print(time.perf_counter()-t)")
    own, total = [], []
    mlflow_loaded = False
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=REPO).stdout.split()
        own.append(float(out[0]) * 1000)
        mlflow_loaded |= out[1] == "True"
        out = subprocess.run([sys.executable, "-c", code_total], capture_output=True, text=True,
                             check=True, cwd=REPO).stdout
        total.append(float(out) * 1000)
    print(f"import jupyterlab_hpcml.app: median {statistics.median(total):.0f} ms in a fresh "
          f"interpreter (jupyter_server, pydantic, jsonschema included); "
          f"{statistics.median(own):.0f} ms on top of those; mlflow imported: {mlflow_loaded}")


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hpcml-bench-"))
    os.environ["HPCML_DATA_DIR"] = str(tmp / "data")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/data/mlflow.db"
    try:
        bench_import()
        asyncio.run(bench_submit(tmp))
        bench_rest_list(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
