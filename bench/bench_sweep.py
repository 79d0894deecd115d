"""Sweep benchmarks: a 100-point sweep next to 100 single submissions; prints figures,
asserts nothing.

For each backend (local; Slurm over SSH on the test cluster when it is running):

1. time from submit to every child QUEUED or later (``Engine.submit_sweep`` returns then),
   next to ``Engine.submit`` 100 times in a loop;
2. poll cycles (``Engine.refresh``) after: backend calls (local: one right after) or remote
   commands (Slurm: four cycles 3 s apart; scheduler commands apart from per-run file
   commands such as the offline-tracking copies of running runs, counted on the SSH
   connection) for all children;
3. local only: time until all ended.

Run: ``.venv/bin/python bench/bench_sweep.py`` (``--points N``, ``--only local|slurm``).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.slurm_cluster import backend_config, cluster_settings, skip_reason  # noqa: E402

MLPROJECT = """name: bench
entry_points:
  main:
    parameters: {n: {type: int, default: 0}}
    command: "python -c 'print({n})'"
"""
BACKEND_METHODS = ("poll", "submit", "submit_array", "prepare", "cancel", "read")
ACTIVE = ("SUBMITTING", "QUEUED", "RUNNING", "UNKNOWN")


def count_calls(backend: Any, calls: Counter[str]) -> Callable[[], None]:
    """Count ``backend``'s contract calls into ``calls`` (measuring only); returns undo."""
    for name in BACKEND_METHODS:
        original = getattr(backend, name, None)
        if original is None:
            continue

        def wrap(fn: Any, key: str) -> Any:
            async def counted(*a: Any, **k: Any) -> Any:
                calls[key] += 1
                if key == "poll" and a:
                    calls["jobs polled"] += len(a[0])
                return await fn(*a, **k)
            return counted

        setattr(backend, name, wrap(original, name))

    def undo() -> None:
        for name in BACKEND_METHODS:
            backend.__dict__.pop(name, None)
    return undo


def fmt_calls(calls: Counter[str] | dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(calls.items()) if n) or "none"


async def settle(engine: Any, run: Any, timeout: float = 300) -> None:
    """Wait until the warm-up run ended: the poll cycles measured count only the children."""
    deadline = time.perf_counter() + timeout
    while not (await engine.current(run.id)).state.terminal and time.perf_counter() < deadline:
        await asyncio.sleep(0.2)


def states(records: list[Any]) -> str:
    c = Counter(r.state.value + (" (held)" if getattr(r, "held", False) else "")
                for r in records)
    return ", ".join(f"{n} {s}" for s, n in c.most_common())


async def bench_local(tmp: Path, points: int) -> None:
    from jupyterlab_hpcml.engine.requests import SubmitRequest, SweepRequest
    from jupyterlab_hpcml.engine.service import Engine

    project = tmp / "local-project"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT)
    print(f"local backend, {points} points, entry point `python -c 'print(n)'`")
    for label, cap in (("sweep, max-parallel = points", points),
                       ("sweep, default max-parallel (CPUs)", None)):
        engine = Engine(data_dir=tmp / f"data-{cap}")
        await settle(engine, await engine.submit(SubmitRequest(project=str(project))))  # warm-up
        t0 = time.perf_counter()
        view = await engine.submit_sweep(SweepRequest(
            project=str(project), parameters={"n": f"range(0,{points})"}, max_parallel=cap))
        took = time.perf_counter() - t0
        print(f"  {label:38}: submit→all QUEUED-or-later {took:6.2f} s "
              f"({took / points * 1000:.0f} ms/child); at return: {states(view.children)}")
        backend = engine.registry.for_run(view.children[0])
        calls: Counter[str] = Counter()
        undo = count_calls(backend, calls)
        t0 = time.perf_counter()
        await engine.refresh()
        cycle = time.perf_counter() - t0
        undo()
        print(f"  {'':38}  one poll cycle: backend calls {fmt_calls(calls)}, "
              f"{cycle * 1000:.0f} ms")
        t0 = time.perf_counter()
        while (view := await engine.current_sweep(view.id)).state is None or \
                not view.state.terminal:
            if time.perf_counter() - t0 > 600:
                break
            await asyncio.sleep(0.2)
        print(f"  {'':38}  then until all ended: {time.perf_counter() - t0:6.2f} s "
              f"({view.state.value if view.state else '-'})")
        await engine.close()

    engine = Engine(data_dir=tmp / "data-single")
    await settle(engine, await engine.submit(SubmitRequest(project=str(project))))
    t0 = time.perf_counter()
    runs = [await engine.submit(SubmitRequest(project=str(project), parameters={"n": i}))
            for i in range(points)]
    took = time.perf_counter() - t0
    print(f"  {f'{points} x Engine.submit':38}: submit→all QUEUED-or-later {took:6.2f} s "
          f"({took / points * 1000:.0f} ms/run); at return: {states(runs)}")
    backend = engine.registry.for_run(runs[0])
    calls = Counter()
    undo = count_calls(backend, calls)
    t0 = time.perf_counter()
    await engine.refresh()
    cycle = time.perf_counter() - t0
    undo()
    print(f"  {'':38}  one poll cycle: backend calls {fmt_calls(calls)}, "
          f"{cycle * 1000:.0f} ms")
    from jupyterlab_hpcml.core.states import RunState

    t0 = time.perf_counter()
    while (await engine.list_runs(states=[RunState(a) for a in ACTIVE], limit=1))[1]:
        if time.perf_counter() - t0 > 600:
            break
        await asyncio.sleep(0.2)
        await engine.refresh()
    print(f"  {'':38}  then until all ended: {time.perf_counter() - t0:6.2f} s")
    await engine.close()


