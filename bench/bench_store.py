"""Run store latency with 10,000 runs; prints figures, asserts nothing.

Run: ``.venv/bin/python bench/bench_store.py`` (a few seconds).
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.models import RunRecord
from jupyterlab_hpcml.engine.store import RunStore

N = 10_000


def record(i: int) -> RunRecord:
    project = f"project-{i % 20}"
    # Mostly ended, as in a long-used store; 2% still active.
    state = (RunState.RUNNING if i % 100 else RunState.QUEUED) if i % 50 == 0 else (
        RunState.FAILED if i % 10 == 3 else RunState.FINISHED)
    return RunRecord(
        id=f"{i:08x}-run", name=f"sweep {i}", project_path=f"/home/u/{project}",
        project_name=project, entry_point="train", command="python train.py", backend="local",
        state=state, backend_job_id=str(100_000 + i), mlflow_experiment_name=f"exp-{i % 7}",
        mlflow_experiment_id=str(i % 7), created_at=1.7e9 + i,
    )


def timings(call: Callable[[], object], repeat: int = 50) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * len(samples)) - 1]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="hpcml-bench-store-") as tmp:
        store = RunStore(Path(tmp) / "runs.sqlite")
        start = time.perf_counter()
        for i in range(N):
            store.insert(record(i))
        print(f"insert: {(time.perf_counter() - start) * 1000 / N:.2f} ms/run ({N} runs)")
        cases: dict[str, Callable[[], object]] = {
            "page 1": lambda: store.list(limit=50),
            "page 100 (offset 4950)": lambda: store.list(limit=50, offset=4950),
            "state in (RUNNING, QUEUED)": lambda: store.list(
                states=[RunState.RUNNING, RunState.QUEUED]
            ),
            "project": lambda: store.list(project="project-3"),
            "experiment": lambda: store.list(experiment="exp-2"),
            "text 'sweep 12'": lambda: store.list(text="sweep 12"),
            "runs tab rows, by duration": lambda: store.rows(sort="duration", limit=100),
            f"active() ({len(store.active())} runs)": store.active,
            "get by prefix": lambda: store.get("0000270f"),
        }
        print(f"latency with {N} runs (page of 50 + total unless noted; 50 calls):")
        for label, call in cases.items():
            p50, p95 = timings(call)
            print(f"  {label:28s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms")
        store.close()


if __name__ == "__main__":
    main()
