"""Sweeps as Slurm job arrays through FirecREST: the real pyfirecrest client against the
loopback FirecREST v2 server (tests/servers/firecrest_server.py), whose "Slurm" runs each
array element as its own local process, at most ``%K`` at once, with the job ids, the
SLURM_* environment and the job lists of real Slurm behind real FirecREST.

The backend is driven as the engine drives it for a sweep: ``prepare`` of the array's lead
context (the code once), ``submit_array`` with one ``ArrayTask`` per child, then ``poll``,
``read`` and ``cancel`` with each child's ``JobRef`` (job id "<array>_<index>", task=i)."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from jupyterlab_hpcml.backends.base import JobRef
from jupyterlab_hpcml.backends.firecrest import FirecrestBackend, SubmitRejected
from jupyterlab_hpcml.core.job import ArrayTask, JobContext, PreparedJob, Submission
from jupyterlab_hpcml.core.states import JobStatus, RunState
from jupyterlab_hpcml.engine.snapshot import take_snapshot

from .firecrest_fixtures import serve_firecrest
from .servers.firecrest_server import FirecrestServer

SECRET = "canary-fc-array-5b2e17-secret"
TOKEN = "tok-canary-fc-array-91d4"  # the sweep's tracking token: shared by all tasks, secret
SUBMIT = "POST /compute/{system}/jobs"
JOBS_LIST = "GET /compute/{system}/jobs"
SWEEP = "s0a1b2c3d4e5"

# Each task notes when it ran and what Slurm told it, sleeps, and ends as asked.
TASK_PY = """\
import json, os, sys, time
i, seconds, code = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
start = time.time()
print(f"task {i} label {os.environ['TASK_LABEL']}", flush=True)
print("to stderr", i, file=sys.stderr, flush=True)
time.sleep(seconds)
keys = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "HPCML_TASK_INDEX")
with open(f"times.{i}.json", "w") as f:
    json.dump({"start": start, "end": time.time(), **{k: os.environ.get(k) for k in keys},
               "token": os.environ.get("MLFLOW_TRACKING_TOKEN")}, f)
sys.exit(code)
"""


@pytest.fixture
def firecrest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    yield from serve_firecrest(tmp_path, monkeypatch, SECRET)


@pytest.fixture
def backend(tmp_path: Path, firecrest: FirecrestServer) -> FirecrestBackend:
    # Closed by each test (``closing``): its HTTP client lives on the test's event loop.
    return FirecrestBackend(fc_config(firecrest), tmp_path / "data")


def closing(test):  # type: ignore[no-untyped-def]
    """Run the test, then close its backend on the same event loop."""
    import functools

    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> None:
        try:
            await test(*args, **kwargs)
        finally:
            await kwargs["backend"].close()

    return run


def fc_config(server: FirecrestServer) -> dict[str, Any]:
    return {"Firecrest": {"ApiUrl": server.url, "TokenUrl": server.token_url,
                          "Machine": "cluster"},
            "Resources": {"Queue": "normal", "Runtime": 600}}


def context(server: FirecrestServer, run_id: str, command: str,
            env: dict[str, str]) -> JobContext[Any]:
    return JobContext(run_id=run_id, run_name=f"child {run_id}", project_name="sweep",
                      entry_point="main", job_name="hpcml-sweep-main", command=command,
                      config=FirecrestBackend.parse_config(fc_config(server)), env=env)


async def start_sweep(tmp_path: Path, server: FirecrestServer, backend: FirecrestBackend,
                      plan: list[tuple[float, int]], max_parallel: int | None
                      ) -> tuple[PreparedJob[Any], list[JobRef], list[Submission]]:
    """Prepare the array's run directory (code once) and submit ``plan`` (per task: seconds
    to sleep, exit code) as one sweep."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "task.py").write_text(TASK_PY)
    data = tmp_path / "data"
    snapshot = take_snapshot(project, data / "objects", data / "snapshots")
    lead = context(server, SWEEP, "", {"MLFLOW_TRACKING_TOKEN": TOKEN})
    lead = lead.replace(run_dir=await backend.run_dir_for(lead))
    prepared = await backend.prepare(lead, snapshot)
    tasks = [ArrayTask(i, context(server, f"c{i:011x}", f"python task.py {i} {s} {code}",
                                  {"TASK_LABEL": f"t{i} 'quoted' $HOME",
                                   "MLFLOW_TRACKING_TOKEN": TOKEN}))
             for i, (s, code) in enumerate(plan)]
    subs = await backend.submit_array(prepared, tasks, max_parallel=max_parallel)
    refs = [JobRef(t.context.run_id, s.job_id, prepared.run_dir, task=t.index)
            for t, s in zip(tasks, subs, strict=True)]
    return prepared, refs, subs


