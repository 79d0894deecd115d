"""What a local job sees of the server's environment: canary credentials set in the
server's environment must not reach the job (docs/security.md, "What a job sees")."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from jupyterlab_hpcml.backends.local_env import is_dropped
from jupyterlab_hpcml.engine.tracking import Tracker

from .conftest import submit_run, wait_for_state

CANARY = "canary-7f3a-secret"
# Credentials and server plumbing a Jupyter server's environment may hold.
SECRETS = [
    "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
    "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN",
    "JUPYTER_TOKEN", "JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN",
    "HPCML_FIRECREST_CLIENT_ID", "HPCML_FIRECREST_CLIENT_SECRET", "HPCML_FIRECREST_API_KEY",
    "HPCML_UNICORE_PASSWORD", "HPCML_UNICORE_TOKEN", "MANTIK_UNICORE_PASSWORD",
    "FIRECREST_CLIENT_SECRET", "GITHUB_TOKEN", "HF_TOKEN", "MY_SERVICE_PASSWORD",
    "OPENAI_API_KEY", "DB_PASSWD", "AZURE_CLIENT_SECRET", "GOOGLE_APPLICATION_CREDENTIALS",
    "some_lowercase_secret",
]
# The user's ordinary environment, which a job run from the lab should keep.
KEPT = {
    "HPCML_CANARY_PLAIN": "keep-me",
    "TOKENIZERS_PARALLELISM": "false",  # "TOKEN" inside a word is no secret
    "CUDA_VISIBLE_DEVICES": "0",
    "CONDA_PREFIX": "/opt/conda-canary",
    "LANG": "C.UTF-8",
    "HTTPS_PROXY": "http://proxy.invalid:3128",
}

MLPROJECT = """name: envdump
entry_points:
  main:
    command: "python dump.py"
"""
DUMP = "import json, os\nwith open('env.json', 'w') as f:\n    json.dump(dict(os.environ), f)\n"


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRETS:
        monkeypatch.setenv(name, f"{CANARY}-{name}")
    for name, value in KEPT.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def env_project(jp_root_dir: Path, hpcml_data: Path) -> Path:
    project = jp_root_dir / "envdump"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT)
    (project / "dump.py").write_text(DUMP)
    (project / "offline.yaml").write_text("Local: {}\nTracking: {Mode: offline}\n")
    (project / "direct.yaml").write_text(
        "Local: {}\nTracking: {Mode: direct}\n"
        "Environment:\n  Variables:\n    DELIBERATE_TOKEN: given-on-purpose\n")
    # Import MLflow and create its store before the first request, whose 20 s client
    # timeout a cold start (about a second unloaded) can exceed on a loaded machine.
    assert Tracker(os.environ["MLFLOW_TRACKING_URI"]).client
    return project


async def job_environment(api: Any, config: str) -> dict[str, str]:
    run = await submit_run(api, project="envdump", entry_point="main", backend_config=config)
    run = await wait_for_state(api, run["id"], {"FINISHED", "FAILED", "CANCELLED", "TIMEOUT"})
    assert run["state"] == "FINISHED", run
    return json.loads((Path(run["run_dir"]) / "env.json").read_text())


async def test_offline_job_gets_no_credentials(api, canaries, env_project) -> None:
    env = await job_environment(api, "offline.yaml")
    leaked = sorted(k for k, v in env.items() if CANARY in v)
    assert leaked == []
    for name, value in KEPT.items():
        assert env.get(name) == value, name
    assert env["HOME"] and env["PATH"]
    # The engine's own tracking variables: the job's offline store, never the server's.
    assert env["MLFLOW_TRACKING_URI"].endswith("/.hpcml/mlruns")
    assert env["HPCML_RUN_ID"] and env["MLFLOW_RUN_ID"]


async def test_direct_job_gets_only_the_tracking_credentials(api, canaries, env_project) -> None:
    env = await job_environment(api, "direct.yaml")
    leaked = sorted(k for k, v in env.items() if CANARY in v)
    # In direct mode the job logs to the tracking server itself and needs its credentials.
    assert leaked == [
        "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME"]
    assert env["DELIBERATE_TOKEN"] == "given-on-purpose"  # Variables may set any name
    assert env["HPCML_CANARY_PLAIN"] == "keep-me"


@pytest.mark.parametrize("name", [
    "PATH", "HOME", "LANG", "LC_ALL", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH",
    "LD_LIBRARY_PATH", "OMP_NUM_THREADS", "SSH_AUTH_SOCK", "TOKENIZERS_PARALLELISM",
    "KEYBOARD_LAYOUT", "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_TRACKING_INSECURE_TLS",
    "HPCML_DATA_DIR"])
def test_ordinary_variables_are_kept(name: str) -> None:
    assert not is_dropped(name)
