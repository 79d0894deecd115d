"""The same job, killed the same way, ends the same over both Slurm backends: Slurm over SSH
(the real test cluster) and FirecREST (its loopback test server, driven by the real
pyfirecrest client). Both go through ``slurm_common.job_status``: state, exit code
(128 + n for signal n) and message must be equal. Needs the test cluster; ~30 s."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.models import RunRecord
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine

from .firecrest_fixtures import config, serve_firecrest
from .servers.firecrest_server import FirecrestServer
from .slurm_cluster import make_project, slurm, ssh_cmd  # noqa: F401 - fixture

SECRET = "canary-same-end-3c9e1a-secret"


@pytest.fixture
def firecrest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    yield from serve_firecrest(tmp_path, monkeypatch, SECRET)


async def until(engine: Engine, run_id: str, done, timeout: float = 90) -> RunRecord:
    deadline = time.monotonic() + timeout
    while True:
        await engine.runs.refresh()
        run = await engine.runs.get(run_id)
        if done(run):
            return run
        assert time.monotonic() < deadline, run.state_history
        await asyncio.sleep(0.3)


def ssh_pids(s: dict[str, str], job_id: str) -> list[tuple[int, str]]:
    """(pid, command line) of every process of a Slurm job on the test cluster."""
    out = ssh_cmd(s, f"for p in $(scontrol listpids {job_id} | awk 'NR>1{{print $1}}'); do "
                  "ps -o pid=,args= -p $p; done", check=False)
    return [
        (int(pid), args)
        for pid, _, args in (ln.strip().partition(" ") for ln in out.splitlines())
        if pid.isdigit()
    ]


def local_pids(pgid: int) -> list[tuple[int, str]]:
    """(pid, command line) of a FirecREST test job's processes (they run on this machine)."""
    out = subprocess.run(["ps", "-o", "pid=,args=", "-g", str(pgid)], capture_output=True,
                         text=True).stdout
    return [
        (int(pid), args)
        for pid, _, args in (ln.strip().partition(" ") for ln in out.splitlines())
        if pid.isdigit()
    ]


async def program_started(list_pids) -> list[tuple[int, str]]:
    deadline = time.monotonic() + 60
    while True:
        pids = await asyncio.to_thread(list_pids)
        if any("sleeper.py" in args for _, args in pids):
            return pids
        assert time.monotonic() < deadline, pids
        await asyncio.sleep(0.3)


def victims(pids: list[tuple[int, str]], how: str) -> list[int]:
    """``job``: every process of the job (the node's OOM killer, an admin's kill -9);
    ``program``: the program alone (its own OOM kill): the job script lives on."""
    return [pid for pid, args in pids if how == "job" or "sleeper.py" in args]


@pytest.mark.parametrize("how", ["job", "program"])
async def test_a_job_killed_by_a_signal_ends_the_same_over_ssh_and_firecrest(
    hpcml_data, tmp_path, slurm, firecrest: FirecrestServer, how  # noqa: F811
):
    project = make_project(tmp_path / "toy", slurm)
    (project / "firecrest.yaml").write_text(yaml.safe_dump(config(firecrest)))
    engine = Engine(data_dir=hpcml_data)
    ends = {}
    try:
        for name in ("slurm", "firecrest"):
            run = await engine.runs.submit(SubmitRequest(
                project=str(project), backend_config=f"{name}.yaml", entry_point="sleep"))
            job_id = run.backend_job_id
            assert job_id
            if name == "slurm":
                pids = await program_started(lambda job_id=job_id: ssh_pids(slurm, job_id))
                ssh_cmd(slurm, "kill -KILL " + " ".join(map(str, victims(pids, how))), check=False)
            else:
                job = firecrest.state.jobs[job_id]
                deadline = time.monotonic() + 60
                while not (job.run and job.run._proc):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)
                pids = await program_started(lambda job=job: local_pids(job.run._proc.pid))
                for pid in victims(pids, how):
                    os.kill(pid, signal.SIGKILL)
            run = await until(engine, run.id, lambda r: r.state.terminal)
            ends[name] = (run.state, run.exit_code, run.state_history[-1].message)
    finally:
        await engine.close()
    assert ends["slurm"] == ends["firecrest"]
    assert ends["slurm"] == (RunState.FAILED, 137, "exit code 137 (killed by SIGKILL)")