async def follow(server: FirecrestServer, backend: FirecrestBackend, refs: list[JobRef],
                 timeout: float = 90) -> tuple[dict[str, JobStatus], list[int]]:
    """Poll until every task is terminal; the final statuses and the requests of each poll."""
    last: dict[str, JobStatus] = {}
    per_poll: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        active = [r for r in refs if r.job_id not in last or not last[r.job_id].state.terminal]
        if not active:
            return last, per_poll
        assert time.monotonic() < deadline, last
        before = server.state.total_requests()
        last.update(await backend.poll(active))
        per_poll.append(server.state.total_requests() - before)
        await asyncio.sleep(0.3)


def task_times(run_dir: str, n: int) -> list[dict[str, Any]]:
    return [json.loads((Path(run_dir) / f"times.{i}.json").read_text()) for i in range(n)]


def most_at_once(times: list[dict[str, Any]]) -> int:
    events = sorted([(t["start"], 1) for t in times] + [(t["end"], -1) for t in times])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


@closing
async def test_features_say_arrays_with_the_default_max_array_size(backend):
    features = backend.supported_features()
    assert features.job_arrays and features.max_array_size == 1001


@closing
async def test_six_tasks_one_array_two_at_once_one_request_per_poll(tmp_path, firecrest,
                                                                    backend):
    plan = [(1.0, 0), (1.0, 0), (1.0, 0), (1.0, 3), (1.0, 0), (1.0, 0)]
    prepared, refs, subs = await start_sweep(tmp_path, firecrest, backend, plan, 2)

    # ONE array job: one submission, one id, tasks "<id>_<i>", QUEUED.
    array_id = subs[0].job_id.split("_")[0]
    assert [s.job_id for s in subs] == [f"{array_id}_{i}" for i in range(6)]
    assert all(s.status.state == RunState.QUEUED for s in subs)
    assert firecrest.state.requests[SUBMIT] == 1
    script = firecrest.state.submitted_bodies[0]["job"]["script"]
    assert "#SBATCH --array=0-5%2" in script and TOKEN not in script

    # From the job list alone (no grace for "not listed yet"): ONE request per poll cycle.
    backend._submitted_at.clear()
    final, per_poll = await follow(firecrest, backend, refs)
    assert per_poll and set(per_poll) == {1}, per_poll
    assert firecrest.state.requests[JOBS_LIST] == len(per_poll)

    states = {i: (final[r.job_id].state, final[r.job_id].exit_code) for i, r in enumerate(refs)}
    assert states == {0: (RunState.FINISHED, 0), 1: (RunState.FINISHED, 0),
                      2: (RunState.FINISHED, 0), 3: (RunState.FAILED, 3),
                      4: (RunState.FINISHED, 0), 5: (RunState.FINISHED, 0)}

    # Never more than two at once (and two did run together); each task ran as an element
    # of the array with its own Slurm job id; the shared secret reached every task.
    times = task_times(prepared.run_dir, 6)
    assert most_at_once(times) == 2
    assert [t["SLURM_ARRAY_JOB_ID"] for t in times] == [array_id] * 6
    assert [t["SLURM_ARRAY_TASK_ID"] for t in times] == [str(i) for i in range(6)]
    assert [t["HPCML_TASK_INDEX"] for t in times] == [str(i) for i in range(6)]
    own = [t["SLURM_JOB_ID"] for t in times]
    assert len(set(own)) == 6 and array_id in own  # the last one to start keeps the array's id
    assert {t["token"] for t in times} == {TOKEN}

    # Per-task logs through the backend's files API.
    for i, ref in enumerate(refs):
        out = await backend.read(ref, backend.log_path("stdout", ref), 0, 4096)
        err = await backend.read(ref, backend.log_path("stderr", ref), 0, 4096)
        assert f"task {i} label t{i} 'quoted' $HOME" in out.data.decode()
        assert f"to stderr {i}" in err.data.decode()
    # The exit-code file of each task is its own (what a poll falls back on).
    rec = json.loads((Path(prepared.run_dir) / ".hpcml" / "exit_code.3").read_text())
    assert rec["exit_code"] == 3
    secrets = firecrest.state.home.parent / "scratch" / "testuser" / "hpcml" / ".secrets"
    assert not list(secrets.glob("*.env"))  # the last task removed the shared secrets file
    assert not any(TOKEN in line for line in firecrest.state.command_lines)


