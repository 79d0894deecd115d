"""Slurm over SSH, end to end: the real server extension → real sshd → real Slurm.

Needs the test cluster (scripts/test-cluster-start.sh); skips without it.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess

import pytest
from mlflow.tracking import MlflowClient

from .conftest import TERMINAL, submit_run, wait_for_state
from .slurm_cluster import CLUSTER_DIR, make_project, slurm, ssh_cmd  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("slurm")


@pytest.fixture
def project(jp_root_dir, slurm):  # noqa: F811
    return make_project(jp_root_dir / "toy", slurm)


async def submit(api, **body) -> dict:
    return await submit_run(api, **{"backend_config": "slurm.yaml", **body})


async def read_all(api, run_id: str, stream: str = "stdout") -> str:
    status, log = await api("GET", f"runs/{run_id}/logs/{stream}", max_bytes=1 << 20)
    assert status == 200, log
    return log["data"]


async def test_finished_with_metrics_logs_script_and_artifacts(api, project, slurm):  # noqa: F811
    run = await submit(api, parameters={"steps": 4, "label": "digits"}, run_name="slurm-first")
    assert run["backend"] == "ssh" and run["backend_job_id"].isdigit(), run
    assert run["state"] in {"QUEUED", "RUNNING"}
    assert run["run_dir"].endswith(f"/hpcml/toy/{run['id']}")
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=120)
    assert run["state"] == "FINISHED", run
    assert run["exit_code"] == 0

    client = MlflowClient()
    history = client.get_metric_history(run["mlflow_run_id"], "loss")
    assert [m.value for m in history] == [1.0, 0.5, 1 / 3, 0.25]
    assert client.get_run(run["mlflow_run_id"]).info.status == "FINISHED"

    stdout = await read_all(api, run["id"])
    assert "step 3 loss 0.250" in stdout
    # Offsets: the tail of the log without reading it all.
    status, tail = await api(
        "GET", f"runs/{run['id']}/logs/stdout", offset=len(stdout.encode()) - 6
    )
    assert status == 200 and tail["data"] == stdout[-6:]

    status, arts = await api("GET", f"runs/{run['id']}/artifacts")
    assert status == 200 and [a["path"] for a in arts["artifacts"]] == ["result.txt"]
    status, body = await api("GET", f"runs/{run['id']}/artifacts/download", path="result.txt")
    assert status == 200 and body == b"label=digits\n"

    # The generated script is kept with the run; the code that landed is the recorded code.
    script = ssh_cmd(slurm, f"cat {run['run_dir']}/.hpcml/job.sbatch")
    assert "#SBATCH --partition=debug" in script and "#SBATCH --time=00:10:00" in script
    code = json.loads(ssh_cmd(slurm, f"cat {run['run_dir']}/.hpcml/code.json"))
    assert code["snapshot_id"] == run["code"]["content_hash"] == run["snapshot_id"]
    exit_record = json.loads(ssh_cmd(slurm, f"cat {run['run_dir']}/.hpcml/exit_code"))
    assert exit_record["exit_code"] == 0 and exit_record["slurm_job_id"] == run["backend_job_id"]


async def test_failed_cancelled_and_timeout(api, project, slurm):  # noqa: F811
    # Submitted together: the one-minute TIMEOUT dominates the time this test takes.
    timeout = await submit(api, entry_point="sleep", parameters={"seconds": 300},
                           overrides=["Resources.Runtime=1m"])
    failed = await submit(api, entry_point="fail", parameters={"code": 7})
    sleeper = await submit(api, entry_point="sleep", parameters={"seconds": 300})

    failed = await wait_for_state(api, failed["id"], TERMINAL, timeout=120)
    assert failed["state"] == "FAILED" and failed["exit_code"] == 7, failed
    assert "failing now" in await read_all(api, failed["id"])
    assert MlflowClient().get_run(failed["mlflow_run_id"]).info.status == "FAILED"

    await wait_for_state(api, sleeper["id"], {"RUNNING"}, timeout=60)
    status, cancelled = await api("POST", f"runs/{sleeper['id']}/cancel")
    assert status == 200 and cancelled["cancel_requested"] is True
    cancelled = await wait_for_state(api, sleeper["id"], TERMINAL, timeout=60)
    assert cancelled["state"] == "CANCELLED", cancelled
    assert MlflowClient().get_run(cancelled["mlflow_run_id"]).info.status == "KILLED"

    timeout = await wait_for_state(api, timeout["id"], TERMINAL, timeout=180)
    assert timeout["state"] == "TIMEOUT", timeout
    assert "sleeping" in await read_all(api, timeout["id"])


async def test_rejected_at_submit_shows_slurm_message(api, project):
    status, run = await api("POST", "runs", {"project": "toy", "backend_config": "slurm.yaml",
                                             "overrides": ["Resources.Queue=nosuch"]})
    assert status == 201, run
    assert run["state"] == "FAILED", run
    message = run["state_history"][-1]["message"]
    assert "Slurm rejected the job" in message and "invalid partition" in message.lower(), message

    status, run = await api("POST", "runs", {"project": "toy", "backend_config": "slurm.yaml",
                                             "overrides": ["Resources.NodeConstraints=gpu"]})
    assert run["state"] == "FAILED", run
    assert "Invalid feature specification" in run["state_history"][-1]["message"]


async def test_hostile_parameter_arrives_literally_and_secret_never_shows(
    api, project, slurm, monkeypatch  # noqa: F811
):
    canary = "canary-" + os.urandom(6).hex()
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", canary)
    hostile = "$(touch /tmp/hpcml-pwned); `id` 'q' \"dq\" \\ ; echo ${HOME} && exit 9"
    # Direct tracking on the cluster (a store the job can reach) so that the token travels.
    # (the entry point does not log to it: the run exists only in the server's store)
    (project / "direct.yaml").write_text((project / "slurm.yaml").read_text() +
                                         "Tracking: {Mode: direct, Uri: 'https://mlflow.invalid'}\n")
    (project / "token_check.py").write_text(
        "import os\n"
        "print('SECRET_TOKEN_SET' if os.environ.get('MLFLOW_TRACKING_TOKEN') else 'no token')\n"
    )
    with open(project / "MLproject", "a") as f:
        f.write("  token:\n    command: python token_check.py\n")
    args = await submit(api, entry_point="args", parameters={"value": hostile})
    tracked = await submit(api, entry_point="token", backend_config="direct.yaml")
    args = await wait_for_state(api, args["id"], TERMINAL, timeout=120)
    assert args["state"] == "FINISHED", args
    status, chunk = await api("GET", f"runs/{args['id']}/logs/stdout")
    assert json.loads(chunk["data"].strip().splitlines()[-1]) == [hostile]
    assert ssh_cmd(slurm, "test -e /tmp/hpcml-pwned && echo yes || echo no").strip() == "no"

    job_id = tracked["backend_job_id"]
    tracked = await wait_for_state(api, tracked["id"], TERMINAL, timeout=120)
    assert tracked["exit_code"] == 0, tracked
    stdout = await read_all(api, tracked["id"])
    assert "SECRET_TOKEN_SET" in stdout  # the job got the token...
    script = ssh_cmd(slurm, f"cat {tracked['run_dir']}/.hpcml/job.sbatch")
    scontrol = ssh_cmd(slurm, f"scontrol show job -dd {job_id}", check=False)
    everything = (
        script
        + scontrol
        + stdout
        + await read_all(api, tracked["id"], "stderr")
        + json.dumps(tracked)
    )
    assert canary not in everything  # ...but it is nowhere to be seen
    leftovers = ssh_cmd(slurm, f"grep -rl {canary} ~/hpcml 2>/dev/null || true")
    assert leftovers.strip() == ""  # the 0600 secrets file is removed when the job ends


def _sshd_pid() -> int:
    return int((CLUSTER_DIR / "sshd.pid").read_text())


def _stop_sshd() -> None:
    """Stop the test sshd and the sessions it serves (our own connection among them)."""
    master = _sshd_pid()
    children = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True
    ).stdout
    os.kill(master, signal.SIGTERM)
    for pid in children.split():
        try:
            os.kill(int(pid), signal.SIGTERM)
        except ProcessLookupError:
            pass


def _start_sshd() -> None:
    subprocess.run(["/usr/sbin/sshd", "-f", str(CLUSTER_DIR / "sshd_config"), "-E",
                    str(CLUSTER_DIR / "logs" / "sshd.log")], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="restarting the test sshd needs root")
async def test_sshd_restart_during_polling_is_survived(api, project):
    run = await submit(api, parameters={"steps": 12, "delay": 1})
    await wait_for_state(api, run["id"], {"RUNNING"}, timeout=60)
    _stop_sshd()
    try:
        down = await wait_for_state(api, run["id"], {"UNKNOWN"} | TERMINAL, timeout=60)
        assert down["state"] == "UNKNOWN", down  # unreachable is not FAILED
        assert (
            "cannot reach" in down["state_history"][-1]["message"]
            or "lost" in down["state_history"][-1]["message"]
        )
    finally:
        for _ in range(50):
            try:
                _start_sshd()
                break
            except subprocess.CalledProcessError:
                await asyncio.sleep(0.2)
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=120)
    assert run["state"] == "FINISHED", run
    assert len(MlflowClient().get_metric_history(run["mlflow_run_id"], "loss")) == 12
