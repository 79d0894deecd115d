"""Deployment benchmark through a real ``jupyter server`` process; prints figures, asserts
nothing.

(a) Deploy → READY: the digits example trained (1 epoch) and registered as
    ``digits@champion``, then deployed (POST /deployments) and polled (GET every 0.1 s)
    until READY — on the local backend and as a Slurm job on the test cluster (skipped with
    a message when the cluster is not up); median of 3 each. Each deployment is stopped
    and its serving job ended before the next.
(b) The proxy's added latency: 200 sequential POSTs of one digits row through the lab's
    authenticated proxy (/hpcml/api/deployments/<name>/invocations) and 200 straight to the
    scoring server (its address from the serving run's ``.hpcml/service.json``),
    interleaved so that both see the same machine; p50/p95 of each and the difference.
    With the cluster up, the same through the proxy and the SSH tunnel to the Slurm job.

Run: ``.venv/bin/python bench/bench_deploy.py`` (``--repeats N --requests N``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.slurm_cluster import backend_config, cluster_settings, skip_reason  # noqa: E402
from tests.test_restart import TOKEN, Server  # noqa: E402

CHAMPION = "models:/digits@champion"
CLUSTER_CONFIG = "backend-configs/test-cluster.yaml"
TERMINAL = {"FINISHED", "FAILED", "CANCELLED", "TIMEOUT", "UNKNOWN"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait(server: Server, path: str, states: set[str], timeout: float = 300,
         every: float = 0.1) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = server.call("GET", path)
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body}")
        if body["state"] in states:
            return body
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} still {body['state']} after {timeout:.0f} s: {body}")
        time.sleep(every)


def lab(tmp: Path, cluster: dict[str, str] | None) -> tuple[Path, dict[str, str]]:
    """The server's root (the digits example, a test-cluster config) and environment."""
    root = tmp / "root"
    shutil.copytree(REPO / "examples" / "digits", root / "digits")
    data = tmp / "data"
    env = {**os.environ, "HPCML_DATA_DIR": str(data),
           "MLFLOW_TRACKING_URI": f"sqlite:///{data}/mlflow.db",
           "JUPYTER_CONFIG_DIR": str(tmp / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp / "jupyter-runtime")}
    if cluster is not None:
        env["HPCML_SSH_KNOWN_HOSTS"] = cluster["HPCML_TEST_SSH_KNOWN_HOSTS"]
        env.pop("HPCML_SSH_CONFIG", None)
        cfg = backend_config(cluster, Resources={"Nodes": 1, "CPUsPerNode": 1},
                             Environment={"Variables": {"PYTHONUNBUFFERED": "1"}})
        (root / "digits" / CLUSTER_CONFIG).write_text(yaml.safe_dump(cfg))
    return root, env


def register_champion(server: Server) -> None:
    status, run = server.call("POST", "runs", {"project": "digits", "entry_point": "train",
                                               "parameters": {"epochs": 1}})
    if status != 201:
        raise SystemExit(f"train: {status} {run}")
    run = wait(server, f"runs/{run['id']}", TERMINAL, every=0.5)
    if run["state"] != "FINISHED":
        raise SystemExit(f"train ended {run['state']}")
    status, version = server.call("POST", "models", {"run_id": run["id"], "name": "digits",
                                                     "alias": "champion"})
    if status != 201:
        raise SystemExit(f"register: {status} {version}")


def deploy(server: Server, name: str, where: dict[str, str]) -> tuple[float, float, dict]:
    """(seconds the POST took, seconds from the POST to READY, the deployment)."""
    t0 = time.perf_counter()
    status, dep = server.call("POST", "deployments", {"model_uri": CHAMPION, "name": name,
                                                      **where})
    posted = time.perf_counter() - t0
    if status != 201:
        raise SystemExit(f"deploy {name}: {status} {dep}")
    dep = wait(server, f"deployments/{name}", {"READY", "FAILED", "STOPPED"})
    if dep["state"] != "READY":
        raise SystemExit(f"deployment {name} is {dep['state']}: {dep.get('message')}")
    return posted, time.perf_counter() - t0, dep


def stop(server: Server, dep: dict[str, Any]) -> None:
    server.call("POST", f"deployments/{dep['name']}/stop")
    for run_id in dep["run_ids"]:
        wait(server, f"runs/{run_id}", TERMINAL, every=0.2)


def deploy_to_ready(server: Server, kind: str, where: dict[str, str], repeats: int
                    ) -> tuple[list[float], list[float]]:
    posts, readies = [], []
    for i in range(repeats):
        posted, ready, dep = deploy(server, f"bench-{kind}-{i}", where)
        posts.append(posted)
        readies.append(ready)
        print(f"  {kind:<8} #{i + 1}: POST {posted:5.2f} s, READY after {ready:6.2f} s",
              flush=True)
        stop(server, dep)
    return posts, readies


