"""Runs survive the server: real `jupyter server` processes, killed with SIGKILL."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import TERMINAL, TOY_PROJECT

TOKEN = "restart-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real jupyter server process with the extension, on loopback."""

    def __init__(self, root: Path, env: dict[str, str], log: Path):
        self.port = free_port()
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "jupyter_server",
                "--no-browser", "--allow-root", f"--ServerApp.port={self.port}",
                "--ServerApp.ip=127.0.0.1",
                f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
                "--ServerApp.jpserver_extensions=jupyterlab_hpcml=True",
                "--HpcmlApp.poll_interval=0.2",
            ],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.wait_ready()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/hpcml/api/{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {TOKEN}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "server exited during start-up"
            try:
                if self.call("GET", "features")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("server did not start")

    def wait_state(self, run_id: str, states: set[str], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, run = self.call("GET", f"runs/{run_id}")
            assert status == 200, run
            if run["state"] in states:
                return run
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} not in {states}: {run}")

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def server_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "root"
    shutil.copytree(TOY_PROJECT, root / "toy")
    data = tmp_path / "data"
    env = {
        **os.environ,
        "HPCML_DATA_DIR": str(data),
        "MLFLOW_TRACKING_URI": f"sqlite:///{data}/mlflow.db",
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
    }
    return root, env


def test_runs_survive_kill_9_of_the_server(server_env, tmp_path):
    root, env = server_env
    first = Server(root, env, tmp_path / "server1.log")
    try:
        short = first.call("POST", "runs", {"project": "toy", "entry_point": "sleep",
                                            "parameters": {"seconds": 1}})[1]
        long = first.call("POST", "runs", {"project": "toy", "entry_point": "sleep",
                                           "parameters": {"seconds": 6}})[1]
        for run in (short, long):
            first.wait_state(run["id"], {"RUNNING"})
    finally:
        first.kill()  # SIGKILL: no clean-up of any kind

    time.sleep(2)  # the short run ends while no server is running
    second = Server(root, env, tmp_path / "server2.log")
    try:
        status, listing = second.call("GET", "runs")
        assert status == 200 and {r["id"] for r in listing["runs"]} == {short["id"], long["id"]}
        assert second.wait_state(long["id"], {"RUNNING"} | TERMINAL)["state"] == "RUNNING"
        for run in (short, long):
            done = second.wait_state(run["id"], TERMINAL, timeout=30)
            assert done["state"] == "FINISHED" and done["exit_code"] == 0, done
        # The MLflow run followed the job although the first server never saw the end.
        from mlflow.tracking import MlflowClient

        client = MlflowClient(env["MLFLOW_TRACKING_URI"])
        assert client.get_run(long["mlflow_run_id"]).info.status == "FINISHED"
    finally:
        second.stop()


def test_cli_run_appears_in_server_api(server_env, tmp_path):
    root, env = server_env
    server = Server(root, env, tmp_path / "server.log")
    try:
        out = subprocess.run(
            [sys.executable, "-m", "jupyterlab_hpcml.cli", "submit", str(root / "toy"),
             "-P", "steps=2", "--json"],
            env=env, capture_output=True, text=True, check=True,
        )
        run_id = json.loads(out.stdout)["id"]
        done = server.wait_state(run_id, TERMINAL)
        assert done["state"] == "FINISHED"
    finally:
        server.stop()
