"""Latency of the REST API under load, with many active runs; prints figures, asserts nothing.

A real ``jupyter server`` with the extension (a subprocess) on a fresh data dir serves
C clients (default 50) that each send one request, wait ``--think`` seconds (default ~1 s,
drawn from 0.5x..1.5x so that clients do not march in step) and go again, for
``--duration`` seconds, with this route mix:

    GET /runs?limit=50&offset=…        a page of whole runs (API, CLI, the detail views)   25 %
    GET /runs-view/rows?limit=100&…    a page of the runs tab (sorted by a random column)  25 %
    GET /runs/<id>                     one run, any of them                                20 %
    GET /runs/<id>/logs/stdout         a log chunk of a real run (read over SSH)           15 %
    GET /runs/<id>/metrics             the metrics of a real run (MLflow store)            15 %

The active runs are on the Slurm test cluster (``sudo scripts/test-cluster-start.sh``):
a few real runs of the toy project are submitted through the API and run to their end
(their logs and metrics feed the log and metric routes), then N records (default 1,000)
are added to the run store, each a copy of a real record (same project, command, config,
MLflow run) attached to one element of a held job array (``sbatch --hold --array``). So
the server's poller polls N live, pending jobs of the real cluster every 2 s, and the
listings serve N records shaped like real ones, while the shared cluster holds one pending
array record instead of N jobs (nothing of it ever runs). The bench cancels exactly its
own job ids at the end (``scancel <ids>``, never ``-u``).

Event-loop stalls are measured inside the server: the bench loads this file as a second
server extension (``_load_jupyter_server_extension`` below), which samples the loop's lag
every 10 ms and times Python's garbage collections, and answers ``/hpcml-bench/probe``.
Lag is wall time; "busy" is the server's CPU time during a late sample, which tells a stall
of the server's own making from the OS giving the core to someone else on a shared
machine. Server CPU per request is printed for the same reason. Then the same clients
without think time give the saturation throughput.

To compare two versions, put a copy of the package first: ``PYTHONPATH=/tmp/old
.venv/bin/python bench/bench_load.py`` (the server and the bench then import it).

Run: ``.venv/bin/python bench/bench_load.py [--runs 1000 --clients 50 --think 1
--duration 60 --repeat 3]`` (develop with ``--runs 100 --duration 20``). The machine may be
shared: the load average is printed, ``--repeat`` prints medians of the repeats.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PROBE = "/hpcml-bench/probe"
API = "/hpcml/api"


# ---------------------------------------------------------------- the probe (in the server)

class _Probe:
    """Loop lag (how late a 10 ms sleep wakes up) and garbage-collection pauses."""

    period = 0.01

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.busy: list[float] = []
        self.gc_pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._gc_start = 0.0
        self.task: asyncio.Task[None] | None = None
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc_pauses[info["generation"]].append(time.perf_counter() - self._gc_start)

    async def sample(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t, cpu = loop.time(), time.process_time()
            await asyncio.sleep(self.period)
            self.lags.append(loop.time() - t - self.period)
            # The server's CPU time meanwhile (all threads: a collection may run in a
            # worker thread, holding the GIL): a stall of the server's own making, not
            # the OS giving the core to another process on a shared machine.
            self.busy.append(time.process_time() - cpu)

    def reset(self) -> None:
        self.lags = []
        self.busy = []
        self.gc_pauses = {0: [], 1: [], 2: []}

    def summary(self, count_objects: bool) -> dict[str, Any]:
        lags = sorted(self.lags) or [0.0]
        out: dict[str, Any] = {
            "samples": len(self.lags),
            "lag_p99": pct(lags, 0.99), "lag_max": lags[-1],
            "stalls_over_50ms": sum(x > 0.05 for x in lags),
            "stalls_over_100ms": sum(x > 0.1 for x in lags),
            "busy_max": max(self.busy, default=0.0),
            "busy_over_100ms": sum(x > 0.1 for x in self.busy),
            "gc": {str(g): {"n": len(p), "max": max(p, default=0.0), "total": sum(p)}
                   for g, p in self.gc_pauses.items()},
            "gc_frozen": gc.get_freeze_count(),
        }
        if count_objects:
            out["gc_tracked"] = len(gc.get_objects())  # slow: only at the end
        return out


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from jupyter_server.base.handlers import APIHandler
    from tornado import web

    probe = _Probe()

    class ProbeHandler(APIHandler):
        @web.authenticated
        async def get(self) -> None:
            if probe.task is None:
                probe.task = asyncio.get_running_loop().create_task(probe.sample())
            if self.get_query_argument("reset", None):
                probe.reset()
                self.finish("{}")
                return
            self.finish(json.dumps(probe.summary(bool(self.get_query_argument("objects", None)))))

    serverapp.web_app.add_handlers(".*$", [(PROBE, ProbeHandler)])


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "bench_load"}]


# ---------------------------------------------------------------- figures

def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def latency_line(name: str, values: list[float], errors: int, seconds: float) -> dict[str, float]:
    v = sorted(values)
    fig = {"n": len(v), "rps": len(v) / seconds, "p50": pct(v, 0.5) * 1000,
           "p95": pct(v, 0.95) * 1000, "p99": pct(v, 0.99) * 1000,
           "max": (v[-1] if v else float("nan")) * 1000, "errors": errors}
    print(f"   {name:<14} {fig['n']:6d} {fig['rps']:7.1f}/s  p50 {fig['p50']:6.1f}  p95 "
          f"{fig['p95']:6.1f}  p99 {fig['p99']:6.1f}  max {fig['max']:7.1f} ms"
          + (f"  ({errors} errors)" if errors else ""))
    return fig


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux), to tell server work from the machine's load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the server

class Server:
    def __init__(self, tmp: Path, env: dict[str, str], port: int, token: str) -> None:
        self.url, self.token = f"http://127.0.0.1:{port}", token
        self.log = (tmp / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
             f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp}",
             "--ServerApp.jpserver_extensions=jupyterlab_hpcml=True",
             "--ServerApp.jpserver_extensions=bench_load=True"],
            env={**env, "PYTHONPATH": os.pathsep.join(filter(None, [
                str(REPO / "bench"), env.get("PYTHONPATH", "")]))},
            stdout=self.log, stderr=subprocess.STDOUT,
            cwd=tmp,  # `python -m` puts the working directory first on sys.path
        )
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited; see {tmp / 'server.log'}")
            try:
                self.call("GET", f"{API}/features")
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            self.url + path, method=method, headers={"Authorization": f"token {self.token}"},
            data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.loads(resp.read() or b"null")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------- the runs

def submit_real(server: Server, n: int) -> list[dict[str, Any]]:
    """Real runs of the toy project on the cluster, waited for until they end."""
    ids = [server.call("POST", f"{API}/runs", {
        "project": "toy", "backend_config": "slurm.yaml", "entry_point": "main",
        "parameters": {"steps": 200, "label": f"load{i}"}})["id"] for i in range(n)]
    deadline = time.monotonic() + 300
    while True:
        runs = [server.call("GET", f"{API}/runs/{i}") for i in ids]
        if all(r["state"] in ("FINISHED", "FAILED", "CANCELLED", "TIMEOUT") for r in runs):
            return runs
        if time.monotonic() > deadline:
            raise RuntimeError(f"real runs did not end: {[r['state'] for r in runs]}")
        time.sleep(1)


def held_arrays(s: dict[str, str], n: int, ours: list[str]) -> list[str]:
    """Job ids of n pending (held) array elements; the arrays' ids go into ``ours``."""
    from tests.slurm_cluster import ssh_cmd

    elements: list[str] = []
    partition = s.get("HPCML_TEST_SLURM_PARTITION", "debug")
    for start in range(0, n, 1000):  # MaxArraySize defaults to 1001
        count = min(1000, n - start)
        out = ssh_cmd(s, f"sbatch --parsable --hold --array=0-{count - 1} "
                         f"-p {shlex.quote(partition)} -o /dev/null --wrap 'sleep 600'")
        array = out.strip().split(";")[0]
        ours.append(array)
        elements += [f"{array}_{i}" for i in range(count)]
    return elements