def timed_posts(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]
                ) -> float:
    t = time.perf_counter()
    answer = client.post(url, content=body, headers=headers)
    elapsed = (time.perf_counter() - t) * 1000
    if answer.status_code != 200:
        raise SystemExit(f"POST {url}: {answer.status_code} {answer.text[:300]}")
    return elapsed


def latency(server: Server, name: str, direct: str | None, requests: int
            ) -> tuple[list[float], list[float]]:
    """Milliseconds per request through the proxy (and straight to ``direct``),
    interleaved, after 20 warm-up requests each."""
    from sklearn.datasets import load_digits

    body = json.dumps({"inputs": [load_digits().data[0].tolist()]}).encode()
    proxy = f"http://127.0.0.1:{server.port}/hpcml/api/deployments/{name}/invocations"
    with_token = {"Content-Type": "application/json", "Authorization": f"token {TOKEN}"}
    plain = {"Content-Type": "application/json"}
    via_proxy: list[float] = []
    straight: list[float] = []
    with httpx.Client(trust_env=False, timeout=60) as client:  # keep-alive, like a notebook
        for i in range(20 + requests):
            p = timed_posts(client, proxy, body, with_token)
            d = timed_posts(client, f"{direct}/invocations", body, plain) if direct else 0.0
            if i >= 20:
                via_proxy.append(p)
                straight.append(d)
    return via_proxy, straight


def service_url(server: Server, dep: dict[str, Any]) -> str:
    status, run = server.call("GET", f"runs/{dep['run_ids'][0]}")
    assert status == 200, run
    where = json.loads((Path(run["run_dir"]) / ".hpcml" / "service.json").read_text())
    return f"http://{where['host']}:{where['port']}"


def main(repeats: int, requests: int) -> None:
    reason = skip_reason()
    cluster = None if reason else cluster_settings()
    tmp = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    root, env = lab(tmp, cluster)
    server = Server(root, env, tmp / "server.log")
    try:
        t0 = time.perf_counter()
        register_champion(server)
        print(f"digits trained (1 epoch) and registered as champion in "
              f"{time.perf_counter() - t0:.1f} s")
        print(f"(a) Deploy → READY, {repeats} times each:")
        ready = {"local": deploy_to_ready(server, "local", {}, repeats)}
        if cluster is not None:
            ready["slurm"] = deploy_to_ready(
                server, "slurm", {"project": "digits", "backend_config": CLUSTER_CONFIG},
                repeats)
        else:
            print(f"  slurm: skipped: {reason}")

        print(f"(b) {requests} sequential POSTs of one digits row (after 20 warm-up):")
        _, _, dep = deploy(server, "bench-latency", {})
        via_proxy, straight = latency(server, dep["name"], service_url(server, dep), requests)
        stop(server, dep)
        tunnel: list[float] = []
        if cluster is not None:
            _, _, dep = deploy(server, "bench-tunnel", {"project": "digits",
                                                        "backend_config": CLUSTER_CONFIG})
            tunnel, _ = latency(server, dep["name"], None, requests)
            stop(server, dep)

        print("\nMeasured (bench_deploy.py):")
        print(f"  {'Deploy → READY':<44} {'median':>8} {'min':>8} {'max':>8}"
              f" {'POST median':>12}")
        for kind, (posts, readies) in ready.items():
            print(f"  {kind + ' backend':<44} {statistics.median(readies):7.2f}s"
                  f" {min(readies):7.2f}s {max(readies):7.2f}s"
                  f" {statistics.median(posts):11.2f}s")
        print(f"  {'latency per request (ms)':<44} {'p50':>8} {'p95':>8}")
        rows = [("scoring server directly (local)", straight),
                ("lab proxy → scoring server (local)", via_proxy)]
        if tunnel:
            rows.append(("lab proxy → SSH tunnel → Slurm job", tunnel))
        for label, values in rows:
            print(f"  {label:<44} {pct(values, 0.5):8.2f} {pct(values, 0.95):8.2f}")
        print(f"  {'proxy added (local: proxy − direct)':<44}"
              f" {pct(via_proxy, 0.5) - pct(straight, 0.5):8.2f}"
              f" {pct(via_proxy, 0.95) - pct(straight, 0.95):8.2f}")
        diffs = [p - d for p, d in zip(via_proxy, straight, strict=True)]
        print(f"  {'  same, per request pair (median, p95)':<44}"
              f" {pct(diffs, 0.5):8.2f} {pct(diffs, 0.95):8.2f}")
    finally:
        for dep in server.call("GET", "deployments")[1].get("deployments", []):
            if dep["state"] in ("STARTING", "READY"):
                server.call("POST", f"deployments/{dep['name']}/stop")
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    main(args.repeats, args.requests)
