"""The UNICORE backend against what the real UNICORE/X does (tests/servers/unicore_server.py
imitates each point, quoting the UNICORE/X and TSI sources), and under injected faults: the real
pyunicore → the loopback server, through the Jupyter server extension."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from jupyterlab_hpcml.backends.exitrecord import ExitRecord
from jupyterlab_hpcml.backends.unicore import UnicoreBackend, judge_end
from jupyterlab_hpcml.core.errors import UserInputError
from jupyterlab_hpcml.core.states import JobStatus, RunState

from .conftest import TERMINAL, mlflow_final, submit_run, wait_for_state
from .servers.unicore_server import NOT_COMPLETED, UnicoreServer

USER = "demouser"
PASSWORD = "pw-5b9e1c"
TOKEN_CANARY = "tracking-token-canary-8d1f0a77"

ENVCHECK = """\
import hashlib, json, os, stat
keys = ["QUOTE", "DOLLAR", "TICK", "NEWLINE", "MIXED", "MLFLOW_RUN_ID"]
out = {k: os.environ.get(k) for k in keys}
token = os.environ.get("MLFLOW_TRACKING_TOKEN", "")
out["token_sha"] = hashlib.sha256(token.encode()).hexdigest()
out["secrets_mode"] = oct(stat.S_IMODE(os.stat(".hpcml/secrets.env").st_mode))
print("ENV " + json.dumps(out), flush=True)
"""

BIGMETRIC = """\
import os, sys, time
from urllib.parse import urlparse
import mlflow
n = int(sys.argv[1])
with mlflow.start_run() as run:
    mlflow.log_metric("big", 0.0, step=0)
    root = urlparse(mlflow.get_tracking_uri()).path
    path = os.path.join(root, run.info.experiment_id, run.info.run_id, "metrics", "big")
    ts = int(time.time() * 1000)
    with open(path, "a") as f:  # one write: the job ends right after
        f.write("".join(f"{ts} {i}.5 {i}\\n" for i in range(1, n)))
print("wrote", n, flush=True)
"""

VARIABLES = {
    "QUOTE": 'say "hi" \\" done',
    "DOLLAR": "$HOME/x and ${USER} and $LOGNAME",
    "TICK": "`id -u` $(echo injected)",
    "NEWLINE": "line one\nline two; export HACKED=1",
    "MIXED": 'it\'s "$PATH" \\ ; `true`',
}


@pytest.fixture
def unicore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    server = UnicoreServer(tmp_path / "unicore", users={USER: PASSWORD}).start()
    monkeypatch.setenv("MANTIK_UNICORE_USERNAME", USER)
    monkeypatch.setenv("MANTIK_UNICORE_PASSWORD", PASSWORD)
    # Short client timeouts and backoff: a hung request ends in 2 s instead of 30.
    monkeypatch.setattr(UnicoreBackend, "http_timeout", 2.0)
    monkeypatch.setattr(UnicoreBackend, "retry_backoff", (0.05, 0.1, 0.2))
    yield server
    server.stop()


def write_config(
    project: Path, server: UnicoreServer, name: str = "unicore.yaml", **extra: Any
) -> str:
    cfg = {
        "UnicoreApiUrl": server.base_url,
        "Resources": {"Queue": "batch", "Runtime": "10m", "Account": "proj1"},
        **extra,
    }
    (project / name).write_text(yaml.safe_dump(cfg))
    return name


@pytest.fixture
def uc_project(toy_project: Path, unicore: UnicoreServer) -> Path:
    write_config(toy_project, unicore)
    (toy_project / "envcheck.py").write_text(ENVCHECK)
    (toy_project / "bigmetric.py").write_text(BIGMETRIC)
    mlproject = toy_project / "MLproject"
    mlproject.write_text(
        mlproject.read_text()
        + '  envcheck:\n    command: "python envcheck.py"\n'
        + "  bigmetric:\n    parameters:\n      n: {type: int, default: 1000}\n"
        + '    command: "python bigmetric.py {n}"\n'
    )
    return toy_project


@pytest.fixture
def engine(jp_serverapp):
    return jp_serverapp.web_app.settings["hpcml_engine"]


async def submit(api, **body) -> dict:
    return await submit_run(api, **{"backend_config": "unicore.yaml", **body})


async def warm_up(api) -> None:
    """MLflow opened before the first submission: its start-up (seconds on a loaded machine)
    must not eat the API client's 20 s while faults slow the submission down."""
    status, _ = await api("GET", "experiments")
    assert status == 200


