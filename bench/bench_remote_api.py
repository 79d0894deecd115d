"""FirecREST / UNICORE benchmarks against the loopback test servers: prints figures, asserts none.

1. Poll cost: HTTP requests per poll cycle with 1, 100 and 1,000 active runs (steady state:
   tokens and clients already set up). The servers hold that many RUNNING jobs.
2. Upload of the example project (examples/digits), first and second submission: time, code
   bytes sent, request body bytes and requests. FirecREST ``prepare`` (one archive with the
   objects the cluster lacks + extract); UNICORE ``prepare`` + ``submit`` (the objects HOME
   lacks, the job staging the code in from HOME, the per-run files, start), and for
   comparison a site without a HOME storage (every file with every job).

Run: ``.venv/bin/python bench/bench_remote_api.py`` (well under a minute).
"""
from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jupyterlab_hpcml.backends.base import JobRef  # noqa: E402
from jupyterlab_hpcml.backends.firecrest import FirecrestBackend  # noqa: E402
from jupyterlab_hpcml.backends.unicore import UnicoreBackend  # noqa: E402
from jupyterlab_hpcml.core.job import JobContext  # noqa: E402
from jupyterlab_hpcml.core.states import RunState  # noqa: E402
from jupyterlab_hpcml.engine.models import RunRecord  # noqa: E402
from jupyterlab_hpcml.engine.snapshot import take_snapshot  # noqa: E402
from tests.servers import firecrest_server as fcs  # noqa: E402
from tests.servers import unicore_server as ucs  # noqa: E402

COUNTS = (1, 100, 1000)


def record(run_id: str, **kw) -> RunRecord:
    now = time.time()
    base = {
        "id": run_id,
        "name": run_id,
        "project_path": "/x",
        "project_name": "digits",
        "entry_point": "main",
        "command": "true",
        "backend": "x",
        "state": RunState.SUBMITTING,
        "created_at": now,
        "updated_at": now,
    }
    base.update(kw)
    return RunRecord.model_construct(**base)


async def firecrest_poll(tmp: Path) -> list[tuple[int, int]]:
    out = []
    with fcs.FirecrestServer(tmp / "fc", clients={"id": "secret"}) as server:
        os.environ["HPCML_FIRECREST_CLIENT_ID"], os.environ["HPCML_FIRECREST_CLIENT_SECRET"] = (
            "id",
            "secret",
        )
        cfg = {
            "Firecrest": {"ApiUrl": server.url, "TokenUrl": server.token_url, "Machine": "cluster"}
        }
        backend = FirecrestBackend(cfg, tmp)
        for n in COUNTS:
            server.state.jobs.clear()
            refs = []
            for i in range(n):
                jid = str(100000 + i)
                server.state.jobs[jid] = fcs.Job(
                    jid, f"hpcml-{i}", "/", None, state_override="RUNNING"
                )
                refs.append(JobRef(f"r{i}", jid, "/"))
            await backend.poll(refs)  # warm: token
            server.state.reset_counts()
            statuses = await backend.poll(refs)
            assert len(statuses) == n
            out.append((n, server.state.total_requests()))
        await backend.close()
    return out


async def unicore_poll(tmp: Path) -> list[tuple[int, int, int]]:
    out = []
    with ucs.UnicoreServer(tmp / "uc", users={"u": "p"}) as server:
        os.environ["HPCML_UNICORE_USERNAME"], os.environ["HPCML_UNICORE_PASSWORD"] = "u", "p"
        backend = UnicoreBackend({"UnicoreApiUrl": server.base_url}, tmp)
        for n in COUNTS:
            server.state.jobs.clear()
            refs = []
            for i in range(n):
                jid = str(uuid.uuid4())
                server.state.jobs[jid] = ucs.UJob(
                    jid, {"Executable": "true"}, tmp, "u", status="RUNNING"
                )
                refs.append(JobRef(f"r{i}", jid, "."))
            backend._last.clear()
            await backend.poll(
                refs
            )  # first cycle: every job once (in slices of max_status_requests)
            server.state.reset_counts()
            t0 = time.perf_counter()
            await backend.poll(refs)
            dt = time.perf_counter() - t0
            out.append((n, server.state.total_requests(), round(dt * 1000)))
        # the whole sweep: how many cycles until every job was looked at once
    return out


def snapshot_of(project: Path, data: Path):
    return take_snapshot(project, data / "objects", data / "snapshots")


