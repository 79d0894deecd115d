"""The FirecREST backend: the real pyfirecrest client against a protocol-faithful FirecREST v2
server on loopback (tests/servers/firecrest_server.py), jobs executed for real as local processes,
end to end through the Jupyter server extension."""
from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from jupyterlab_hpcml.backends.base import JobRef
from jupyterlab_hpcml.backends.credentials import AsyncClientCredentialsAuth, Secret
from jupyterlab_hpcml.backends.firecrest import FirecrestBackend, slurm_state
from jupyterlab_hpcml.core.errors import BackendUnavailable
from jupyterlab_hpcml.core.states import RunState

from .conftest import TERMINAL, mlflow_final, submit_run, wait_for_state
from .firecrest_fixtures import CLIENT_ID, config, serve_firecrest
from .servers.firecrest_server import FirecrestServer

CANARY = "canary-fc-7d1e9b3a-secret"  # the client secret: must never show up anywhere
JOBS_LIST = "GET /compute/{system}/jobs"


@pytest.fixture
def firecrest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    yield from serve_firecrest(tmp_path, monkeypatch, CANARY)


@pytest.fixture
def fc_project(toy_project: Path, firecrest: FirecrestServer) -> Path:
    (toy_project / "firecrest.yaml").write_text(yaml.safe_dump(config(firecrest)))
    return toy_project


async def submit(api, **body) -> dict:
    return await submit_run(api, **{"backend_config": "firecrest.yaml", **body})


def states(run: dict) -> list[str]:
    return [c["state"] for c in run["state_history"]]


# ---------------------------------------------------------------- end to end


async def test_submit_to_finished_with_metrics_logs_artifacts_and_no_secret(
    api, fc_project, firecrest, hpcml_data, log_records
):
    run = await submit(api, parameters={"steps": 4, "label": "fc"})
    assert run["backend"] == "firecrest" and run["backend_job_id"]
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    assert run["state"] == "FINISHED", run
    assert run["tracking_mode"] == "offline"
    scratch = firecrest.state.scratch / "testuser" / "hpcml"
    assert run["run_dir"] == f"{scratch}/{run['id']}"

    client = MlflowClient()
    assert await mlflow_final(run) == "FINISHED"  # set after the final offline sync
    assert [m.value for m in client.get_metric_history(run["mlflow_run_id"], "loss")] == [
        1.0,
        0.5,
        1 / 3,
        0.25,
    ]
    assert [a.path for a in client.list_artifacts(run["mlflow_run_id"])] == ["result.txt"]

    status, log = await api("GET", f"runs/{run['id']}/logs/stdout")
    assert status == 200 and "step 3 loss 0.250" in log["data"]
    status, arts = await api("GET", f"runs/{run['id']}/artifacts")
    assert [a["path"] for a in arts["artifacts"]] == ["result.txt"]
    _, body = await api("GET", f"runs/{run['id']}/artifacts/download", path="result.txt")
    assert body == b"label=fc\n"

    # The job's (public) environment is in the script, quoted; never in the API's env field,
    # which the real server turns into `sbatch --export=...` (see test_firecrest_real.py).
    sent = firecrest.state.submitted_bodies[-1]["job"]
    assert "env" not in sent and f"export MLFLOW_RUN_ID={run['mlflow_run_id']}" in sent["script"]
    assert sent["partition"] == "normal"

    # A second run of the same code uploads only the manifest and the tracking files.
    requests_before = firecrest.state.total_requests()
    second = await submit(api, parameters={"steps": 1})
    second = await wait_for_state(api, second["id"], TERMINAL, timeout=60)
    assert second["state"] == "FINISHED"
    assert firecrest.state.requests["POST /filesystem/{system}/transfer/upload"] == 0
    assert firecrest.state.total_requests() > requests_before

    # The canary (client secret) is nowhere: records, responses, logs, files, MLflow.
    _, listing = await api("GET", "runs")
    assert CANARY not in json.dumps(listing) and CANARY not in json.dumps(run)
    assert CANARY not in "\n".join(log_records)
    assert CANARY.encode() not in (hpcml_data / "runs.sqlite").read_bytes()
    for path in firecrest.state.root.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    mlrun = client.get_run(run["mlflow_run_id"])
    assert CANARY not in json.dumps({**mlrun.data.params, **mlrun.data.tags})


async def test_cancel_running_job_and_log_tail_while_running(api, fc_project, firecrest):
    run = await submit(api, entry_point="sleep")
    await wait_for_state(api, run["id"], {"RUNNING"}, timeout=30)
    for _ in range(100):  # the log grows while the job runs
        _, log = await api("GET", f"runs/{run['id']}/logs/stdout")
        if "sleeping" in log["data"]:
            break
        await asyncio.sleep(0.1)
    assert "sleeping" in log["data"] and log["running"] is True
    status, _ = await api("POST", f"runs/{run['id']}/cancel")
    assert status == 200
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=30)
    assert run["state"] == "CANCELLED", run
    assert firecrest.state.jobs[run["backend_job_id"]].state().startswith("CANCELLED by")
    assert await mlflow_final(run) == "KILLED"


