"""Helpers for the tests against the real test cluster (scripts/test-cluster-start.sh).

The tests skip with a clear reason when the cluster is not running, so the rest of the
suite works on a machine without it.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

CLUSTER_DIR = Path(os.environ.get("HPCML_TEST_CLUSTER_DIR", "/tmp/hpcml-test-cluster"))
TOY_PROJECT = Path(__file__).parent / "projects" / "toy"


def cluster_settings() -> dict[str, str] | None:
    """The settings written by the start script, or None when there is no cluster."""
    env_file = CLUSTER_DIR / "cluster.env"
    if not env_file.is_file():
        return None
    settings: dict[str, str] = {}
    for line in env_file.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            settings[key] = value
    return settings


def skip_reason() -> str | None:
    s = cluster_settings()
    if s is None:
        return (f"no test cluster ({CLUSTER_DIR}/cluster.env missing): "
                "run `sudo scripts/test-cluster-start.sh` to run the Slurm tests")
    try:
        with socket.create_connection(
            (s["HPCML_TEST_SSH_HOST"], int(s["HPCML_TEST_SSH_PORT"])), timeout=2
        ):
            pass
    except OSError as exc:
        return (f"the test cluster's sshd on {s['HPCML_TEST_SSH_HOST']}:{s['HPCML_TEST_SSH_PORT']} "
                f"is not running ({exc}): run `sudo scripts/test-cluster-start.sh`")
    return None


def ssh_section(s: dict[str, str]) -> dict[str, Any]:
    return {
        "Hostname": s["HPCML_TEST_SSH_HOST"],
        "Port": int(s["HPCML_TEST_SSH_PORT"]),
        "User": s["HPCML_TEST_SSH_USER"],
        "IdentityFile": s["HPCML_TEST_SSH_KEY"],
    }


def backend_config(s: dict[str, str], **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "SSH": ssh_section(s),
        "Resources": {"Queue": s.get("HPCML_TEST_SLURM_PARTITION", "debug"), "Runtime": "10m"},
        "Environment": {"Python": s["HPCML_TEST_PYTHON"]},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def make_project(dest: Path, s: dict[str, str], **extra: Any) -> Path:
    """The toy project with ``slurm.yaml`` (the test cluster) next to its MLproject."""
    shutil.copytree(TOY_PROJECT, dest)
    (dest / "slurm.yaml").write_text(yaml.safe_dump(backend_config(s, **extra)))
    return dest


def ssh_cmd(s: dict[str, str], command: str, check: bool = True) -> str:
    """Run a command as the test user with the ssh client (independent of the code under test)."""
    res = subprocess.run(
        [
            "ssh",
            "-F",
            s["HPCML_TEST_SSH_CONFIG"],
            "-o",
            "BatchMode=yes",
            "hpcml-test-cluster",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and res.returncode != 0:
        raise AssertionError(f"ssh {command!r} failed: {res.stderr}")
    return res.stdout


class RequeueHolds:
    """Lifts the hold Slurm puts on a requeued job (BeginTime, about 2 minutes), as its
    owner may, to keep the tests short. Not within 2 s of seeing the requeue: slurmd
    refuses a start in the same second as it revoked the previous run's credential ("Job
    credential revoked"), and that run FAILS with exit code 1 without running the script
    (Slurm's own hold is what normally prevents this)."""

    SETTLE = 2.0

    def __init__(self, s: dict[str, str]) -> None:
        self.s = s
        self._first_seen: dict[tuple[str, int], float] = {}

    def lift(self, job_id: str | None, restarts: int) -> None:
        if not job_id:
            return
        first = self._first_seen.setdefault((job_id, restarts), time.monotonic())
        if time.monotonic() - first >= self.SETTLE:
            ssh_cmd(self.s, f"scontrol update jobid={job_id} StartTime=now", check=False)


@pytest.fixture
def slurm(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test cluster's settings; the server trusts its host key. Skips without a cluster."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    s = cluster_settings()
    assert s is not None
    monkeypatch.setenv("HPCML_SSH_KNOWN_HOSTS", s["HPCML_TEST_SSH_KNOWN_HOSTS"])
    monkeypatch.delenv("HPCML_SSH_CONFIG", raising=False)
    from jupyterlab_hpcml.backends.ssh.slurm import SlurmBackend

    # Tests poll every 0.2 s: keep the backend's backoff short too.
    monkeypatch.setattr(SlurmBackend, "backoff_start", 0.5)
    monkeypatch.setattr(SlurmBackend, "backoff_max", 1.0)
    return s