def context(backend, run_id: str, cfg: dict) -> JobContext:
    return JobContext(run_id=run_id, run_name=run_id, project_name="digits", entry_point="main",
                      job_name="digits", command="true", config=backend.parse_config(cfg))


Row = tuple[str, float, int, int, int]  # label, seconds, content bytes, body bytes, requests


def row(label: str, t0: float, sent: list[int], state) -> Row:
    body = sum(state.bytes_in.values())
    return (label, time.perf_counter() - t0, sent[-1], body, state.total_requests())


async def firecrest_upload(tmp: Path, project: Path) -> list[Row]:
    """``prepare``: one ls of the object store, one archive upload, one extract, one rm."""
    out = []
    snap = snapshot_of(project, tmp / "data-fc")
    with fcs.FirecrestServer(tmp / "fc-up", clients={"id": "secret"}) as server:
        cfg = {
            "Firecrest": {"ApiUrl": server.url, "TokenUrl": server.token_url, "Machine": "cluster"}
        }
        backend = FirecrestBackend(cfg, tmp)
        await backend.base_dir()  # connection set-up is not upload time
        for label in ("first", "second"):
            sent: list[int] = []
            server.state.reset_counts()
            t0 = time.perf_counter()
            ctx = context(backend, uuid.uuid4().hex[:12], cfg)
            await backend.prepare(ctx, snap, {}, lambda s, t, sent=sent: sent.append(t))
            out.append(row(label, t0, sent, server.state))
        await backend.close()
    return out


async def unicore_upload(tmp: Path, project: Path) -> tuple[list[Row], list[str]]:
    """``prepare`` + ``submit``: the contents HOME lacks (PUT + rename each), the job with
    ``Imports`` from HOME, the per-run files (job.sh, env.sh), start. "no HOME": a site
    without the HOME storage, where every file goes with every job (as all runs did before)."""
    out, routes = [], []
    snap = snapshot_of(project, tmp / "data-uc")
    with ucs.UnicoreServer(tmp / "uc-up", users={"u": "p"}) as server:
        cfg = {"UnicoreApiUrl": server.base_url}
        backend = UnicoreBackend(cfg, tmp)
        await asyncio.to_thread(backend._sync_client)
        for label in ("first", "second", "no HOME"):
            server.state.home_storage = label != "no HOME"
            if label == "no HOME":
                backend._home = None  # asked again: a site without HOME (all files, each run)
            ctx = context(backend, uuid.uuid4().hex[:12], cfg)
            sent: list[int] = []
            server.state.reset_counts()
            t0 = time.perf_counter()
            prepared = await backend.prepare(ctx, snap, {}, lambda s, t, sent=sent: sent.append(t))
            await backend.submit(prepared)
            out.append(row(label, t0, sent, server.state))
            routes.append(", ".join(f"{k} x{v}" for k, v in sorted(server.state.requests.items())))
    return out, routes


async def main() -> None:
    import logging

    logging.getLogger("tornado").setLevel(logging.ERROR)  # the test servers' access log
    project = REPO / "examples" / "digits"
    with tempfile.TemporaryDirectory(prefix="hpcml-bench-") as t:
        tmp = Path(t)
        fc = await firecrest_poll(tmp)
        uc = await unicore_poll(tmp)
        print("poll cost (HTTP requests per poll cycle, steady state)")
        print(f"  {'active runs':>12} {'FirecREST':>10} {'UNICORE':>8} {'UNICORE ms':>11}")
        for (n, f), (_, u, ms) in zip(fc, uc, strict=True):
            print(f"  {n:>12} {f:>10} {u:>8} {ms:>11}")
        print(
            "  UNICORE: one GET /jobs/{id}?fields=status,statusMessage,exitCode per job, at most "
            f"{UnicoreBackend.max_status_requests} per cycle "
            "(the rest keep their last state until their turn)"
        )
        fu = await firecrest_upload(tmp, project)
        uu, routes = await unicore_upload(tmp, project)
        files = len(snapshot_of(project, tmp / "data-count").files)
        print(f"upload of examples/digits ({files} files): code bytes sent, request body bytes")
        for name, rows in (("FirecREST", fu), ("UNICORE", uu)):
            for label, dt, nbytes, body, reqs in rows:
                print(
                    f"  {name:<10} {label:<7} {dt * 1000:7.0f} ms  {nbytes:>8} B code  "
                    f"{body:>8} B bodies  {reqs:>3} requests"
                )
        for label, text in zip(("first", "second", "no HOME"), routes, strict=True):
            print(f"  UNICORE {label}: {text}")


if __name__ == "__main__":
    asyncio.run(main())