async def test_nested_folders_and_large_file_through_staged_transfer(api, fc_project, firecrest):
    nested = fc_project / "data" / "deep" / "deeper"
    nested.mkdir(parents=True)
    (nested / "leaf.txt").write_text("leaf\n")
    (fc_project / "data" / "top.txt").write_text("top\n")
    big = os.urandom(1_300_000)  # incompressible, above the 1 MiB direct-upload limit
    (fc_project / "data" / "big.bin").write_bytes(big)
    (fc_project / "check.py").write_text(
        "import hashlib, pathlib\n"
        "p = pathlib.Path('data')\n"
        "print(sorted(str(f) for f in p.rglob('*') if f.is_file()))\n"
        "print(hashlib.sha256((p / 'big.bin').read_bytes()).hexdigest())\n"
    )
    mlproject = fc_project / "MLproject"
    mlproject.write_text(mlproject.read_text() + "  check:\n    command: \"python check.py\"\n")
    run = await submit(api, entry_point="check")
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    assert run["state"] == "FINISHED", run
    _, log = await api("GET", f"runs/{run['id']}/logs/stdout")
    lines = log["data"].strip().splitlines()
    assert lines[-2] == str(["data/big.bin", "data/deep/deeper/leaf.txt", "data/top.txt"])
    import hashlib

    assert lines[-1] == hashlib.sha256(big).hexdigest()
    reqs = firecrest.state.requests
    assert reqs["POST /filesystem/{system}/transfer/upload"] == 1
    assert reqs["PUT /s3/{id}/part/1"] == 1 and reqs["PUT /s3/{id}/part/2"] == 1


async def test_token_expiry_and_faults_survived_with_state_kept(
    api, fc_project, firecrest, monkeypatch
):
    # A dropped submission is looked for in the job list this long before it is sent again.
    monkeypatch.setattr(FirecrestBackend, "ambiguous_settle", 3.0)
    firecrest.state.tokens.lifetime = 1.5  # tokens expire several times during the run
    faults = firecrest.state.faults
    faults.add("drop", path=r"/compute/[^/]+/jobs$", method="POST")  # ambiguous submit
    faults.add("500", path=r"/compute/[^/]+/jobs$", method="GET", times=2)
    faults.add("429", path=r"/compute/[^/]+/jobs$", method="GET", times=2, arg=0)
    faults.add("drop", path=r"/compute/[^/]+/jobs$", method="GET", times=2)
    faults.add("401", path=r"/filesystem/", times=1)  # a token the server no longer accepts
    run = await submit(api, parameters={"steps": 6, "delay": 0.5})
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    assert run["state"] == "FINISHED", run
    assert "FAILED" not in states(run)
    assert (
        len([j for j in firecrest.state.jobs.values() if not j.transfer]) == 1
    )  # no double submission
    assert firecrest.state.tokens.issued >= 3
    assert faults.fired["500"] == 2 and faults.fired["429"] == 2 and faults.fired["drop"] == 3
    assert await mlflow_final(run) == "FINISHED"
    history = MlflowClient().get_metric_history(run["mlflow_run_id"], "loss")
    assert [m.step for m in history] == list(range(6))


async def test_wrong_credentials_give_a_clear_message(api, fc_project, monkeypatch, log_records):
    wrong = "wrong-secret-canary-42"
    monkeypatch.setenv("MANTIK_FIRECREST_CLIENT_SECRET", wrong)
    run = await submit(api)
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=30)
    assert run["state"] == "FAILED"
    message = run["state_history"][-1]["message"]
    assert "refused the client credentials" in message and CLIENT_ID in message, message
    assert wrong not in json.dumps(run) and wrong not in "\n".join(log_records)