def backend_of(engine, run_id: str) -> tuple[UnicoreBackend, Any]:
    record = engine.store.get(run_id)
    return engine.registry.for_run(record), record


def states(run: dict) -> list[str]:
    return [c["state"] for c in run["state_history"]]


def started_jobs(server: UnicoreServer) -> list[str]:
    return [j.id for j in server.state.jobs.values() if j.run is not None]


# ---------------------------------------------------------------- ranged reads


async def test_log_reads_report_the_file_size_and_never_range_past_the_end(
    api, uc_project, unicore
):
    """UNICORE answers a ranged read 206 WITHOUT Content-Range: the size must come from the
    file's properties (it used to be offset + bytes read), and a range starting past the end
    (which never returns on a TSI-backed server) must not be asked for."""
    run = await submit(api, parameters={"steps": 4})
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    assert run["state"] == "FINISHED", run
    _, whole = await api("GET", f"runs/{run['id']}/logs/stdout")
    size = len(whole["data"].encode())
    assert whole["size"] == size > 20
    _, part = await api("GET", f"runs/{run['id']}/logs/stdout", offset=3, max_bytes=4)
    assert part["data"] == whole["data"][3:7] and part["size"] == size and part["next_offset"] == 7
    for offset in (size, size + 100):
        _, past = await api("GET", f"runs/{run['id']}/logs/stdout", offset=offset)
        assert past["data"] == "" and past["size"] == size
    assert unicore.state.ranges_past_end == 0


async def test_offline_sync_copies_whole_metric_files(api, uc_project, engine):
    """Metric files longer than one read arrive whole (the sync used to stop after one read:
    the derived size said the file ended there)."""
    engine.runs.offline_sync.read_bytes = 4096  # stands for 1 MiB: ~110 KB is 27 reads
    n = 4000
    run = await submit(api, entry_point="bigmetric", parameters={"n": n})
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    assert run["state"] == "FINISHED", run
    assert await mlflow_final(run) == "FINISHED"
    history = MlflowClient().get_metric_history(run["mlflow_run_id"], "big")
    assert len(history) == n
    assert sorted(m.step for m in history) == list(range(n))


# ---------------------------------------------------------------- directories and listings


async def test_directories_are_not_files_and_listings_are_read_page_by_page(
    api, uc_project, unicore, engine, caplog
):
    run = await submit(api, parameters={"steps": 1})
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    assert run["state"] == "FINISHED", run
    backend, record = backend_of(engine, run["id"])
    ref = record.job_ref()  # the backend knows jobs by JobRef, not by the engine's record
    workdir = unicore.state.jobs[run["backend_job_id"]].workdir

    # A directory asked for as application/octet-stream: 406 on the real server.
    with pytest.raises(UserInputError, match="not a file"):
        await backend.fetch(ref, ".hpcml", Path(engine.data_dir) / "x")
    with pytest.raises(UserInputError, match="not a file"):
        await backend.read(ref, ".hpcml", 0, 100)

    # Scaled down (the server's default page 50,000 → 500, our page 10,000 → 200): a
    # directory longer than a page is read to its end.
    unicore.state.default_ls_num = 500
    backend.list_page = 200
    many = workdir / "outputs" / "many"
    many.mkdir(parents=True)
    for i in range(1234):
        (many / f"f{i:04d}.txt").write_text("x" * (i % 7))
    unicore.state.reset_counts()
    listed = await backend.list_files(ref, "outputs/many")
    assert sorted(f.path for f in listed) == sorted(f"f{i:04d}.txt" for i in range(1234))
    assert {f.size for f in listed} == set(range(7))
    assert unicore.state.requests["GET /storages/{id}/files/{path}"] == 7  # 6 full pages + 1 short

    # The top level ignores offset/num and stops at 10,000 (here 300): read once more, found
    # nothing new, stop (no endless loop) and say the listing is incomplete.
    unicore.state.max_ls_results = 300
    for i in range(400):
        (workdir / f"top{i:03d}").write_text("")
    with caplog.at_level(logging.WARNING, logger="jupyterlab_hpcml.backends.unicore"):
        top = await backend.list_files(ref, "")
    assert len([f for f in top if "/" not in f.path]) == 300
    assert "listing incomplete" in caplog.text


