"""Shared fixtures: an isolated data dir + MLflow store, and the real server with the extension."""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]

TOY_PROJECT = Path(__file__).parent / "projects" / "toy"
TERMINAL = {"FINISHED", "FAILED", "CANCELLED", "TIMEOUT"}


@pytest.fixture
def hpcml_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Everything (run store, MLflow store, run dirs) in one folder, as a user would isolate it."""
    data = tmp_path / "hpcml-data"
    monkeypatch.setenv("HPCML_DATA_DIR", str(data))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{data}/mlflow.db")
    return data


@pytest.fixture
def jp_server_config(hpcml_data: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"jupyterlab_hpcml": True}},
        "HpcmlApp": {"poll_interval": 0.2},
    }


@pytest.fixture
def toy_project(jp_root_dir: Path) -> Path:
    """A copy of the toy MLflow project inside the server's root dir."""
    dest = jp_root_dir / "toy"
    shutil.copytree(TOY_PROJECT, dest)
    return dest


@pytest.fixture
def log_records():
    """Everything logged by anyone during the test (pytest's logging plugin is off)."""
    import logging

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep(logging.DEBUG)
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield records
    root.removeHandler(handler)
    root.setLevel(old)


Fetch = Callable[..., Awaitable[Any]]


@pytest.fixture
def api(jp_fetch: Fetch) -> Callable[..., Awaitable[Any]]:
    """Call /hpcml/api/...; returns (status, json). Does not raise on 4xx."""
    from tornado.httpclient import HTTPClientError

    async def call(method: str, path: str, body: Any = None, /, **params: Any) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"method": method}
        if body is not None:
            kwargs["body"] = json.dumps(body)
        elif method == "POST":
            kwargs["body"] = "{}"
        if params:
            kwargs["params"] = params
        try:
            resp = await jp_fetch("hpcml", "api", *path.strip("/").split("/"), **kwargs)
        except HTTPClientError as exc:
            assert exc.response is not None
            return exc.code, json.loads(exc.response.body or b"null")
        ctype = resp.headers.get("Content-Type", "")
        return resp.code, json.loads(resp.body) if "json" in ctype else resp.body

    return call


@pytest.fixture
def lab_credentials():
    """Credentials entered through the REST API live in process memory: forget them after."""
    from jupyterlab_hpcml.backends.credentials import MEMORY

    yield MEMORY
    for connection in MEMORY.known():
        MEMORY.forget(connection)


async def submit_run(api: Callable[..., Awaitable[Any]], **body: Any) -> dict[str, Any]:
    """POST runs (the toy project unless ``project`` is given); expects 201."""
    body.setdefault("project", "toy")
    status, run = await api("POST", "runs", body)
    assert status == 201, run
    return run


async def mlflow_final(run: dict[str, Any], timeout: float = 20) -> str:
    """The MLflow status once the engine's final offline sync is done (it sets it last)."""
    import asyncio

    from mlflow.tracking import MlflowClient

    deadline = time.monotonic() + timeout
    while True:
        status = MlflowClient().get_run(run["mlflow_run_id"]).info.status
        if status in ("FINISHED", "FAILED", "KILLED") or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.1)


async def wait_for_state(api: Callable[..., Awaitable[Any]], run_id: str, states: set[str],
                         timeout: float = 90) -> dict[str, Any]:
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        status, run = await api("GET", f"runs/{run_id}")
        assert status == 200, run
        if run["state"] in states:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run['state']} after {timeout}s: {run}")
        await asyncio.sleep(0.2)


async def wait_deployment(api: Callable[..., Awaitable[Any]], name: str, states: set[str],
                          timeout: float = 180) -> dict[str, Any]:
    """The deployment once in one of ``states`` (AssertionError after ``timeout``)."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        status, dep = await api("GET", f"deployments/{name}")
        assert status == 200, dep
        if dep["state"] in states:
            return dep
        if time.monotonic() > deadline:
            raise AssertionError(f"deployment {name} still {dep['state']} after {timeout}s: {dep}")
        await asyncio.sleep(0.3)


async def stop_deployments(data_dir: Path, tracking_uri: str | None = None) -> None:
    """Stop every active deployment of ``data_dir`` (a test that failed half-way must not
    leave scoring servers running)."""
    from jupyterlab_hpcml.engine.service import Engine

    engine = Engine(data_dir=data_dir, tracking_uri=tracking_uri)
    try:
        for dep in await engine.list_deployments():
            if dep.state in ("STARTING", "READY"):
                await engine.stop_deployment(dep.name)
    finally:
        await engine.close()


@pytest.fixture
def deployments_stopped(hpcml_data: Path):
    """After the test: its deployments stopped, whatever happened."""
    import asyncio

    yield
    asyncio.run(stop_deployments(hpcml_data))
