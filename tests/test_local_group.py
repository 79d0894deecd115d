"""A local job is its whole process group: killing its runner (the per-run wrapper) does
not end the run while the program lives, the program's own exit code is what the run
ends with, and a cancel's SIGKILL deadline lives on disk (it survives the backend)."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from jupyterlab_hpcml.backends.local import CANCEL_FILE, RUNNER_GONE, LocalBackend
from jupyterlab_hpcml.core.states import RunState

from .test_local_backend import Env, alive, wait_end, wait_for_file

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def kill_runner(job_id: str) -> None:
    """SIGKILL the runner alone (e.g. the OOM killer picked it), not its group."""
    os.kill(int(job_id), signal.SIGKILL)


async def test_program_outlives_its_killed_runner_and_its_exit_code_counts(env: Env) -> None:
    _, ref = await env.start("touch ready; while [ ! -e go ]; do sleep 0.05; done; exit 3",
                             {"PostRunCommandOnLoginNode": "touch post_ran"})
    run_dir = Path(ref.run_dir)
    await wait_for_file(run_dir / "ready")
    kill_runner(ref.job_id)
    env.backend._reap()  # the runner is our child here; a restarted server's would not be
    for _ in range(10):  # the program still runs: so does the run
        assert (await env.backend.poll([ref]))[ref.job_id].state == RunState.RUNNING
    (run_dir / "go").touch()
    status = await wait_end(env.backend, ref)
    assert (status.state, status.exit_code) == (RunState.FAILED, 3)
    assert RUNNER_GONE in (status.message or "")
    assert not (run_dir / "post_ran").exists()  # said so in the message


async def test_killed_runner_program_that_succeeds_is_finished(env: Env) -> None:
    _, ref = await env.start("touch ready; while [ ! -e go ]; do sleep 0.05; done; echo done")
    run_dir = Path(ref.run_dir)
    await wait_for_file(run_dir / "ready")
    kill_runner(ref.job_id)
    other = LocalBackend({}, env.data_dir)  # e.g. a restarted server
    assert (await other.poll([ref]))[ref.job_id].state == RunState.RUNNING
    (run_dir / "go").touch()
    status = await wait_end(other, ref)
    assert (status.state, status.exit_code, status.message) == (RunState.FINISHED, 0, RUNNER_GONE)
    await env.backend.poll([ref])  # reaps


async def test_cancel_of_a_program_whose_runner_was_killed(env: Env) -> None:
    """SIGTERM ignored and no runner left to escalate: a poll after the deadline kills the
    group, from a backend instance that never saw the cancel (a restarted server)."""
    env.backend.kill_grace = 0.2
    run, ref = await env.start("trap '' TERM; touch ready; sleep 1000 & echo $! > pid; wait")
    run_dir = Path(ref.run_dir)
    await wait_for_file(run_dir / "pid")
    program = int((run_dir / "pid").read_text())
    kill_runner(ref.job_id)
    env.backend._reap()
    await env.backend.cancel(ref)
    deadline = json.loads((run_dir / CANCEL_FILE).read_text())["kill_at"]
    await env.backend.cancel(ref)  # a repeated cancel keeps the first deadline
    assert json.loads((run_dir / CANCEL_FILE).read_text())["kill_at"] == deadline
    await env.backend.close()

    restarted = LocalBackend({}, env.data_dir)
    assert (await restarted.poll([ref]))[ref.job_id].state == RunState.RUNNING
    status = await wait_end(restarted, ref, timeout=20)
    assert status.state == RunState.FAILED  # the engine records it as CANCELLED
    assert not alive(program)


async def test_runner_escalates_a_cancel_on_its_own(env: Env) -> None:
    """Nobody polls after the cancel (the server died, or the CLI cancelled and exited):
    the program ignoring SIGTERM is still killed after the grace period."""
    env.backend.kill_grace = 0.3
    run, ref = await env.start("trap '' TERM; touch ready; sleep 1000 & echo $! > pid; wait")
    run_dir = Path(ref.run_dir)
    await wait_for_file(run_dir / "pid")
    program = int((run_dir / "pid").read_text())
    await env.backend.cancel(ref)
    await env.backend.close()  # no poll, no timer from here on
    await wait_for_file(run_dir / ".hpcml" / "exit_code", timeout=10)
    done = json.loads((run_dir / ".hpcml" / "exit_code").read_text())
    assert (done["exit_code"], done["signal"], done["cancelled"]) == (137, "SIGKILL", True)
    assert not alive(program)
    env.backend._reap()


async def test_runtime_limit_holds_when_the_runner_is_gone(env: Env) -> None:
    env.backend.kill_grace = 0.2
    _, ref = await env.start("touch ready; sleep 1000", resources={"Runtime": 2})
    run_dir = Path(ref.run_dir)
    await wait_for_file(run_dir / "ready")
    kill_runner(ref.job_id)
    env.backend._reap()
    status = await wait_end(env.backend, ref, timeout=20)
    assert (status.state, status.exit_code) == (RunState.TIMEOUT, 128 + signal.SIGTERM)


async def test_job_is_found_when_its_submitter_died_before_recording_the_pid(env: Env) -> None:
    """The server died between starting the runner and writing its pid to job.json."""
    run, ref = await env.start("touch ready; while [ ! -e go ]; do sleep 0.05; done")
    run_dir = Path(ref.run_dir)
    await wait_for_file(run_dir / "ready")
    job_file = run_dir / ".hpcml" / "job.json"
    job_file.write_text(json.dumps({**json.loads(job_file.read_text()), "pid": None,
                                    "start_time": None}))
    restarted = LocalBackend({}, env.data_dir)
    assert await restarted.find_submitted(run.ctx) == ref.job_id  # the runner recorded itself
    (run_dir / ".hpcml" / "runner.json").unlink()  # ... or had not done so yet
    assert await restarted.find_submitted(run.ctx) == ref.job_id
    (run_dir / "go").touch()
    status = await wait_end(restarted, ref)
    assert (status.state, status.exit_code) == (RunState.FINISHED, 0)
    env.backend._reap()
