"""Requeue on the real test cluster (Slurm over SSH, backend level): a run survives being
requeued by an admin's ``scontrol requeue`` (by its own script when Slurm's
``--signal=B:USR2@s`` says the time limit is near: tests/test_requeue_engine.py), resumes
from its checkpoint in ``$HPCML_CHECKPOINT_DIR`` and FINISHES as the same job, its log
appended, the restart count reported. Never a terminal state in between.

Slurm holds a requeued job ~2 minutes (BeginTime) before it may start again; the tests
lift that hold (``scontrol update StartTime=now``, what the job's owner may do; not in the
second of the requeue: ``slurm_cluster.RequeueHolds``) to stay short. slurmctld checks for
signals to send every ~30 s: with ``--time=1`` and ``--signal=B:USR2@20`` the signal comes
10-40 s after the start.
"""
from __future__ import annotations

import asyncio
import time

from jupyterlab_hpcml.backends.ssh.slurm import SlurmBackend
from jupyterlab_hpcml.core.job import ArrayTask, JobRef, RequeuePolicy
from jupyterlab_hpcml.core.states import JobStatus, RunState

from .slurm_cluster import RequeueHolds, slurm, ssh_cmd, ssh_section  # noqa: F401 - fixture
from .test_slurm_array import context, new_id, project

# Checkpoints after every step (an admin's requeue gives no warning) or on SIGUSR2 only.
TRAIN_PY = """\
import os, signal, sys, time
ck = os.path.join(os.environ["HPCML_CHECKPOINT_DIR"], "step")
step = int(open(ck).read()) if os.path.exists(ck) else 0
print("start", step, "restart", os.environ["HPCML_RESTART_COUNT"], flush=True)
stop = []
signal.signal(signal.SIGUSR2, lambda *a: stop.append(1))
every_step = sys.argv[1] == "every-step"
total, pause = int(sys.argv[2]), float(sys.argv[3])

def save():
    with open(ck + ".tmp", "w") as f:
        f.write(str(step))
    os.replace(ck + ".tmp", ck)

while step < total:
    if stop:
        save()
        print("checkpointed at", step, flush=True)
        sys.exit(0)
    time.sleep(pause)
    step += 1
    print("step", step, flush=True)
    if every_step:
        save()
print("done", step, flush=True)
"""


async def submitted(backend: SlurmBackend, tmp_path, s, command: str, *, runtime: int,
                    policy: RequeuePolicy) -> JobRef:
    snap = project(tmp_path, {"train.py": TRAIN_PY})
    ctx = context(backend, s, new_id(), command=command, runtime=runtime, requeue=policy)
    run_dir = await backend.run_dir_for(ctx)
    ctx = ctx.replace(run_dir=run_dir, env={
        "HPCML_CHECKPOINT_DIR": f"{run_dir}/.hpcml/checkpoint", "HPCML_RESTART_COUNT": "0",
        "MLFLOW_TRACKING_TOKEN": "tok-canary-requeue"})
    prepared = await backend.prepare(ctx, snap, {".hpcml/checkpoint/": b""})
    job_id, _ = await backend.submit(prepared)
    return JobRef(ctx.run_id, job_id, prepared.run_dir)


async def log_text(backend: SlurmBackend, ref: JobRef) -> str:
    chunk = await backend.read(ref, ".hpcml/stdout.log", 0, 1 << 20)
    return chunk.data.decode()


async def follow(backend: SlurmBackend, s, ref: JobRef, timeout: float = 170,
                 on_running=None) -> list[JobStatus]:
    """Poll until the job ends: every status seen; a requeued job held by its BeginTime
    is released at once."""
    seen: list[JobStatus] = []
    holds = RequeueHolds(s)
    deadline = time.monotonic() + timeout
    while True:
        status = (await backend.poll([ref]))[ref.job_id]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status.state.terminal:
            return seen
        if status.state == RunState.QUEUED and status.restarts:
            holds.lift(ref.job_id, status.restarts)
        if on_running is not None and status.state == RunState.RUNNING:
            if await on_running():
                on_running = None
        assert time.monotonic() < deadline, seen
        await asyncio.sleep(0.5)


async def test_a_running_job_requeued_by_an_admin_resumes_and_finishes(tmp_path, slurm):  # noqa: F811
    backend = SlurmBackend({"SSH": ssh_section(slurm)}, tmp_path / "data")
    try:
        ref = await submitted(backend, tmp_path, slurm, "python train.py every-step 24 0.5",
                              runtime=600, policy=RequeuePolicy(max_requeues=2,
                                                                signal_before_end=60))
        script = ssh_cmd(slurm, f"cat {ref.run_dir}/.hpcml/job.sbatch")
        assert "#SBATCH --requeue" in script and "#SBATCH --signal=B:USR2@60" in script

        async def requeue_after_some_steps() -> bool:
            if "step 4\n" not in await log_text(backend, ref):
                return False
            ssh_cmd(slurm, f"scontrol requeue {ref.job_id}")
            return True

        seen = await follow(backend, slurm, ref, on_running=requeue_after_some_steps)
        end = seen[-1]
        assert (end.state, end.exit_code, end.restarts) == (RunState.FINISHED, 0, 1), seen
        assert any(st.state == RunState.QUEUED and st.message == "requeued (restart 1)"
                   for st in seen), seen
        assert [st.state for st in seen if st.state.terminal] == [RunState.FINISHED], seen
        log = await log_text(backend, ref)
        assert log.startswith("start 0 restart 0\n"), log  # appended, not overwritten
        resumed = [ln for ln in log.splitlines() if ln.startswith("start ")][1]
        step = int(resumed.split()[1])
        assert step >= 4 and resumed == f"start {step} restart 1", log
        assert log.rstrip().endswith("done 24"), log
        # The secrets file outlived the requeue (the second start read it), not the end.
        err = (await backend.read(ref, ".hpcml/stderr.log", 0, 1 << 20)).data.decode()
        assert "secrets file is missing" not in err, err
        secrets = f"{await backend._base_dir()}/.secrets/{ref.run_id}.env"
        assert "No such file" in ssh_cmd(slurm, f"ls {secrets} 2>&1 || true")
    finally:
        await backend.close()


