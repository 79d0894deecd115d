"""Sweeps as Slurm job arrays over SSH, on the real test cluster (backend level).

A sweep of 6 tasks with max-parallel 2 is ONE ``sbatch --array=0-5%2``: sacct shows six
elements of one job, never more than two running at once; each task runs its own command
with its own environment, logs and exit-code file; one failing task ends FAILED with its
code while the others FINISH; cancelling one task cancels only it; a poll of all six is
one squeue (+ one sacct). More tasks than the site's MaxArraySize become several arrays,
each after the one before. ~1-2 min on the test cluster.
"""
from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from jupyterlab_hpcml.backends.slurm_common import (
    SlurmJob,
    array_chunks,
    array_elements,
    array_spec,
    job_status,
)
from jupyterlab_hpcml.backends.ssh.slurm import SlurmBackend
from jupyterlab_hpcml.core.config_models import SSHConfig
from jupyterlab_hpcml.core.job import ArrayTask, JobContext, JobRef, RequeuePolicy
from jupyterlab_hpcml.core.snapshots import Snapshot
from jupyterlab_hpcml.core.states import JobStatus, RunState
from jupyterlab_hpcml.engine.snapshot import take_snapshot

from .slurm_cluster import slurm, ssh_cmd, ssh_section  # noqa: F401 - fixture

TASK_PY = """\
import json, os, sys, time
start = time.time()
print("task", os.environ["HPCML_TASK_INDEX"], "run", os.environ["MLFLOW_RUN_ID"],
      "param", sys.argv[1], flush=True)
time.sleep(float(os.environ.get("TASK_SECONDS", "2")))
json.dump({"start": start, "end": time.time()},
          open(os.path.join(".hpcml", "times." + os.environ["HPCML_TASK_INDEX"]), "w"))
sys.exit(int(sys.argv[2]))
"""


def project(tmp_path: Path, files: dict[str, str]) -> Snapshot:
    src = tmp_path / "project"
    src.mkdir()
    for name, text in files.items():
        (src / name).write_text(text)
    store = tmp_path / "store"
    return take_snapshot(src, store / "objects", store / "manifests")


def context(backend: SlurmBackend, s: dict[str, str], run_id: str, command: str = "true",
            env: dict[str, str] | None = None, runtime: int = 600,
            requeue: RequeuePolicy | None = None) -> JobContext[SSHConfig]:
    config = backend.parse_config({
        "SSH": ssh_section(s),
        "Resources": {"Queue": s.get("HPCML_TEST_SLURM_PARTITION", "debug"), "Runtime": runtime},
        "Environment": {"Python": s["HPCML_TEST_PYTHON"]},
    })
    return JobContext(run_id=run_id, run_name=f"name of {run_id}", project_name="sweep-test",
                      entry_point="main", job_name=f"hpcml-test-{run_id}", command=command,
                      config=config, env=dict(env or {}), requeue=requeue)  # type: ignore[arg-type]


def new_id() -> str:
    return f"{time.time_ns() & 0xFFFFFFFFFFFF:012x}"


async def wait_all(backend: SlurmBackend, refs: Sequence[JobRef], timeout: float = 150,
                   ) -> dict[str, JobStatus]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = await backend.poll(refs)
        if all(statuses.get(r.job_id) and statuses[r.job_id].state.terminal for r in refs):
            return statuses
        assert time.monotonic() < deadline, statuses
        await asyncio.sleep(0.5)


def sacct_elements(s: dict[str, str], array_id: str) -> list[dict[str, Any]]:
    out = ssh_cmd(s, f"sacct -X -n -P -j {array_id} -o JobID,State,Start,End --noconvert "
                     "-S now-1hour")
    rows = []
    for line in out.splitlines():
        job_id, state, start, end = line.split("|")
        if "_" in job_id and "[" not in job_id:
            rows.append({"id": job_id, "state": state, "start": start, "end": end})
    return rows


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Most intervals [start, end) holding at one moment."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = best = 0
    for _, step in events:  # at equal times an end (-1) sorts before a start
        running += step
        best = max(best, running)
    return best


def test_pending_elements_on_one_line_and_restart_counts():
    assert array_elements("123_[2-5%2]") == ["123_2", "123_3", "123_4", "123_5"]
    assert array_elements("12_[1,3-4]") == ["12_1", "12_3", "12_4"]
    assert array_elements("12_4") == ["12_4"] and array_elements("12") == ["12"]
    requeued = job_status(SlurmJob("PENDING", "BeginTime", restarts=2))
    assert (requeued.state, requeued.message, requeued.restarts) == (
        RunState.QUEUED, "requeued (restart 2)", 2)
    preempted = job_status(SlurmJob("PREEMPTED", requeueable=True, restarts=0))
    assert preempted.state == RunState.QUEUED and not preempted.state.terminal
    assert job_status(SlurmJob("PREEMPTED")).state == RunState.FAILED  # not requeueable
    done = job_status(SlurmJob("COMPLETED", code=0, restarts=1))
    assert (done.state, done.restarts) == (RunState.FINISHED, 1)


