"""Fault injection on the FirecREST backend: HTTP 5xx, 429 with Retry-After, requests that
hang or are answered too late, expired tokens, at each step (submit, poll, read, cancel).
Runs keep their state (UNKNOWN while unsure, recovered after), nothing is submitted twice,
Retry-After is honoured. The real pyfirecrest client against the loopback test server;
the engine (the lab's RunService) without its poller, so the test decides when to poll."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import yaml

from jupyterlab_hpcml.backends.base import JobRef
from jupyterlab_hpcml.backends.firecrest import FirecrestBackend
from jupyterlab_hpcml.core.errors import BackendUnavailable
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.models import RunRecord
from jupyterlab_hpcml.engine.service import Engine

from .firecrest_fixtures import config, request, serve_firecrest
from .servers.firecrest_server import FirecrestServer

SECRET = "canary-fc-faults-31c9a0-secret"
SUBMIT = "POST /compute/{system}/jobs"
JOBS = r"/compute/[^/]+/jobs$"
READS = r"/filesystem/[^/]+/ops/(ls|stat|tail|view|download)$"


@pytest.fixture
def firecrest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Short waits, so that the test is quick: a request not answered in 3 s counts as lost,
    # a submission without answer is looked for in the job list for 5 s.
    monkeypatch.setattr(FirecrestBackend, "http_timeout", 3.0)
    monkeypatch.setattr(FirecrestBackend, "ambiguous_settle", 5.0)
    monkeypatch.setattr(FirecrestBackend, "retry_backoff", (0.1,))
    yield from serve_firecrest(tmp_path, monkeypatch, SECRET)


@pytest.fixture
def project(tmp_path: Path, firecrest: FirecrestServer) -> Path:
    p = tmp_path / "proj"
    p.mkdir()
    (p / "MLproject").write_text(
        "name: faults\nentry_points:\n"
        "  main:\n    command: python job.py\n"
        "  sleep:\n    command: \"python -c 'import time; time.sleep(600)'\"\n"
    )
    (p / "job.py").write_text(
        "import mlflow, time\n"
        "with mlflow.start_run():\n"
        "    for step in range(8):\n"
        "        mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n"
        "        time.sleep(0.5)\n"
        "    mlflow.log_text('done', 'result.txt')\n"
    )
    (p / "firecrest.yaml").write_text(yaml.safe_dump(config(firecrest)))
    return p


def compute_jobs(server: FirecrestServer) -> list:
    return [j for j in server.state.jobs.values() if not j.transfer]


async def follow(engine: Engine, run: RunRecord, until: set[RunState],
                 timeout: float = 120) -> list[RunState]:
    """Poll (as the lab's poller does) until the run is in one of ``until``; the states seen."""
    seen = [c.state for c in run.state_history]
    deadline = time.monotonic() + timeout
    while run.state not in until:
        assert time.monotonic() < deadline, seen
        await asyncio.sleep(0.3)
        await engine.runs.refresh()
        run = await engine.runs.get(run.id)
        if run.state != seen[-1]:
            seen.append(run.state)
    return seen


def retry_after_was_honoured(server: FirecrestServer, wait: float) -> list[tuple[str, float]]:
    """For each injected 429: how long until the same request came again (must be ≥ wait)."""
    out = []
    for t, route, status in server.state.fault_log:
        if status != 429:
            continue
        later = [t2 for t2, r2 in server.state.request_log if r2 == route and t2 > t]
        out.append((route, (min(later) - t) if later else float("inf")))
    assert out and all(gap >= wait * 0.95 for _, gap in out), out
    return out


async def test_a_submission_answered_too_late_is_adopted_not_sent_twice(hpcml_data, project,
                                                                        firecrest):
    # The server carries the submission out after 6 s; the client gave up after 3 s.
    firecrest.state.late.add("late", path=JOBS, method="POST", arg=6.0)
    engine = Engine(data_dir=hpcml_data)
    try:
        run = await engine.runs.submit(request(project))
        assert run.backend_job_id, run.state_history
        assert run.state in (RunState.QUEUED, RunState.RUNNING), run.state_history
        seen = await follow(engine, run, {RunState.FINISHED, RunState.FAILED, RunState.CANCELLED})
    finally:
        await engine.close()
    assert seen[-1] == RunState.FINISHED, seen
    assert len(compute_jobs(firecrest)) == 1 and firecrest.state.requests[SUBMIT] == 1


async def test_faults_at_every_step_keep_the_run_and_nothing_runs_twice(hpcml_data, project,
                                                                        firecrest):
    faults = firecrest.state.faults
    # submit: rate limited, token expired, then a 500 nobody can interpret (sent again only
    # once the job list shows it did not arrive); upload: a 500 (sent again: idempotent).
    faults.add("429", path=JOBS, method="POST", arg=1)
    faults.add("401", path=JOBS, method="POST")
    faults.add("500", path=JOBS, method="POST")
    faults.add("500", path=r"/ops/upload$", method="POST")
    engine = Engine(data_dir=hpcml_data)
    try:
        run = await engine.runs.submit(request(project))
        assert run.backend_job_id, run.state_history
        # poll: down for a whole poll (→ UNKNOWN), then rate limited, stuck, too slow, expired.
        faults.add("500", path=JOBS, method="GET", times=3)
        faults.add("429", path=JOBS, method="GET", arg=1)
        faults.add("hang", path=JOBS, method="GET", arg=0.3)  # connection closed
        faults.add("hang", path=JOBS, method="GET", arg=4.5)  # longer than the client waits
        faults.add("401", path=JOBS, method="GET")
        # reads (offline tracking copy, log): the same at the file endpoints.
        faults.add("500", path=READS, method="GET")
        faults.add("429", path=READS, method="GET", arg=1)
        faults.add("hang", path=READS, method="GET", arg=0.3)
        faults.add("401", path=READS, method="GET")
        seen = await follow(engine, run, {RunState.FINISHED, RunState.FAILED, RunState.CANCELLED,
                                          RunState.TIMEOUT})
        run = await engine.runs.get(run.id)
        assert seen[-1] == RunState.FINISHED and run.exit_code == 0, run.state_history
        assert RunState.UNKNOWN in seen and RunState.FAILED not in seen, seen
        mlflow_run = engine.tracker.client.get_run(run.mlflow_run_id)
        assert mlflow_run.info.status == "FINISHED"
        history = engine.tracker.client.get_metric_history(run.mlflow_run_id, "loss")
        assert [m.step for m in history] == list(range(8))
        artifacts = engine.tracker.client.list_artifacts(run.mlflow_run_id)
        assert [a.path for a in artifacts] == ["result.txt"]
    finally:
        await engine.close()
    assert len(compute_jobs(firecrest)) == 1  # the 500 on submit did not make a second job
    unfired = [(r.kind, r.path_re.pattern) for r in faults.rules if r.hits < r.times]
    assert not unfired  # every injected fault was met
    retry_after_was_honoured(firecrest, 1.0)


async def test_cancel_through_faults(hpcml_data, project, firecrest):
    engine = Engine(data_dir=hpcml_data)
    try:
        run = await engine.runs.submit(request(project, entry_point="sleep"))
        await follow(engine, run, {RunState.RUNNING})
        faults = firecrest.state.faults
        jobs_one = r"/compute/[^/]+/jobs/\w+$"
        faults.add("429", path=jobs_one, method="DELETE", arg=1)
        faults.add("401", path=jobs_one, method="DELETE")
        faults.add("500", path=jobs_one, method="DELETE")
        faults.add("hang", path=jobs_one, method="DELETE", arg=0.3)
        run = await engine.runs.cancel(run.id)
        assert run.cancel_requested and not run.state.terminal
        seen = await follow(engine, run, {RunState.CANCELLED, RunState.FAILED, RunState.FINISHED})
        assert seen[-1] == RunState.CANCELLED, seen
        assert engine.tracker.client.get_run(run.mlflow_run_id).info.status == "KILLED"
    finally:
        await engine.close()
    job = compute_jobs(firecrest)[0]
    assert job.state().startswith("CANCELLED by") and len(compute_jobs(firecrest)) == 1
    retry_after_was_honoured(firecrest, 1.0)


async def test_a_long_retry_after_pauses_all_requests_until_it_is_over(firecrest, tmp_path):
    backend = FirecrestBackend(config(firecrest), tmp_path / "data")
    backend.max_retry_after = 0.5  # longer waits are not spent inside a poll
    refs = [JobRef("r1", "1001", "")]
    try:
        await backend.poll(refs)  # logged in, job list read once
        firecrest.state.faults.add("429", path=JOBS, method="GET", arg=3)
        before = firecrest.state.requests["GET /compute/{system}/jobs"]
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="rate limiting"):
            await backend.poll(refs)
        assert time.monotonic() - started < 1.5  # not stuck waiting inside the poll
        with pytest.raises(BackendUnavailable, match="rate limiting"):
            await backend.poll(refs)  # within the 3 s: no request at all
        assert firecrest.state.requests["GET /compute/{system}/jobs"] == before + 1
        await asyncio.sleep(3.1 - (time.monotonic() - started))
        await backend.poll(refs)
        assert firecrest.state.requests["GET /compute/{system}/jobs"] == before + 2
    finally:
        await backend.close()



async def test_a_refused_submission_ends_failed_at_once_even_with_file_reads_down(
        hpcml_data, project, firecrest):
    """sbatch refuses the job (no such partition) while the file endpoints are down: no job
    ran, so there is no offline store to copy and the run is FAILED at once. It used to stay
    SUBMITTING for the final-sync patience (10 minutes), retrying a copy of a job that never
    existed."""
    engine = Engine(data_dir=hpcml_data)
    try:
        first = await engine.runs.submit(request(project))  # the code is on the cluster now
        assert first.backend_job_id, first.state_history
        # Reads inside run directories fail (the stored code can still be listed).
        firecrest.state.faults.add("500", path=READS, method="GET", times=1000,
                                   query=r"path=[^&]*/\.hpcml")
        run = await engine.runs.submit(request(project, overrides=["Resources.Queue=nope"]))
        assert run.state == RunState.FAILED, run.state_history
        assert not run.backend_job_id
        assert "Invalid partition" in (run.state_history[-1].message or ""), run.state_history
        assert engine.tracker.client.get_run(run.mlflow_run_id).info.status == "FAILED"
    finally:
        await engine.close()
    assert len(compute_jobs(firecrest)) == 1