@closing
async def test_a_task_no_longer_listed_is_read_from_its_own_exit_file(tmp_path, firecrest,
                                                                      backend):
    prepared, refs, _ = await start_sweep(tmp_path, firecrest, backend, [(0.2, 0), (0.2, 5)],
                                          None)
    final, _ = await follow(firecrest, backend, refs)
    assert [final[r.job_id].exit_code for r in refs] == [0, 5]
    backend._submitted_at.clear()
    firecrest.state.purged.update(s.job_id for s in firecrest.state.jobs.values())
    again = await backend.poll(refs)
    assert [(again[r.job_id].state, again[r.job_id].exit_code) for r in refs] == [
        (RunState.FINISHED, 0), (RunState.FAILED, 5)]


@closing
async def test_cancel_one_task_cancels_only_it(tmp_path, firecrest, backend):
    # One at a time: task 0 runs long and is cancelled while running, task 2 while pending.
    plan = [(60.0, 0), (1.0, 0), (1.0, 0), (1.0, 0)]
    prepared, refs, subs = await start_sweep(tmp_path, firecrest, backend, plan, 1)
    array_id = subs[0].job_id.split("_")[0]
    deadline = time.monotonic() + 30
    while (await backend.poll(refs[:1]))[refs[0].job_id].state != RunState.RUNNING:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    note = Path(prepared.run_dir) / ".hpcml" / "tasks" / f"0.{array_id}.jobid"
    while not note.exists():
        await asyncio.sleep(0.1)

    assert await backend.cancel(refs[0]) is None  # running: the next poll says CANCELLED
    pending = await backend.cancel(refs[2])
    assert pending is not None and pending.state == RunState.CANCELLED

    final, _ = await follow(firecrest, backend, [refs[0], refs[1], refs[3]])
    assert [final[r.job_id].state for r in (refs[0], refs[1], refs[3])] == [
        RunState.CANCELLED, RunState.FINISHED, RunState.FINISHED]
    # Slurm cancelled task 0 by its own job id; the array's id was never cancelled (that
    # would stop every task), and the real server's 400 for "<id>_<i>" never came up.
    raw = note.read_text().strip()
    scancels = [c for c in firecrest.state.command_lines if c.startswith("scancel")]
    assert scancels == [f"scancel --verbose {raw}"] and raw != array_id
    # Task 2 never ran its program.
    assert not (Path(prepared.run_dir) / "times.2.json").exists()
    assert (Path(prepared.run_dir) / "times.1.json").exists()
    assert (Path(prepared.run_dir) / "times.3.json").exists()
    # A second cancel of the ended task is calm: it says how the task ended.
    again = await backend.cancel(refs[0])
    assert again is not None and again.state == RunState.CANCELLED

    # Task 2 re-run in the same directory (another array): the old request to stop is
    # not this array's.
    rerun = ArrayTask(2, context(firecrest, "c00000000abc", "python task.py 2 0.2 0",
                                 {"TASK_LABEL": "again"}))
    [sub] = await backend.submit_array(prepared, [rerun])
    assert sub.job_id.endswith("_0") and not sub.job_id.startswith(f"{array_id}_")
    ref = JobRef(rerun.context.run_id, sub.job_id, prepared.run_dir, task=2)
    final, _ = await follow(firecrest, backend, [ref])
    assert final[sub.job_id].state == RunState.FINISHED
    assert (Path(prepared.run_dir) / "times.2.json").exists()


