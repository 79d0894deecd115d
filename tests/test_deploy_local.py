"""Deployments on the local backend, through real `jupyter server` processes: the digits
example trained, registered as `champion`, served by MLflow's scoring server as a local
service job, called through the authenticated proxy, re-attached by a restarted server,
stopped."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import mlflow
import pytest
from sklearn.datasets import load_digits

from .conftest import stop_deployments
from .test_restart import TOKEN, Server

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
TERMINAL = {"FINISHED", "FAILED", "CANCELLED", "TIMEOUT", "UNKNOWN"}


@pytest.fixture
def lab(tmp_path: Path):
    root = tmp_path / "root"
    shutil.copytree(DIGITS, root / "digits")
    data = tmp_path / "data"
    env = {**os.environ, "HPCML_DATA_DIR": str(data),
           "MLFLOW_TRACKING_URI": f"sqlite:///{data}/mlflow.db",
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime")}
    servers: list[Server] = []

    def start() -> Server:
        servers.append(Server(root, env, tmp_path / "server.log"))
        return servers[-1]

    yield start, env
    for server in servers:
        server.stop()
    asyncio.run(stop_deployments(data, env["MLFLOW_TRACKING_URI"]))


def wait_for(server: Server, path: str, field: str, states: set[str],
             timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = server.call("GET", path)
        assert status == 200, body
        if body[field] in states or time.monotonic() > deadline:
            assert body[field] in states, body
            return body
        time.sleep(0.3)


def invoke(server: Server, name: str, body: bytes, *, token: bool = True,
           content_type: str = "application/json") -> tuple[int, Any]:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"token {TOKEN}"
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/hpcml/api/deployments/{name}/invocations",
        method="POST", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw


def pid_gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_digits_register_deploy_call_restart_stop(lab, tmp_path, monkeypatch):
    start, env = lab
    server = start()
    status, run = server.call("POST", "runs", {"project": "digits", "entry_point": "train",
                                               "parameters": {"epochs": 1}})
    assert status == 201, run
    run = wait_for(server, f"runs/{run['id']}", "state", TERMINAL)
    assert run["state"] == "FINISHED", run

    status, version = server.call("POST", "models", {"run_id": run["id"], "name": "digits",
                                                     "alias": "champion"})
    assert status == 201 and version["version"] == "1", version
    status, detail = server.call("GET", "models/digits/versions/1")
    assert status == 200, detail
    assert detail["run"]["id"] == run["id"] and detail["run"]["parameters"]["epochs"] == "1"
    assert "val_accuracy" in detail["metrics"] and detail["servable"]
    assert {"python_function", "sklearn"} <= set(detail["flavors"])
    example = detail["input_example"]
    assert example and len(example["inputs"]) == 3, example

    status, dep = server.call("POST", "deployments", {"model_uri": "models:/digits@champion"})
    assert status == 201 and dep["name"] == "digits" and dep["model_version"] == "1", dep
    assert dep["state"] in {"STARTING", "READY"}
    status, again = server.call("POST", "deployments", {"model_uri": "models:/digits/1"})
    assert status == 409 and "digits" in again["message"], again
    dep = wait_for(server, "deployments/digits", "state", {"READY", "FAILED"})
    assert dep["state"] == "READY", dep

    # The same predictions as the model loaded in this process.
    x = load_digits().data[:8]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
    expected = mlflow.pyfunc.load_model("models:/digits@champion").predict(x).tolist()
    payload = json.dumps({"inputs": x.tolist()}).encode()
    status, answer = invoke(server, "digits", payload)
    assert status == 200 and answer["predictions"] == expected, answer
    assert invoke(server, "digits", json.dumps(example).encode())[0] == 200
    # CSV goes through as CSV; this model takes a tensor, so MLflow refuses it (400).
    csv = b"\n".join(b",".join(str(v).encode() for v in row) for row in x[:2])
    status, answer = invoke(server, "digits", csv, content_type="text/csv")
    assert status == 400 and "DataFrame" in answer["message"], answer

    # No token: refused before anything reaches the model server.
    assert invoke(server, "digits", payload, token=False)[0] == 403
    # A wrong shape: the scoring server's 400 and its message, passed through.
    status, answer = invoke(server, "digits", json.dumps({"inputs": [[1, 2, 3]]}).encode())
    assert status == 400 and "shape" in answer["message"].lower(), answer
    status, answer = invoke(server, "digits", b"1,2,3", content_type="text/plain")
    assert status == 400 and "Content-Type" in answer["message"], answer
    assert invoke(server, "nope", payload)[0] == 404

    # A new server process finds the deployment and reaches it again.
    server.kill()
    server = start()
    status, dep = server.call("GET", "deployments/digits")
    assert status == 200 and dep["state"] == "READY", dep
    status, answer = invoke(server, "digits", payload)
    assert status == 200 and answer["predictions"] == expected, answer

    serving = wait_for(server, f"runs/{dep['run_ids'][0]}", "state", {"RUNNING"})
    pid = json.loads((Path(serving["run_dir"]) / ".hpcml" / "service.json").read_text())["pid"]
    status, dep = server.call("POST", "deployments/digits/stop")
    assert status == 200 and dep["state"] == "STOPPED", dep
    assert pid_gone(pid), "the scoring server is still running"
    wait_for(server, f"runs/{dep['run_ids'][0]}", "state", {"CANCELLED"})
    status, answer = invoke(server, "digits", payload)
    assert status == 409 and "STOPPED" in answer["message"], answer