# ---------------------------------------------------------------- environment and secrets


async def test_environment_values_arrive_verbatim_and_secrets_stay_out_of_the_description(
    api, uc_project, unicore, hpcml_data, monkeypatch, log_records
):
    """UNICORE writes Environment as KEY="value"; export KEY into the job script (after the TSI
    replaced $HOME/$USER): quotes, $ and backticks were shell code there, and the values stayed
    in the stored job description. The tracking token travels in a 0600 file only."""
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", TOKEN_CANARY)
    tracking = {"Mode": "direct", "Uri": f"sqlite:///{hpcml_data}/mlflow.db"}
    write_config(
        uc_project, unicore, "direct.yaml", Tracking=tracking, Environment={"Variables": VARIABLES}
    )
    run = await submit_run(api, backend_config="direct.yaml", entry_point="envcheck")
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    assert run["state"] == "FINISHED", run
    _, out = await api("GET", f"runs/{run['id']}/logs/stdout")
    line = next(x for x in out["data"].splitlines() if x.startswith("ENV "))
    seen = json.loads(line[4:])
    assert {k: seen[k] for k in VARIABLES} == VARIABLES
    assert seen["MLFLOW_RUN_ID"] == run["mlflow_run_id"]
    assert seen["token_sha"] == hashlib.sha256(TOKEN_CANARY.encode()).hexdigest()
    assert seen["secrets_mode"] == "0o600"

    job = unicore.state.jobs[run["backend_job_id"]]
    stored = json.dumps(unicore.state.submitted_descriptions) + json.dumps(job.description)
    assert TOKEN_CANARY not in stored and "Environment" not in job.description
    assert "say" not in stored  # no variable value in the description either
    scripts = list(job.workdir.glob("UNICORE_Job_*"))
    assert scripts
    for path in unicore.state.root.rglob("*"):  # the secrets file went with the job's end
        if path.is_file():
            assert TOKEN_CANARY.encode() not in path.read_bytes(), path
    assert not (job.workdir / ".hpcml" / "secrets.env").exists()
    assert TOKEN_CANARY not in "\n".join(log_records)


# ---------------------------------------------------------------- wall-time limit


@pytest.mark.parametrize("wrapper_survives_term", [False, True])
async def test_wall_time_limit_is_timeout(api, uc_project, unicore, wrapper_survives_term):
    """UNICORE has no TIMEOUT: a wall-time kill is FAILED "Job did not complete normally on
    BSS…" (the batch system's SIGTERM also ends UNICORE's wrapper, so no exit code file) or,
    when the wrapper outlives it, "User application exited with non-zero exit code: <143>".
    The batch system's own word (JobState TIMEOUT, in the job log or /details) decides."""
    unicore.state.seconds_per_minute = 1.0  # Runtime 3m → killed after 3 s
    unicore.state.kill_wait = 2.0
    unicore.state.wrapper_survives_term = wrapper_survives_term
    write_config(uc_project, unicore, "short.yaml")
    cfg = yaml.safe_load((uc_project / "short.yaml").read_text())
    cfg["Resources"]["Runtime"] = "3m"
    (uc_project / "short.yaml").write_text(yaml.safe_dump(cfg))
    run = await submit_run(
        api, backend_config="short.yaml", entry_point="sleep", parameters={"seconds": 60}
    )
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    job = unicore.state.jobs[run["backend_job_id"]]
    if wrapper_survives_term:
        assert job.status_message.startswith(
            "User application exited with non-zero exit code: <143>"
        )
    else:
        assert job.status_message == NOT_COMPLETED and job.exit_code is None
    assert job.status == "FAILED"  # as UNICORE reports it
    assert run["state"] == "TIMEOUT", run
    assert run["exit_code"] == 143  # from the job's own record when UNICORE has none
    assert "wall-time limit" in run["state_history"][-1]["message"]