def test_array_chunks_follow_max_array_size():
    assert array_chunks(range(6), 1001) == [(0, [0, 1, 2, 3, 4, 5])]
    assert array_chunks(range(5), 3) == [(0, [0, 1, 2]), (3, [0, 1])]
    assert array_chunks([0, 2, 7, 8], 4) == [(0, [0, 2]), (7, [0, 1])]
    assert array_spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8" and array_spec([3]) == "3"


async def test_six_tasks_with_max_parallel_two_are_one_array_job(tmp_path, slurm):  # noqa: F811
    backend = SlurmBackend({"SSH": ssh_section(slurm)}, tmp_path / "data")
    try:
        snap = project(tmp_path, {"task.py": TASK_PY})
        lead = context(backend, slurm, new_id(),
                       env={"MLFLOW_TRACKING_URI": "file:///nowhere", "SHARED": "yes",
                            "MLFLOW_TRACKING_TOKEN": "tok-canary-array"})
        lead = lead.replace(run_dir=await backend.run_dir_for(lead))
        hostile = "$(touch pwned) `id` ; x'y\"z"
        tasks = [ArrayTask(i, context(
            backend, slurm, new_id(),
            command=f"python task.py {shlex.quote(hostile + str(i))} {3 if i == 4 else 0}",
            env={"MLFLOW_RUN_ID": f"mlflow-{i}", "TASK_SECONDS": "60" if i == 1 else "3"}))
            for i in range(6)]
        prepared = await backend.prepare(lead, snap)
        subs = await backend.submit_array(prepared, tasks, max_parallel=2)
        assert len(subs) == 6
        arrays = {s.job_id.split("_")[0] for s in subs}
        assert len(arrays) == 1, subs  # ONE job
        array_id = arrays.pop()
        assert [s.job_id for s in subs] == [f"{array_id}_{i}" for i in range(6)]
        assert await backend.find_submitted(lead.replace(env={})) == array_id
        refs = [JobRef(t.context.run_id, s.job_id, prepared.run_dir, t.index)
                for t, s in zip(tasks, subs, strict=True)]

        # A poll of all six is one squeue, and no sacct while none has ended.
        backend._next_poll = 0.0
        before = dict(backend.conn.stats.commands)
        statuses = await backend.poll(refs)
        after = dict(backend.conn.stats.commands)
        assert set(statuses) == {r.job_id for r in refs}
        assert after["squeue"] - before.get("squeue", 0) == 1
        assert after.get("sacct", 0) - before.get("sacct", 0) <= 1
        assert sum(after.values()) - sum(before.values()) <= 2, (before, after)

        # Cancelling one running task cancels only it.
        deadline = time.monotonic() + 60
        while (await backend.poll(refs))[refs[1].job_id].state != RunState.RUNNING:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.3)
        await backend.cancel(refs[1])

        final = await wait_all(backend, refs)
        by_task = {r.task: final[r.job_id] for r in refs}
        assert by_task[1].state == RunState.CANCELLED, by_task[1]
        assert [by_task[i].state for i in (0, 2, 3, 5)] == [RunState.FINISHED] * 4, by_task
        assert (by_task[4].state, by_task[4].exit_code) == (RunState.FAILED, 3), by_task[4]

        # One poll after the end: one squeue + one sacct for all of them.
        backend._next_poll = 0.0
        before = dict(backend.conn.stats.commands)
        await backend.poll(refs)
        after = dict(backend.conn.stats.commands)
        assert after["squeue"] - before.get("squeue", 0) == 1
        assert after.get("sacct", 0) - before.get("sacct", 0) == 1

        # sacct: six elements of one job, never more than two running at once.
        rows = sacct_elements(slurm, array_id)
        assert sorted(r["id"] for r in rows) == [f"{array_id}_{i}" for i in range(6)]
        ran = [r for r in rows if r["start"] not in ("Unknown", "None") and r["end"] != "Unknown"]
        intervals = [(_epoch(r["start"]), _epoch(r["end"])) for r in ran]
        assert len(intervals) >= 5 and max_overlap(intervals) <= 2, rows

        # Each task: its own command, environment, logs and exit-code file; the values of
        # its parameters arrived as they were, and ran nothing.
        run_dir = prepared.run_dir
        for i in (0, 2, 3, 4, 5):
            out = ssh_cmd(slurm, f"cat {run_dir}/.hpcml/stdout.{i}.log")
            assert out == f"task {i} run mlflow-{i} param {hostile}{i}\n", out
            code = ssh_cmd(slurm, f"cat {run_dir}/.hpcml/exit_code.{i}")
            assert f'"exit_code": {3 if i == 4 else 0},' in code
        listing = ssh_cmd(slurm, f"ls -a {run_dir} {run_dir}/.hpcml {run_dir}/.hpcml/tasks")
        assert "pwned" not in listing and "params.tsv" in listing and "5.cmd" in listing
        assert "tok-canary" not in ssh_cmd(slurm, f"cat {run_dir}/.hpcml/tasks/* "
                                                  f"{run_dir}/.hpcml/job.sbatch")
        # The shared secrets file (the tracking token): gone once the last task ended.
        base = await backend._base_dir()
        assert ssh_cmd(slurm, f"ls {base}/.secrets/{lead.run_id}.env 2>&1 || true").find(
            "No such file") >= 0
    finally:
        await backend.close()