async def test_credentials_entered_in_the_lab_are_used_and_never_shown(
    api, fc_project, firecrest, monkeypatch, log_records, lab_credentials
):
    monkeypatch.delenv("MANTIK_FIRECREST_CLIENT_ID")
    monkeypatch.delenv("MANTIK_FIRECREST_CLIENT_SECRET")
    body = {"project": "toy", "backend_config": "firecrest.yaml", "parameters": {"steps": 1}}
    status, missing = await api("POST", "runs", body)
    assert status == 400 and "MANTIK_FIRECREST_CLIENT_ID" in missing["message"]
    assert missing["reason"] == "credentials_missing" and missing["kind"] == "firecrest"
    assert missing["fields"] == [["client_id", "client_secret"], ["api_key"]]
    assert (await api("GET", "runs"))[1]["total"] == 0  # nothing was created

    where = {"project": "toy", "backend_config": "firecrest.yaml"}
    status, answer = await api("PUT", "credentials", {**where, "values": {"client_id": CLIENT_ID}})
    assert status == 400 and answer["problems"][0]["key"] == "values"
    status, answer = await api("PUT", "credentials", {**where, "values": {"password": CANARY}})
    assert status == 400 and answer["problems"][0]["key"] == "values.password"
    assert CANARY not in json.dumps(answer)
    status, answer = await api("PUT", "credentials", {
        **where, "values": {"client_id": CLIENT_ID, "client_secret": CANARY}})
    stored = {"connection": missing["connection"], "kind": "firecrest",
              "fields": ["client_id", "client_secret"], "api_url": firecrest.url,
              "token_url": firecrest.token_url, "secret_sent_to": firecrest.token_url}
    assert status == 200 and answer == stored
    assert (await api("GET", "credentials"))[1] == {"connections": [stored]}

    status, run = await api("POST", "runs", body)
    assert status == 201, run
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    assert run["state"] == "FINISHED", run
    assert CANARY not in json.dumps(run) and CANARY not in "\n".join(log_records)

    status, _ = await api("DELETE", "credentials", connection=missing["connection"])
    assert status == 204 and (await api("GET", "credentials"))[1] == {"connections": []}
    assert (await api("POST", "runs", body))[0] == 400


# ---------------------------------------------------------------- backend level


async def test_poll_is_one_request_per_machine_for_many_runs(firecrest, tmp_path):
    backend = FirecrestBackend(config(firecrest), tmp_path)
    try:
        refs = [JobRef(f"r{i}", str(5000 + i), "") for i in range(200)]
        backend._submitted_at.update({r.job_id: time.monotonic() for r in refs})
        firecrest.state.reset_counts()
        statuses = await backend.poll(refs)
        assert len(statuses) == 200 and {s.state for s in statuses.values()} == {RunState.QUEUED}
        assert firecrest.state.requests[JOBS_LIST] == 1
        assert firecrest.state.total_requests() == 2  # + the token endpoint, once
    finally:
        await backend.close()


async def test_unreachable_server_is_backend_unavailable(firecrest, tmp_path):
    cfg = config(firecrest)
    cfg["Firecrest"]["ApiUrl"] = "http://127.0.0.1:9"  # nothing listens on the discard port
    backend = FirecrestBackend(cfg, tmp_path)
    backend.retry_backoff = (0.01,)
    try:
        with pytest.raises(BackendUnavailable, match="cannot be reached"):
            await backend.poll([JobRef("r", "1", "")])
    finally:
        await backend.close()


async def test_token_refresh_does_not_block_the_event_loop(firecrest):
    firecrest.state.faults.add("delay", path=r"/auth/token", arg=0.6)
    auth = AsyncClientCredentialsAuth(CLIENT_ID, Secret(CANARY), firecrest.token_url)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    headers = await auth.auth_headers()
    task.cancel()
    assert headers["Authorization"].startswith("Bearer tok-")
    assert ticks >= 20  # the loop kept running while the token endpoint took 0.6 s
    assert CANARY not in repr(auth)


@pytest.mark.parametrize(
    ("state", "exit_code", "expected"),
    [
        ("PENDING", 0, RunState.QUEUED), ("CONFIGURING", 0, RunState.QUEUED),
        ("REQUEUED", 0, RunState.QUEUED), ("RUNNING", 0, RunState.RUNNING),
        ("COMPLETING", 0, RunState.RUNNING), ("SUSPENDED", 0, RunState.RUNNING),
        ("COMPLETED", 0, RunState.FINISHED), ("COMPLETED", 2, RunState.FAILED),
        ("FAILED", 1, RunState.FAILED), ("NODE_FAIL", 0, RunState.FAILED),
        ("OUT_OF_MEMORY", 0, RunState.FAILED), ("BOOT_FAIL", 0, RunState.FAILED),
        ("DEADLINE", 0, RunState.TIMEOUT), ("PREEMPTED", 0, RunState.FAILED),
        ("TIMEOUT", 0, RunState.TIMEOUT), ("CANCELLED", 0, RunState.CANCELLED),
        ("CANCELLED by 12345", 0, RunState.CANCELLED), (["CANCELLED"], 0, RunState.CANCELLED),
        ("RUNNING,COMPLETING", 0, RunState.RUNNING), ("FAILED", "3:0", RunState.FAILED),
    ],
)
def test_slurm_state_mapping(state, exit_code, expected):
    status = slurm_state({"status": {"state": state, "exitCode": exit_code}})
    assert status.state == expected
    if expected == RunState.FAILED and exit_code not in (0, "0"):
        assert status.exit_code == int(str(exit_code).split(":")[0])