async def bench_slurm(tmp: Path, points: int, cap: int) -> None:
    reason = skip_reason()
    if reason:
        print(f"Slurm over SSH: skipped: {reason}")
        return
    s = cluster_settings()
    assert s
    os.environ["HPCML_SSH_KNOWN_HOSTS"] = s["HPCML_TEST_SSH_KNOWN_HOSTS"]
    import yaml

    from jupyterlab_hpcml.backends.ssh.slurm import SlurmBackend
    from jupyterlab_hpcml.engine.config import parse_backend_config
    from jupyterlab_hpcml.engine.requests import SubmitRequest, SweepRequest
    from jupyterlab_hpcml.engine.service import Engine

    SlurmBackend.backoff_start = SlurmBackend.backoff_max = 0.0
    project = tmp / "slurm-project"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT)
    cfg_data = backend_config(s)
    (project / "slurm.yaml").write_text(yaml.safe_dump(cfg_data))
    engine = Engine(data_dir=tmp / "data-slurm")
    cfg = parse_backend_config(cfg_data)
    backend = engine.registry.get(cfg.kind, cfg.data, cfg.connection_name)
    conn = backend.conn
    jobs: list[str] = []  # ours only: the cluster may be shared with tests
    try:
        res = await conn.run("squeue -t all -h -r | wc -l; scontrol show config | "
                             "sed -n 's/^MaxJobCount *= *//p'")
        held, limit = (int(x) for x in res.out.split()[:2])
        if held + 2 * points + 10 > limit:
            print(f"Slurm over SSH: skipped, slurmctld holds {held} job records "
                  f"(MaxJobCount {limit}); ended ones are purged after MinJobAge")
            return
        req = SubmitRequest(project=str(project), backend_config="slurm.yaml")
        warm = await engine.submit(req)  # connects, uploads the helper and the code
        jobs.append(warm.backend_job_id or "")
        await settle(engine, warm)
        print(f"Slurm over SSH (test cluster), {points} points, max-parallel {cap} "
              f"(exec commands counted; SFTP transfers are not)")

        def commands() -> Counter[str]:
            return Counter(dict(conn.stats.commands))

        before = commands()
        t0 = time.perf_counter()
        view = await engine.submit_sweep(SweepRequest(
            project=str(project), backend_config="slurm.yaml",
            parameters={"n": f"range(0,{points})"}, max_parallel=cap))
        took = time.perf_counter() - t0
        sent = commands() - before
        jobs += view.array_jobs
        print(f"  {'sweep (one array job)':30}: submit→all QUEUED-or-later {took:6.2f} s; "
              f"{sum(sent.values())} remote command(s) ({fmt_calls(sent)}); "
              f"array job(s) {', '.join(view.array_jobs) or '-'}; at return: "
              f"{states(view.children)}")
        sweep_id = view.id

        async def sweep_states() -> str:
            return states((await engine.get_sweep(sweep_id)).children)

        await poll_cycles(engine, commands, sweep_states)
        await conn.run("scancel " + " ".join(view.array_jobs))

        before = commands()
        t0 = time.perf_counter()
        runs = []
        for i in range(points):
            run = await engine.submit(SubmitRequest(
                project=str(project), backend_config="slurm.yaml", parameters={"n": i}))
            runs.append(run)
            jobs.append(run.backend_job_id or "")
        took = time.perf_counter() - t0
        sent = commands() - before
        print(f"  {f'{points} x Engine.submit':30}: submit→all QUEUED-or-later {took:6.2f} s; "
              f"{sum(sent.values())} remote command(s) ({fmt_calls(sent)}); at return: "
              f"{states(runs)}")
        async def single_states() -> str:
            return states([await engine.get(r.id) for r in runs])

        await poll_cycles(engine, commands, single_states)
    finally:
        ids = " ".join(j for j in jobs if j)
        if ids:
            await conn.run(f"scancel {ids}")
        await engine.close()


async def poll_cycles(engine: Any, commands: Callable[[], Counter[str]],
                      now: Callable[[], Any], cycles: int = 4, gap: float = 3.0) -> None:
    """A few poll cycles ``gap`` seconds apart: remote commands of each (the scheduler's
    squeue/sacct apart from per-run file commands) and the runs' states after it."""
    for n in range(cycles):
        if n:
            await asyncio.sleep(gap)
        before = commands()
        t0 = time.perf_counter()
        await engine.refresh()
        took = time.perf_counter() - t0
        sent = commands() - before
        scheduler = sum(v for k, v in sent.items() if k in ("squeue", "sacct", "scontrol"))
        print(f"  {'':30}  poll cycle {n + 1}: {scheduler} scheduler command(s), "
              f"{sum(sent.values())} in all ({fmt_calls(sent)}), {took * 1000:.0f} ms; "
              f"then {await now()}")


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hpcml-bench-sweep-"))
    os.environ["HPCML_DATA_DIR"] = str(tmp / "data")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
    try:
        if args.only in (None, "local"):
            await bench_local(tmp, args.points)
        if args.only in (None, "slurm"):
            await bench_slurm(tmp, args.points, args.max_parallel)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--max-parallel", type=int, default=10,
                        help="the Slurm sweep's cap (default %(default)s)")
    parser.add_argument("--only", choices=("local", "slurm"))
    asyncio.run(main(parser.parse_args()))