def test_judge_end_needs_the_batch_system_to_say_timeout():
    failed = JobStatus(RunState.FAILED, None, f"UNICORE: {NOT_COMPLETED}")
    term = ExitRecord(143, "SIGTERM")
    slurm = json.dumps({"JobState": "TIMEOUT", "Reason": "TimeLimit"})
    assert judge_end(failed, term, slurm).state == RunState.TIMEOUT
    log_line = 'Detailed job information from batch system: {"JobState": "TIMEOUT"}'
    assert judge_end(failed, None, log_line).state == RunState.TIMEOUT
    # A SIGTERM alone is also a cancel, a preemption, a node failure: FAILED, with the signal.
    alone = judge_end(failed, term, None)
    assert (alone.state, alone.exit_code) == (RunState.FAILED, 143) and "SIGTERM" in alone.message
    cancelled = json.dumps({"JobState": "CANCELLED", "Reason": "None"})
    assert judge_end(failed, term, cancelled).state == RunState.FAILED
    plain = judge_end(
        JobStatus(RunState.FAILED, 5, "exit 5"), ExitRecord(5), None
    )
    assert (plain.state, plain.exit_code) == (RunState.FAILED, 5)


# ---------------------------------------------------------------- faults


async def test_faults_at_each_step_keep_state_and_submit_once(api, uc_project, unicore):
    """5xx, 429, hangs, dropped connections and expired tokens at submit, upload, start, poll,
    read and cancel: the run ends right, one job is created and started."""
    await warm_up(api)
    f = unicore.state.faults
    jobs, one_job, files = r"/jobs$", r"/jobs/[0-9a-f-]{36}$", r"/files/"
    f.add("429", path=jobs, method="POST", arg=1)  # create: ambiguous, looked up, created
    f.add("401", path=jobs, method="POST")  # an expired login: once more with a fresh one
    f.add("hang", path=r"/jobs", method="GET", arg=5)  # the look-up by tag hangs: retried
    f.add("500", path=files, method="PUT", times=2)
    f.add("drop", path=files, method="PUT")
    f.add("401", path=files, method="PUT")
    f.add("500", path=r"/actions/start$", method="POST")
    f.add("hang", path=r"/actions/start$", method="POST", arg=5)
    unicore.state.lost_answers.add(
        "drop", path=r"/actions/start$", method="POST"
    )  # started, not told
    f.add("401", path=one_job, method="GET")
    f.add("429", path=one_job, method="GET", arg=1)
    run = await submit(api, entry_point="sleep", parameters={"seconds": 60})
    assert run["state"] in ("QUEUED", "RUNNING"), run
    await wait_for_state(api, run["id"], {"RUNNING"}, timeout=30)

    # poll: every request fails for a while → UNKNOWN, then back to RUNNING
    f.add("500", path=one_job, method="GET", times=6)
    f.add("hang", path=one_job, method="GET", arg=5)
    await wait_for_state(api, run["id"], {"UNKNOWN"}, timeout=30)
    await wait_for_state(api, run["id"], {"RUNNING"}, timeout=30)

    # read: a 500 and an expired login, retried
    f.add("500", path=files, method="GET")
    f.add("401", path=files, method="GET")
    for _ in range(50):
        status, log = await api("GET", f"runs/{run['id']}/logs/stdout")
        assert status == 200, log
        if "sleeping" in log["data"]:
            break
        await asyncio.sleep(0.2)
    assert "sleeping" in log["data"]

    # cancel: a 500, a hang and an expired login before it gets through
    f.add("500", path=r"/actions/abort$", method="POST")
    f.add("hang", path=r"/actions/abort$", method="POST", arg=5)
    f.add("401", path=r"/actions/abort$", method="POST")
    status, answer = await api("POST", f"runs/{run['id']}/cancel")
    assert status == 200, answer
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=30)
    assert run["state"] == "CANCELLED", run
    assert "FAILED" not in states(run)
    assert len(unicore.state.jobs) == 1 and len(started_jobs(unicore)) == 1
    assert (
        len(unicore.state.submitted_descriptions) == 1
    )  # the 429 and 401 were answered before any work
    assert all(rule.hits == rule.times for rule in f.rules), [
        (r.kind, r.path_re.pattern, r.hits) for r in f.rules
    ]