async def test_more_tasks_than_max_array_size_become_arrays_one_after_the_other(
        tmp_path, slurm):  # noqa: F811
    backend = SlurmBackend({"SSH": ssh_section(slurm)}, tmp_path / "data")
    backend.max_array_size = 3  # the site's limit, imposed (the test cluster's is 1001)
    try:
        snap = project(tmp_path, {"task.py": TASK_PY})
        lead = context(backend, slurm, new_id())
        lead = lead.replace(run_dir=await backend.run_dir_for(lead))
        tasks = [ArrayTask(i, context(backend, slurm, new_id(), command=f"python task.py p{i} 0",
                                      env={"MLFLOW_RUN_ID": f"m{i}", "TASK_SECONDS": "1"}))
                 for i in range(5)]
        prepared = await backend.prepare(lead, snap)
        subs = await backend.submit_array(prepared, tasks, max_parallel=2)
        first, second = subs[0].job_id.split("_")[0], subs[3].job_id.split("_")[0]
        assert first != second
        assert [s.job_id for s in subs] == [f"{first}_0", f"{first}_1", f"{first}_2",
                                            f"{second}_0", f"{second}_1"]
        assert f"afterany:{first}" in ssh_cmd(slurm, f"scontrol show job {second}_0")
        # After a crash mid-submission the tasks' job ids are found again.
        lead = lead.replace(run_dir=prepared.run_dir, env={})
        assert await backend.find_submitted(lead) == first
        assert await backend.find_submitted_tasks(lead, range(5)) == {
            t.index: s.job_id for t, s in zip(tasks, subs, strict=True)}
        refs = [JobRef(t.context.run_id, s.job_id, prepared.run_dir, t.index)
                for t, s in zip(tasks, subs, strict=True)]
        # A pending element cancelled leaves no record in Slurm: still CANCELLED.
        await backend.cancel(refs[4])
        final = await wait_all(backend, refs)
        assert [final[r.job_id].state for r in refs] == [RunState.FINISHED] * 4 + [
            RunState.CANCELLED], final
        for i in range(4):  # logs by the sweep's index, not the element's
            out = ssh_cmd(slurm, f"cat {prepared.run_dir}/.hpcml/stdout.{i}.log")
            assert out.startswith(f"task {i} run m{i} param p{i}"), out
        # The second array started after the first one ended.
        rows = sacct_elements(slurm, f"{first},{second}")
        ends = [_epoch(r["end"]) for r in rows if r["id"].startswith(f"{first}_")]
        starts = [_epoch(r["start"]) for r in rows if r["id"].startswith(f"{second}_")]
        assert len(ends) == 3 and len(starts) == 1 and min(starts) >= max(ends), rows
    finally:
        await backend.close()


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SlurmBackend, "backoff_start", 0.5)
    monkeypatch.setattr(SlurmBackend, "backoff_max", 1.0)


async def test_a_sweep_cancelled_leaves_no_secrets_file(tmp_path, slurm):  # noqa: F811
    """Tasks cancelled before they started never run the script that would remove the
    sweep's shared secrets file: the cancel does, once no task may still need it."""
    backend = SlurmBackend({"SSH": ssh_section(slurm)}, tmp_path / "data")
    try:
        snap = project(tmp_path, {"task.py": TASK_PY})
        lead = context(backend, slurm, new_id(), env={"MLFLOW_TRACKING_TOKEN": "tok-canary"})
        lead = lead.replace(run_dir=await backend.run_dir_for(lead))
        tasks = [ArrayTask(i, context(backend, slurm, new_id(), command=f"python task.py p{i} 0",
                                      env={"MLFLOW_RUN_ID": f"m{i}", "TASK_SECONDS": "120"}))
                 for i in range(3)]
        prepared = await backend.prepare(lead, snap)
        subs = await backend.submit_array(prepared, tasks, max_parallel=1)
        refs = [JobRef(t.context.run_id, s.job_id, prepared.run_dir, t.index)
                for t, s in zip(tasks, subs, strict=True)]
        secrets = f"{await backend._base_dir()}/.secrets/{lead.run_id}.env"
        deadline = time.monotonic() + 60
        while (await backend.poll(refs))[refs[0].job_id].state != RunState.RUNNING:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.3)
        assert ssh_cmd(slurm, f"ls {secrets}").strip() == secrets  # the running task needs it
        await asyncio.gather(*(backend.cancel(r) for r in refs))
        final = await wait_all(backend, refs)
        assert {st.state for st in final.values()} == {RunState.CANCELLED}, final
        deadline = time.monotonic() + 30
        while "No such file" not in ssh_cmd(slurm, f"ls {secrets} 2>&1 || true"):
            assert time.monotonic() < deadline, "the sweep's secrets file is still there"
            await asyncio.sleep(0.5)
    finally:
        await backend.close()