async def test_an_array_task_requeued_by_an_admin_resumes_alone(tmp_path, slurm):  # noqa: F811
    backend = SlurmBackend({"SSH": ssh_section(slurm)}, tmp_path / "data")
    try:
        snap = project(tmp_path, {"train.py": TRAIN_PY})
        policy = RequeuePolicy(max_requeues=2, signal_before_end=60)
        lead = context(backend, slurm, new_id(), requeue=policy)
        run_dir = await backend.run_dir_for(lead)
        lead = lead.replace(run_dir=run_dir, env={"MLFLOW_TRACKING_TOKEN": "tok-canary-rq"})
        tasks = [ArrayTask(i, context(
            backend, slurm, new_id(), command="python train.py every-step 16 0.5",
            env={"HPCML_CHECKPOINT_DIR": f"{run_dir}/.hpcml/checkpoint.{i}",
                 "HPCML_RESTART_COUNT": "0"})) for i in range(2)]
        prepared = await backend.prepare(lead, snap, {f".hpcml/checkpoint.{i}/": b""
                                                      for i in range(2)})
        subs = await backend.submit_array(prepared, tasks)
        refs = [JobRef(t.context.run_id, s.job_id, run_dir, t.index)
                for t, s in zip(tasks, subs, strict=True)]
        requeued = False
        holds = RequeueHolds(slurm)
        seen: list[JobStatus] = []
        deadline = time.monotonic() + 170
        while True:
            statuses = await backend.poll(refs)
            one = statuses[refs[1].job_id]
            if not seen or seen[-1] != one:
                seen.append(one)
            if all(st.state.terminal for st in statuses.values()):
                break
            log = (await backend.read(refs[1], ".hpcml/stdout.1.log", 0, 1 << 20)).data.decode()
            if not requeued and "step 3\n" in log:
                ssh_cmd(slurm, f"scontrol requeue {refs[1].job_id}")  # only this element
                requeued = True
            if one.state == RunState.QUEUED and one.restarts:
                holds.lift(refs[1].job_id, one.restarts)
            assert time.monotonic() < deadline, (statuses, seen)
            await asyncio.sleep(0.5)
        first, second = statuses[refs[0].job_id], statuses[refs[1].job_id]
        assert (first.state, first.restarts) == (RunState.FINISHED, 0), first
        assert (second.state, second.exit_code, second.restarts) == (RunState.FINISHED, 0, 1), seen
        assert [st.state for st in seen if st.state.terminal] == [RunState.FINISHED], seen
        log = (await backend.read(refs[1], ".hpcml/stdout.1.log", 0, 1 << 20)).data.decode()
        starts = [ln for ln in log.splitlines() if ln.startswith("start ")]
        assert starts[0] == "start 0 restart 0" and starts[1].endswith(" restart 1"), log
        assert int(starts[1].split()[1]) >= 3 and log.rstrip().endswith("done 16"), log
        log0 = (await backend.read(refs[0], ".hpcml/stdout.0.log", 0, 1 << 20)).data.decode()
        assert [ln for ln in log0.splitlines() if ln.startswith("start ")] == [
            "start 0 restart 0"], log0
    finally:
        await backend.close()


async def test_no_requeue_left_the_job_runs_to_its_limit_and_its_secrets_go(tmp_path, slurm):  # noqa: F811
    backend = SlurmBackend({"SSH": ssh_section(slurm)}, tmp_path / "data")
    try:
        ref = await submitted(backend, tmp_path, slurm, "python train.py on-signal 500 1",
                              runtime=60, policy=RequeuePolicy(max_requeues=0,
                                                               signal_before_end=20))
        seen = await follow(backend, slurm, ref, timeout=150)
        assert seen[-1].state == RunState.TIMEOUT, seen
        err = (await backend.read(ref, ".hpcml/stderr.log", 0, 1 << 20)).data.decode()
        assert "no requeue left" in err and "requeueing" not in err, err
        log = await log_text(backend, ref)
        assert "checkpointed" not in log, log  # the program was not asked to stop
        # The script kept the secrets file (an end by a signal may be a requeue); the poll
        # that saw the job end removed it.
        secrets = f"{await backend._base_dir()}/.secrets/{ref.run_id}.env"
        assert "No such file" in ssh_cmd(slurm, f"ls {secrets} 2>&1 || true")
    finally:
        await backend.close()