async def test_lost_create_answer_adopts_the_job(api, uc_project, unicore):
    """The job was created but the answer lost: found by its tag, not created again."""
    await warm_up(api)
    unicore.state.lost_answers.add("drop", path=r"/jobs$", method="POST")
    run = await submit(api, parameters={"steps": 2})
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    assert run["state"] == "FINISHED", run
    assert len(unicore.state.submitted_descriptions) == 1 and len(unicore.state.jobs) == 1


async def test_slow_create_is_never_started_twice(api, uc_project, unicore):
    """The server carries the create out after the client gave up and after its look-up by
    tag: a second job is created and run; the late first one is never started (it waits for
    our upload in READY), so nothing runs twice."""
    await warm_up(api)
    unicore.state.faults.add("slow", path=r"/jobs$", method="POST", arg=3)
    run = await submit(api, parameters={"steps": 1})
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=60)
    assert run["state"] == "FINISHED", run
    await asyncio.sleep(1.5)  # the late create lands
    assert len(started_jobs(unicore)) == 1
    assert [j.status for j in unicore.state.jobs.values() if j.run is None] in ([], ["READY"])


async def test_interrupted_submission_is_settled_and_the_unstarted_job_removed(
    api, uc_project, unicore
):
    """Created, answer lost, and the server unreachable for the look-up: the run is UNKNOWN
    without a job id. The poller then finds the job READY — never started, it would wait for
    our upload forever — removes it and ends the run FAILED (it used to re-attach it and the
    run stayed QUEUED "UNICORE: READY" for good)."""
    await warm_up(api)
    unicore.state.lost_answers.add("drop", path=r"/jobs$", method="POST")
    unicore.state.faults.add("500", path=r"/jobs$", method="GET", times=3)
    run = await submit(api, parameters={"steps": 1})
    assert run["state"] == "UNKNOWN" and not run["backend_job_id"], run
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=30)
    assert run["state"] == "FAILED", run
    assert "interrupted" in run["state_history"][-1]["message"]
    assert unicore.state.jobs == {} and started_jobs(unicore) == []


async def test_expired_login_while_polling_keeps_state_then_recovers(api, uc_project, unicore):
    await warm_up(api)
    run = await submit(api, entry_point="sleep", parameters={"seconds": 60})
    await wait_for_state(api, run["id"], {"RUNNING"}, timeout=30)
    unicore.state.faults.add("401", path=r"/jobs/[0-9a-f-]{36}$", method="GET", times=4)
    run = await wait_for_state(api, run["id"], {"UNKNOWN"}, timeout=30)
    assert "refused" in run["state_history"][-1]["message"]
    await wait_for_state(api, run["id"], {"RUNNING"}, timeout=30)
    status, _ = await api("POST", f"runs/{run['id']}/cancel")
    assert status == 200
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=30)
    assert run["state"] == "CANCELLED" and "FAILED" not in states(run)


async def test_one_failing_job_does_not_make_the_others_unknown(api, uc_project, unicore):
    a = await submit(api, entry_point="sleep", parameters={"seconds": 60})
    b = await submit(api, entry_point="sleep", parameters={"seconds": 60})
    await wait_for_state(api, a["id"], {"RUNNING"}, timeout=30)
    await wait_for_state(api, b["id"], {"RUNNING"}, timeout=30)
    unicore.state.faults.add("500", path=rf"/jobs/{a['backend_job_id']}$", method="GET", times=1000)
    await wait_for_state(api, a["id"], {"UNKNOWN"}, timeout=30)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2:
        _, now = await api("GET", f"runs/{b['id']}")
        assert now["state"] == "RUNNING", now
        await asyncio.sleep(0.2)
    unicore.state.faults.clear()
    await wait_for_state(api, a["id"], {"RUNNING"}, timeout=30)
    for r in (a, b):
        await api("POST", f"runs/{r['id']}/cancel")
        assert (await wait_for_state(api, r["id"], TERMINAL, timeout=30))["state"] == "CANCELLED"
