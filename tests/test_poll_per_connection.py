"""Each connection is polled on its own schedule: a cluster whose API hangs delays only its
own runs. The real pyfirecrest client against the loopback FirecREST server, whose job list
(the poll) hangs; a local run submitted meanwhile must be seen ending within the normal
poll interval, not after the FirecREST poll gives up (timeout × attempts)."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import yaml

from jupyterlab_hpcml.backends.firecrest import FirecrestBackend
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine

from .firecrest_fixtures import config, request, serve_firecrest
from .servers.firecrest_server import FirecrestServer

SECRET = "canary-fc-perconn-5e21b7-secret"
JOBS = r"/compute/[^/]+/jobs$"
HTTP_TIMEOUT = 6.0  # one FirecREST poll that hangs takes 3 attempts of this: ≥ 18 s
POLL_INTERVAL = 0.3
JOB_SECONDS = 1.0


@pytest.fixture
def firecrest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(FirecrestBackend, "http_timeout", HTTP_TIMEOUT)
    monkeypatch.setattr(FirecrestBackend, "retry_backoff", (0.1,))
    yield from serve_firecrest(tmp_path, monkeypatch, SECRET)


@pytest.fixture
def project(tmp_path: Path, firecrest: FirecrestServer) -> Path:
    p = tmp_path / "proj"
    p.mkdir()
    (p / "MLproject").write_text(
        "name: perconn\nentry_points:\n"
        "  sleep:\n    command: \"python -c 'import time; time.sleep(600)'\"\n"
        f"  quick:\n    command: \"python -c 'import time; time.sleep({JOB_SECONDS})'\"\n"
    )
    (p / "firecrest.yaml").write_text(yaml.safe_dump(config(firecrest)))
    return p


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_a_hanging_cluster_does_not_delay_a_local_run(hpcml_data, project, firecrest):
    engine = Engine(data_dir=hpcml_data, poll_interval=POLL_INTERVAL)
    try:
        remote = await engine.runs.submit(request(project, entry_point="sleep"))
        assert remote.backend_job_id, remote.state_history
        # From now on every job-list request hangs (far longer than the client waits).
        firecrest.state.faults.add("hang", path=JOBS, method="GET", times=1000, arg=120)
        engine.start()

        async def remote_poll_hanging() -> bool:
            return firecrest.state.faults.fired["hang"] >= 1

        await wait_for(remote_poll_hanging, 10, "the poller never asked FirecREST")
        started = time.monotonic()
        # Through the facade, as the REST handlers submit: it wakes the run's connection.
        local = await engine.submit(SubmitRequest(project=str(project), entry_point="quick"))

        async def local_ended() -> bool:
            return (await engine.runs.get(local.id)).state.terminal

        # The job takes 1 s (plus a process start); the hanging poll, ≥ 18 s.
        await wait_for(local_ended, 8.0, "the local run's end waited for the hanging cluster")
        took = time.monotonic() - started
        local = await engine.runs.get(local.id)
        assert local.state == RunState.FINISHED, local.state_history
        assert took < HTTP_TIMEOUT, took
        # The remote run was left to its own poll, which has not answered yet.
        remote = await engine.runs.get(remote.id)
        assert not remote.state.terminal, remote.state_history
    finally:
        await engine.close()