def add_active_runs(data: Path, template_id: str, job_ids: list[str]) -> None:
    """Copies of a real record, QUEUED, each following one held job."""
    import uuid

    from jupyterlab_hpcml.core.states import RunState
    from jupyterlab_hpcml.engine.models import StateChange
    from jupyterlab_hpcml.engine.store import RunStore

    store = RunStore(data / "runs.sqlite")
    try:
        template = store.get(template_id)
        now = time.time()
        for i, job in enumerate(job_ids):
            at = now - (len(job_ids) - i) * 0.5
            store.insert(template.model_copy(update={
                "id": uuid.uuid4().hex[:12], "name": f"load-{i}", "backend_job_id": job,
                "parameters": {**template.parameters, "label": f"load{i}"},
                "state": RunState.QUEUED, "exit_code": None, "created_at": at,
                "state_history": [StateChange(state=RunState.SUBMITTING, at=at),
                                  StateChange(state=RunState.QUEUED, at=at + 0.4,
                                              message="submitted")],
            }, deep=True))
    finally:
        store.close()


# ---------------------------------------------------------------- the load

class Load:
    def __init__(self, server: Server, run_ids: list[str], real_ids: list[str], total: int):
        self.server, self.run_ids, self.real_ids, self.total = server, run_ids, real_ids, total
        sorts = ["submitted", "name", "state", "updated", "duration"]
        pages = max(1, total // 50)
        self.routes: list[tuple[str, float, Any]] = [
            ("runs page", 0.25, lambda r: f"{API}/runs?limit=50&offset={r.randrange(pages) * 50}"),
            ("rows page", 0.25, lambda r: f"{API}/runs-view/rows?limit=100&sort={r.choice(sorts)}"
                                          f"&offset={r.randrange(max(1, total // 100)) * 100}"),
            ("run", 0.20, lambda r: f"{API}/runs/{r.choice(self.run_ids)}"),
            ("log chunk", 0.15, lambda r: f"{API}/runs/{r.choice(self.real_ids)}/logs/stdout"
                                          "?offset=0&max_bytes=65536"),
            ("metrics", 0.15, lambda r: f"{API}/runs/{r.choice(self.real_ids)}/metrics"),
        ]

    async def run(self, clients: int, think: float, seconds: float, seed: int) -> dict[str, Any]:
        import aiohttp

        times: dict[str, list[float]] = {name: [] for name, _, _ in self.routes}
        errors: dict[str, int] = dict.fromkeys(times, 0)
        names = [name for name, _, _ in self.routes]
        weights = [w for _, w, _ in self.routes]
        urls = {name: make for name, _, make in self.routes}
        headers = {"Authorization": f"token {self.server.token}"}
        stop = time.monotonic() + seconds

        async def client(session: aiohttp.ClientSession, rnd: random.Random) -> None:
            if think:
                await asyncio.sleep(rnd.uniform(0, think))  # spread the first requests
            while time.monotonic() < stop:
                name = rnd.choices(names, weights)[0]
                url = self.server.url + urls[name](rnd)
                t = time.perf_counter()
                try:
                    async with session.get(url, headers=headers) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    times[name].append(time.perf_counter() - t)
                else:
                    errors[name] += 1
                if think:
                    await asyncio.sleep(think * rnd.uniform(0.5, 1.5))

        connector = aiohttp.TCPConnector(limit=clients)  # keep-alive, one connection per client
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await session.get(self.server.url + PROBE + "?reset=1", headers=headers)
            cpu0, t0 = cpu_seconds(self.server.proc.pid), time.monotonic()
            await asyncio.gather(*(client(session, random.Random(seed * 1000 + i))
                                   for i in range(clients)))
            elapsed = time.monotonic() - t0
            cpu = cpu_seconds(self.server.proc.pid) - cpu0
            async with session.get(self.server.url + PROBE, headers=headers) as resp:
                probe = json.loads(await resp.read())
        every = [x for v in times.values() for x in v]
        figs = {name: latency_line(name, times[name], errors[name], elapsed) for name in names}
        figs["all"] = latency_line("all", every, sum(errors.values()), elapsed)
        g2 = probe["gc"]["2"]
        print(f"   server CPU {cpu / elapsed * 100:.0f} % of a core "
              f"({cpu / max(1, len(every)) * 1000:.2f} ms per request); loop lag p99 "
              f"{probe['lag_p99'] * 1000:.1f} ms, max {probe['lag_max'] * 1000:.1f} ms, "
              f"stalls >50 ms: {probe['stalls_over_50ms']}, >100 ms: {probe['stalls_over_100ms']} "
              f"(busy: max {probe['busy_max'] * 1000:.0f} ms, >100 ms: "
              f"{probe['busy_over_100ms']}); "
              f"full GCs {g2['n']} (max {g2['max'] * 1000:.0f} ms), gen0/1 "
              f"{probe['gc']['0']['n']}/{probe['gc']['1']['n']}")
        return {"routes": figs, "lag_max": probe["lag_max"] * 1000,
                "lag_p99": probe["lag_p99"] * 1000, "stalls100": probe["stalls_over_100ms"],
                "busy_max": probe["busy_max"] * 1000, "busy100": probe["busy_over_100ms"],
                "gc2_max": g2["max"] * 1000, "gc2_n": g2["n"], "cpu_ms_per_req":
                cpu / max(1, len(every)) * 1000}


def medians(rounds: list[dict[str, Any]], title: str) -> None:
    med = statistics.median
    all_ = [r["routes"]["all"] for r in rounds]
    print(f"{title}, median of {len(rounds)}: p50 {med(a['p50'] for a in all_):.1f}  p95 "
          f"{med(a['p95'] for a in all_):.1f}  p99 {med(a['p99'] for a in all_):.1f}  max "
          f"{med(a['max'] for a in all_):.1f} ms, {med(a['rps'] for a in all_):.1f} req/s; "
          f"loop lag max {med(r['lag_max'] for r in rounds):.0f} ms, stalls >100 ms "
          f"{med(r['stalls100'] for r in rounds):g} (loop busy max "
          f"{med(r['busy_max'] for r in rounds):.0f} ms, >100 ms "
          f"{med(r['busy100'] for r in rounds):g}), full GC max "
          f"{med(r['gc2_max'] for r in rounds):.0f} ms, "
          f"server CPU {med(r['cpu_ms_per_req'] for r in rounds):.2f} ms/request")


def load_avg() -> str:
    avg = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"load average {avg} on {os.cpu_count()} CPUs"


async def measure(args: argparse.Namespace, load: Load, server: Server) -> None:
    if args.warmup:
        print(f"warm-up: {args.warmup:g} s")
        await load.run(args.clients, args.think, args.warmup, seed=99)
    loaded, saturated = [], []
    for i in range(args.repeat):
        print(f"[{i + 1}/{args.repeat}] {args.clients} clients, think {args.think:g} s, "
              f"{args.duration:g} s, {load.total} runs ({load_avg()})")
        loaded.append(await load.run(args.clients, args.think, args.duration, seed=i))
        if args.saturation:
            print(f"[{i + 1}/{args.repeat}] saturation: {args.clients} clients, no think time, "
                  f"{args.saturation:g} s ({load_avg()})")
            saturated.append(await load.run(args.clients, 0.0, args.saturation, seed=50 + i))
    objects = server.call("GET", PROBE + "?objects=1")
    print(f"server heap: {objects['gc_tracked']} objects tracked by the collector, "
          f"{objects['gc_frozen']} frozen")
    medians(loaded, "under load")
    if saturated:
        medians(saturated, "saturation")


def main(args: argparse.Namespace) -> None:
    sys.path.append(str(REPO))  # after $PYTHONPATH: a copy of the package there is measured
    from tests.slurm_cluster import backend_config, cluster_settings, skip_reason, ssh_cmd

    reason = skip_reason()
    if reason:
        print(f"skipped: {reason}")
        return
    s = cluster_settings()
    assert s is not None
    import yaml

    tmp = Path(tempfile.mkdtemp(prefix="hpcml-bench-load-"))
    data = tmp / "data"
    shutil.copytree(REPO / "tests" / "projects" / "toy", tmp / "toy")
    (tmp / "toy" / "slurm.yaml").write_text(yaml.safe_dump(backend_config(s)))
    env = {**os.environ, "HPCML_DATA_DIR": str(data),
           "MLFLOW_TRACKING_URI": f"sqlite:///{data}/mlflow.db",
           "HPCML_SSH_KNOWN_HOSTS": s["HPCML_TEST_SSH_KNOWN_HOSTS"],
           "JUPYTER_CONFIG_DIR": str(tmp / "jcfg"), "JUPYTER_RUNTIME_DIR": str(tmp / "jrt")}
    env.pop("HPCML_SSH_CONFIG", None)
    ours: list[str] = []  # job ids this bench made: the only ones it cancels
    server = None
    try:
        t = time.perf_counter()
        server = Server(tmp, env, args.port, "bench-load-token")
        print(f"server up in {time.perf_counter() - t:.1f} s ({load_avg()})")
        t = time.perf_counter()
        real = submit_real(server, args.real)
        ours += [r["backend_job_id"] for r in real if r.get("backend_job_id")]
        print(f"{len(real)} real run(s) on the cluster ended in {time.perf_counter() - t:.1f} s: "
              + ", ".join(f"{r['id']} {r['state']}" for r in real))
        t = time.perf_counter()
        jobs = held_arrays(s, args.runs, ours)
        add_active_runs(data, real[0]["id"], jobs)
        print(f"{args.runs} active runs (held array job(s) {', '.join(ours[len(real):])}) "
              f"in {time.perf_counter() - t:.1f} s")
        page = server.call("GET", f"{API}/runs?limit=1000&state=QUEUED")
        run_ids = [r["id"] for r in page["runs"]] + [r["id"] for r in real]
        load = Load(server, run_ids, [r["id"] for r in real], len(run_ids))
        asyncio.run(measure(args, load, server))
    finally:
        if server is not None:
            server.stop()
        if ours:
            ssh_cmd(s, "scancel " + " ".join(shlex.quote(j) for j in ours), check=False)
            print(f"cancelled this bench's jobs: {' '.join(ours)}")
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="active runs (default %(default)s)")
    parser.add_argument("--clients", type=int, default=50, help="clients (default %(default)s)")
    parser.add_argument("--think", type=float, default=1.0,
                        help="mean seconds between a client's requests (default %(default)s)")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds of each measured load phase (default %(default)s)")
    parser.add_argument("--saturation", type=float, default=20.0,
                        help="seconds of each no-think-time phase; 0 skips it")
    parser.add_argument("--warmup", type=float, default=10.0,
                        help="seconds of unmeasured load first")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measured rounds; medians are printed")
    parser.add_argument("--real", type=int, default=3, help="real runs for the log/metric routes")
    parser.add_argument("--port", type=int,
                        default=int(os.environ.get("HPCML_BENCH_PORT", "18931")))
    parser.add_argument("--keep", action="store_true", help="keep the temporary dir (server.log)")
    main(parser.parse_args())