@closing
async def test_chunks_at_the_sites_max_array_size(tmp_path, firecrest, backend):
    firecrest.state.max_array_size = 3
    backend.max_array_size = 3
    assert backend.supported_features().max_array_size == 3
    plan = [(0.5, 0)] * 7
    prepared, refs, subs = await start_sweep(tmp_path, firecrest, backend, plan, 2)

    arrays = list(dict.fromkeys(s.job_id.split("_")[0] for s in subs))
    assert len(arrays) == 3 and firecrest.state.requests[SUBMIT] == 3
    assert [s.job_id for s in subs] == [f"{arrays[i // 3]}_{i % 3}" for i in range(7)]
    scripts = [b["job"]["script"] for b in firecrest.state.submitted_bodies]
    assert "#SBATCH --array=0-2%2" in scripts[0] and "--dependency" not in scripts[0]
    assert f"--dependency=afterany:{arrays[0]}" in scripts[1]
    assert f"--dependency=afterany:{arrays[1]}" in scripts[2]
    assert "#SBATCH --array=0%2" in scripts[2]
    backend._submitted_at.clear()
    waits = (await backend.poll(refs[3:4]))[refs[3].job_id]
    assert (waits.state, waits.message) == (RunState.QUEUED, "pending: Dependency")

    final, _ = await follow(firecrest, backend, refs)
    assert {s.state for s in final.values()} == {RunState.FINISHED}
    times = task_times(prepared.run_dir, 7)
    assert [t["HPCML_TASK_INDEX"] for t in times] == [str(i) for i in range(7)]
    assert [t["SLURM_ARRAY_TASK_ID"] for t in times] == [str(i % 3) for i in range(7)]
    assert most_at_once(times) <= 2
    # Each chunk started after the previous had ended.
    for later in (3, 6):
        assert times[later]["start"] >= max(t["end"] for t in times[:later]) - 0.05


@closing
async def test_more_tasks_than_the_site_allows_is_refused_with_slurms_words(tmp_path, firecrest,
                                                                            backend):
    firecrest.state.max_array_size = 3  # the site's, which the backend cannot read
    with pytest.raises(SubmitRejected, match="Invalid job array specification"):
        await start_sweep(tmp_path, firecrest, backend, [(0.1, 0)] * 4, None)
    assert not [j for j in firecrest.state.jobs.values() if not j.transfer]


@closing
async def test_an_array_submission_answered_too_late_is_adopted_not_sent_twice(
        tmp_path, firecrest, backend, monkeypatch):
    monkeypatch.setattr(backend, "http_timeout", 3.0)
    monkeypatch.setattr(backend, "ambiguous_settle", 8.0)
    # The server carries the submission out after 4 s; the client gave up after 3 s. By
    # then one task runs (its own id in the list), one waits (the array's id).
    firecrest.state.late.add("late", path=r"/compute/[^/]+/jobs$", method="POST", arg=4.0)
    _, refs, subs = await start_sweep(tmp_path, firecrest, backend, [(2.0, 0)] * 3, 1)
    assert firecrest.state.requests[SUBMIT] == 1
    array_id = next(j.job_id for j in firecrest.state.jobs.values() if j.tasks is not None)
    assert [s.job_id for s in subs] == [f"{array_id}_{i}" for i in range(3)]
    final, _ = await follow(firecrest, backend, refs)
    assert {s.state for s in final.values()} == {RunState.FINISHED}


@closing
async def test_tasks_running_before_accounting_lists_them_are_not_failed(tmp_path, firecrest,
                                                                         backend):
    # Seen on Slurm 22.05: sacct lists an element seconds after squeue shows it running.
    # All three start at once; the last keeps the array's id, so the pending-rest entry that
    # says "not started" is gone, and the tasks are in no record but squeue's own ids.
    firecrest.state.accounting_lag = 2.5
    _, refs, _ = await start_sweep(tmp_path, firecrest, backend, [(1.5, 0)] * 3, None)
    backend._submitted_at.clear()
    seen: list[RunState] = []
    deadline = time.monotonic() + 60
    while not (seen and all(s == RunState.FINISHED for s in seen[-3:])):
        assert time.monotonic() < deadline, seen
        polled = await backend.poll(refs)
        seen += [polled[r.job_id].state for r in refs if r.job_id in polled]
        await asyncio.sleep(0.3)
    assert RunState.FAILED not in seen and RunState.UNKNOWN in seen, seen
