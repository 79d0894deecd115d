"""Schedule benchmarks: what firing costs; prints figures, asserts nothing.

1. An idle pass (``ScheduleService.tick`` with nothing due) over N schedules: what every
   server and ``hpcml scheduler`` pays every few seconds.
2. A pass where N schedules are due at once: recording N firings in one write transaction
   (``take_due``) and submitting their runs (local backend, four at a time).
3. Lateness: one-off schedules due a second ahead, fired by the real loop
   (``ScheduleLoop``): scheduled time → the run's record created, per firing.

Run: ``.venv/bin/python bench/bench_schedules.py`` (``--schedules N``).
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MLPROJECT = """name: bench
entry_points:
  main:
    command: "python -c 'pass'"
"""


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def run(n: int) -> None:
    from jupyterlab_hpcml.engine.requests import ScheduleRequest
    from jupyterlab_hpcml.engine.schedules import plan_due
    from jupyterlab_hpcml.engine.service import Engine

    tmp = Path(tempfile.mkdtemp(prefix="bench-schedules-"))
    try:
        project = tmp / "project"
        project.mkdir()
        (project / "MLproject").write_text(MLPROJECT)
        engine = Engine(data_dir=tmp / "data", poll_interval=0.5)
        clock = [time.time()]
        engine.schedules.clock = lambda: clock[0]

        t0 = time.perf_counter()
        for i in range(n):
            await engine.create_schedule(ScheduleRequest(
                project=str(project), cron=f"{i % 60} * * * *", timezone="Europe/Zurich",
                name=f"s{i}", overlap="allow"))
        print(f"create {n} schedules: {ms((time.perf_counter() - t0) / n)} each")

        # 1. idle passes
        passes = []
        for _ in range(20):
            t0 = time.perf_counter()
            await engine.schedules.tick()
            passes.append(time.perf_counter() - t0)
        print(f"idle pass over {n} schedules: median {ms(statistics.median(passes))}, "
              f"max {ms(max(passes))}")

        # 2. all due at once: record, then submit
        clock[0] += 3600
        t0 = time.perf_counter()
        taken = await asyncio.to_thread(engine.schedules.store.take_due, clock[0], plan_due)
        recorded = time.perf_counter() - t0
        t0 = time.perf_counter()
        fired = await engine.schedules.tick()
        submitted = time.perf_counter() - t0
        print(f"{len(taken)} due at once: recorded in one transaction in {ms(recorded)}; "
              f"{len(fired)} runs submitted in {submitted:.2f} s "
              f"({ms(submitted / max(len(fired), 1))} per run)")
        await ended(engine)
        await engine.close()

        # 3. lateness with the real loop and the real clock
        engine = Engine(data_dir=tmp / "data2", poll_interval=0.5, fire_schedules=True)
        engine.start()
        lateness = []
        for _ in range(5):
            at = datetime.now(timezone.utc) + timedelta(seconds=3)
            view = await engine.create_schedule(ScheduleRequest(
                project=str(project), at=at.isoformat(), timezone="UTC"))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                runs, _ = await engine.list_runs(schedule=view.id)
                if runs:
                    lateness.append(runs[0].created_at - (view.at or 0))
                    break
                await asyncio.sleep(0.05)
        print(f"one-off firing lateness (scheduled time → run record), {len(lateness)} "
              f"firings: median {ms(statistics.median(lateness))}, max {ms(max(lateness))} "
              f"({', '.join(ms(x) for x in lateness)})")
        await ended(engine)
        await engine.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def ended(engine: Any) -> None:
    """Every run ended (their processes write to the stores until then)."""
    while engine.store.active():
        await engine.refresh()
        await asyncio.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.schedules))


if __name__ == "__main__":
    main()
