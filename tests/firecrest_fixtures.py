"""What the FirecREST test files share: a loopback FirecREST server whose OIDC client holds a
given secret, and the backend configuration and submit request that point at it. Each test file
keeps its own canary secret, so that a leak found names the file whose runs leaked it."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyterlab_hpcml.engine.requests import SubmitRequest

from .servers.firecrest_server import FirecrestServer

CLIENT_ID = "hpcml-test-client"


def serve_firecrest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str
) -> Iterator[FirecrestServer]:
    """The body of a ``firecrest`` fixture: the server runs, the lab's client credentials set."""
    server = FirecrestServer(tmp_path / "cluster", clients={CLIENT_ID: secret}).start()
    monkeypatch.setenv("MANTIK_FIRECREST_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("MANTIK_FIRECREST_CLIENT_SECRET", secret)
    yield server
    server.stop()


def config(server: FirecrestServer, **resources) -> dict:
    return {
        "Firecrest": {"ApiUrl": server.url, "TokenUrl": server.token_url, "Machine": "cluster"},
        "Resources": {"Queue": "normal", "Runtime": "10m", **resources},
    }


def request(project: Path, **fields) -> SubmitRequest:
    return SubmitRequest(project=str(project), backend_config="firecrest.yaml", **fields)
