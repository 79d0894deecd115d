"""The UNICORE backend: the real pyunicore (sync client, in threads) against a protocol-faithful
UNICORE/X server on loopback (tests/servers/unicore_server.py), jobs executed for real as local
processes, end to end through the Jupyter server extension."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from jupyterlab_hpcml.backends.base import JobRef, JobSpec
from jupyterlab_hpcml.backends.unicore import (
    UnicoreBackend,
    job_description,
    job_files,
    unicore_state,
)
from jupyterlab_hpcml.core.errors import BackendUnavailable
from jupyterlab_hpcml.core.states import RunState

from .conftest import TERMINAL, mlflow_final, submit_run, wait_for_state
from .servers.unicore_server import NOT_COMPLETED, UnicoreServer

USER = "demouser"
CANARY = "canary-uc-5f2a8c61-password"  # the password: must never show up anywhere
TOKEN = "bearer-canary-0b7e"


@pytest.fixture
def unicore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    server = UnicoreServer(tmp_path / "unicore", users={USER: CANARY}, tokens=(TOKEN,)).start()
    monkeypatch.setenv("MANTIK_UNICORE_USERNAME", USER)
    monkeypatch.setenv("MANTIK_UNICORE_PASSWORD", CANARY)
    monkeypatch.setattr(UnicoreBackend, "retry_backoff", (0.05, 0.1, 0.2))
    yield server
    server.stop()


def config(server: UnicoreServer, **resources) -> dict:
    return {"UnicoreApiUrl": server.base_url,
            "Resources": {"Queue": "batch", "Runtime": "10m", "Account": "proj1", **resources}}


@pytest.fixture
def uc_project(toy_project: Path, unicore: UnicoreServer) -> Path:
    (toy_project / "unicore.yaml").write_text(yaml.safe_dump(config(unicore)))
    return toy_project


async def submit(api, **body) -> dict:
    return await submit_run(api, **{"backend_config": "unicore.yaml", **body})


# ---------------------------------------------------------------- end to end


async def test_submit_to_finished_with_metrics_logs_artifacts_and_no_secret(
    api, uc_project, unicore, hpcml_data, log_records
):
    run = await submit(api, parameters={"steps": 4, "label": "uc"})
    assert run["backend"] == "unicore" and run["backend_job_id"]
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    assert run["state"] == "FINISHED", run
    client = MlflowClient()
    assert [m.value for m in client.get_metric_history(run["mlflow_run_id"], "loss")] == [
        1.0,
        0.5,
        1 / 3,
        0.25,
    ]
    await mlflow_final(run)  # the final sync (artifacts) runs after the record turns FINISHED
    assert [a.path for a in client.list_artifacts(run["mlflow_run_id"])] == ["result.txt"]

    _, log = await api("GET", f"runs/{run['id']}/logs/stdout")
    assert "step 3 loss 0.250" in log["data"]
    _, arts = await api("GET", f"runs/{run['id']}/artifacts")
    assert [a["path"] for a in arts["artifacts"]] == ["result.txt"]
    _, body = await api("GET", f"runs/{run['id']}/artifacts/download", path="result.txt")
    assert body == b"label=uc\n"

    desc = unicore.state.submitted_descriptions[-1]
    assert desc["Project"] == "proj1" and desc["Resources"] == {"Queue": "batch", "Runtime": "600"}
    assert "Environment" not in desc  # UNICORE would write it into a script unescaped
    assert desc["Stdout"] == ".hpcml/stdout.log" and f"hpcml-run-{run['id']}" in desc["Tags"]

    _, listing = await api("GET", "runs")
    assert CANARY not in json.dumps(listing)
    assert CANARY not in "\n".join(log_records)
    assert CANARY.encode() not in (hpcml_data / "runs.sqlite").read_bytes()
    for path in unicore.state.root.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    mlrun = client.get_run(run["mlflow_run_id"])
    assert CANARY not in json.dumps({**mlrun.data.params, **mlrun.data.tags})


async def test_cancel_running_job_and_log_tail_while_running(api, uc_project, unicore):
    run = await submit(api, entry_point="sleep")
    await wait_for_state(api, run["id"], {"RUNNING"}, timeout=30)
    for _ in range(100):
        _, log = await api("GET", f"runs/{run['id']}/logs/stdout")
        if "sleeping" in log["data"]:
            break
        await asyncio.sleep(0.1)
    assert "sleeping" in log["data"] and log["running"] is True
    # a tail read by HTTP Range: only the bytes after the offset travel
    _, tail = await api("GET", f"runs/{run['id']}/logs/stdout", offset=3, max_bytes=4)
    assert tail["data"] == "epin" and tail["offset"] == 3
    status, _ = await api("POST", f"runs/{run['id']}/cancel")
    assert status == 200
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=30)
    assert run["state"] == "CANCELLED", run
    job = unicore.state.jobs[run["backend_job_id"]]
    assert job.status == "FAILED" and "aborted" in job.status_message  # as UNICORE reports it


async def test_nested_folders_uploaded_intact(api, uc_project):
    nested = uc_project / "data" / "deep" / "deeper"
    nested.mkdir(parents=True)
    (nested / "leaf.txt").write_text("leaf\n")
    (uc_project / "data" / "top.txt").write_text("top\n")
    blob = os.urandom(300_000)
    (uc_project / "data" / "blob.bin").write_bytes(blob)
    (uc_project / "check.py").write_text(
        "import hashlib, pathlib\n"
        "p = pathlib.Path('data')\n"
        "print(sorted(str(f) for f in p.rglob('*') if f.is_file()))\n"
        "print(hashlib.sha256((p / 'blob.bin').read_bytes()).hexdigest())\n"
    )
    mlproject = uc_project / "MLproject"
    mlproject.write_text(mlproject.read_text() + "  check:\n    command: \"python check.py\"\n")
    run = await submit(api, entry_point="check")
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    assert run["state"] == "FINISHED", run
    _, log = await api("GET", f"runs/{run['id']}/logs/stdout")
    lines = log["data"].strip().splitlines()
    assert lines[-2] == str(["data/blob.bin", "data/deep/deeper/leaf.txt", "data/top.txt"])
    assert lines[-1] == hashlib.sha256(blob).hexdigest()


async def test_faults_survived_with_state_kept(api, uc_project, unicore):
    faults = unicore.state.faults
    faults.add("drop", path=r"/jobs$", method="POST")  # ambiguous submission
    faults.add("500", path=r"/jobs/[0-9a-f-]+$", method="GET", times=2)
    faults.add("429", path=r"/jobs/[0-9a-f-]+$", method="GET", times=1)
    faults.add("drop", path=r"/jobs/[0-9a-f-]+$", method="GET", times=2)
    faults.add("500", path=r"/files/", method="PUT", times=1)
    run = await submit(api, parameters={"steps": 3, "delay": 0.3})
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    assert run["state"] == "FINISHED", run
    assert "FAILED" not in [c["state"] for c in run["state_history"]]
    assert len(unicore.state.jobs) == 1  # the dropped submission was found, not repeated
    assert faults.fired["drop"] == 3 and faults.fired["500"] == 3


async def test_wrong_credentials_give_a_clear_message(api, uc_project, monkeypatch, log_records):
    wrong = "wrong-password-canary-77"
    monkeypatch.setenv("MANTIK_UNICORE_PASSWORD", wrong)
    run = await submit(api)
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=30)
    assert run["state"] == "FAILED"
    message = run["state_history"][-1]["message"]
    assert "refused the credentials of user 'demouser'" in message and "401" in message, message
    assert wrong not in json.dumps(run) and wrong not in "\n".join(log_records)


async def test_token_entered_in_the_lab_is_used_and_never_shown(
    api, uc_project, monkeypatch, log_records, lab_credentials
):
    monkeypatch.delenv("MANTIK_UNICORE_USERNAME")
    monkeypatch.delenv("MANTIK_UNICORE_PASSWORD")
    body = {"project": "toy", "backend_config": "unicore.yaml", "parameters": {"steps": 1}}
    status, missing = await api("POST", "runs", body)
    assert status == 400 and missing["reason"] == "credentials_missing"
    assert missing["kind"] == "unicore" and missing["fields"] == [
        ["username", "password"],
        ["token"],
    ]
    where = {"project": "toy", "backend_config": "unicore.yaml"}
    status, answer = await api(
        "PUT", "credentials", {**where, "values": {"username": USER, "password": "wrong-pw-canary"}}
    )
    assert status == 200
    status, run = await api("POST", "runs", body)
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=30)
    assert (
        run["state"] == "FAILED"
        and "refused the credentials" in run["state_history"][-1]["message"]
    )
    # Entered again: the backend logs in with the new ones (no restart).
    status, answer = await api("PUT", "credentials", {**where, "values": {"token": TOKEN}})
    assert status == 200 and answer["fields"] == ["token"]
    status, run = await api("POST", "runs", body)
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    assert run["state"] == "FINISHED", run
    shown = json.dumps(run) + json.dumps(answer) + "\n".join(log_records)
    assert TOKEN not in shown and "wrong-pw-canary" not in shown


async def test_bearer_token_auth(api, uc_project, monkeypatch):
    monkeypatch.delenv("MANTIK_UNICORE_USERNAME")
    monkeypatch.delenv("MANTIK_UNICORE_PASSWORD")
    monkeypatch.setenv("HPCML_UNICORE_TOKEN", TOKEN)
    run = await submit(api, parameters={"steps": 1})
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    assert run["state"] == "FINISHED", run


# ---------------------------------------------------------------- backend level


def test_job_description_mapping():
    job = JobSpec(
        run_id="abc",
        command="python train.py",
        env={"MLFLOW_RUN_ID": "r1"},
        resources={
            "Queue": "booster",
            "Runtime": 5400,
            "Nodes": 2,
            "CPUsPerNode": 48,
            "TotalCPUs": 96,
            "GPUsPerNode": 4,
            "MemoryPerNode": 65536,
            "Reservation": "res1",
            "NodeConstraints": "gpu",
            "QoS": "normal",
            "Account": "deepacf",
        },
        environment={
            "Variables": {"A": "1"},
            "PreRunCommandOnLoginNode": ["module avail"],
            "PostRunCommandOnLoginNode": ["echo done"],
        },
        job_name="hpcml-toy-main",
    )
    desc = job_description("abc", job)
    assert desc["Resources"] == {
        "Queue": "booster",
        "Runtime": "5400",
        "Nodes": 2,
        "CPUsPerNode": 48,
        "TotalCPUs": 96,
        "GPUsPerNode": 4,
        "Memory": "65536M",
        "Reservation": "res1",
        "NodeConstraints": "gpu",
        "QoS": "normal",
    }
    assert desc["Project"] == "deepacf" and desc["Job type"] == "BATCH"
    assert "Environment" not in desc
    assert job_files(job) == {".hpcml/env.sh": b"export MLFLOW_RUN_ID=r1\nexport A=1\n"}
    # the login-node commands see the same environment as the job
    assert desc["User precommand"] == ". ./.hpcml/env.sh && { module avail; }"
    assert desc["RunUserPrecommandOnLoginNode"] is True
    assert desc["User postcommand"] == ". ./.hpcml/env.sh && { echo done; }"
    assert desc["RunUserPostcommandOnLoginNode"] is True
    assert desc["Executable"] == "bash" and desc["Arguments"] == [".hpcml/job.sh"]
    # The Slurm TSI floors Runtime to whole minutes: asked for 90 s, the job gets 2 minutes, not 1.
    assert job_description("abc", JobSpec(run_id="abc", command="x", resources={"Runtime": 90})
                           )["Resources"]["Runtime"] == "120"
    login = job_description("abc", JobSpec(run_id="abc", command="x", resources={"Queue": "login"}))
    assert login["Job type"] == "ON_LOGIN_NODE" and "Resources" not in login


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"status": "READY"}, RunState.QUEUED),
        ({"status": "STAGINGIN"}, RunState.QUEUED),
        ({"status": "QUEUED"}, RunState.QUEUED),
        ({"status": "RUNNING"}, RunState.RUNNING),
        ({"status": "STAGINGOUT"}, RunState.RUNNING),
        ({"status": "SUCCESSFUL", "exitCode": "0"}, RunState.FINISHED),
        ({"status": "SUCCESSFUL", "exitCode": "3"}, RunState.FAILED),
        (
            {"status": "FAILED", "exitCode": "1", "statusMessage": "non-zero exit code"},
            RunState.FAILED,
        ),
        ({"status": "FAILED", "statusMessage": "Job was aborted by the user."}, RunState.FAILED),
        # UNICORE has no TIMEOUT status (judge_end decides from the batch system's report)
        ({"status": "FAILED", "statusMessage": NOT_COMPLETED}, RunState.FAILED),
    ],
)
def test_status_mapping(props, expected):
    assert unicore_state(props).state == expected


async def test_poll_requests_are_bounded_per_cycle(unicore, tmp_path):
    """No bulk status call in UNICORE: one small GET per job, max_status_requests per cycle."""
    backend = UnicoreBackend(config(unicore), tmp_path)
    backend.max_status_requests = 10
    refs = [JobRef(f"r{i}", f"00000000-0000-0000-0000-{i:012d}", ".") for i in range(25)]
    unicore.state.reset_counts()
    await backend.poll(refs)
    assert unicore.state.requests["GET /jobs/{id}"] == 10
    assert unicore.state.total_requests() == 11  # + the client's authentication check, once


async def test_unreachable_server_is_backend_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("MANTIK_UNICORE_USERNAME", USER)
    monkeypatch.setenv("MANTIK_UNICORE_PASSWORD", CANARY)
    backend = UnicoreBackend({"UnicoreApiUrl": "http://127.0.0.1:9/SITE/rest/core"}, tmp_path)
    backend.retry_backoff = (0.01,)
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailable):
        await backend.poll([JobRef("r", "00000000-0000-0000-0000-000000000001", ".")])
    assert time.monotonic() - t0 < 10
