"""Slurm over SSH at scale (real sshd + Slurm): 1,000 runs ending at once.

The poll's follow-up command for ended jobs (sacct, exit-code files, login-node post-run
commands) once held ~600 bytes per run in its command line: above ~210 runs it passed
Linux's 128 KiB limit for one argument and above ~420 sshd dropped the connection
("Bad packet length"), again on every reconnect, so the runs stayed UNKNOWN for good.

Cost: one held job array of 1,000 elements (one sbatch, one scancel: nothing runs on the
node) and 1,000 records inserted in the run store; ~10-20 s on a busy 2-core machine.
slurmctld keeps the ended elements for MinJobAge (1 h on the test cluster), so the test
skips when fewer than 1,000 job records are free below MaxJobCount.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from jupyterlab_hpcml.backends.ssh.connection import MAX_COMMAND_BYTES
from jupyterlab_hpcml.backends.ssh.slurm import SlurmBackend
from jupyterlab_hpcml.engine.config import parse_backend_config
from jupyterlab_hpcml.engine.models import RunRecord, RunState, StateChange
from jupyterlab_hpcml.engine.service import Engine

from .slurm_cluster import backend_config, slurm, ssh_cmd  # noqa: F401 - fixture

N_RUNS = 1000


def _room_for(s: dict[str, str], n: int) -> bool:
    out = ssh_cmd(s, "squeue -t all -h -r | wc -l; "
                     "scontrol show config | sed -n 's/^MaxJobCount *= *//p'")
    held, limit = (int(x) for x in out.split()[:2])
    return held + n <= limit


async def test_a_thousand_runs_ending_at_once_keep_the_connection(hpcml_data: Path, slurm):  # noqa: F811
    if not _room_for(slurm, N_RUNS):
        pytest.skip("slurmctld holds too many job records for 1,000 more "
                    "(ended jobs leave after MinJobAge)")
    engine = Engine(data_dir=hpcml_data)
    cfg = parse_backend_config(backend_config(slurm))
    backend = engine.registry.get(cfg.kind, cfg.data, cfg.connection_name)
    assert isinstance(backend, SlurmBackend)
    base = await backend._base_dir()
    out = ssh_cmd(slurm, f"sbatch --parsable --hold --array=0-{N_RUNS - 1} -p debug "
                         "-o /dev/null --wrap true")
    array = out.strip().split(";")[0]
    try:
        # 1,000 runs as a submission leaves them (QUEUED, a job id, a run directory on the
        # cluster), without 1,000 submissions: the jobs are the held array's elements.
        now = time.time()
        records = []
        for i in range(N_RUNS):
            run_id = uuid.uuid4().hex[:12]
            records.append(RunRecord(
                id=run_id, name=f"scale-{i}", project_path="/nonexistent/toy",
                project_name="toy", entry_point="main", command="true", backend=cfg.kind,
                connection=cfg.connection_name, backend_config=cfg.redacted(),
                backend_job_id=f"{array}_{i}", run_dir=f"{base}/toy/{run_id}",
                state=RunState.QUEUED, state_history=[StateChange(state=RunState.QUEUED, at=now)],
                created_at=now, updated_at=now))
        await asyncio.to_thread(lambda: [engine.store.insert(r) for r in records])
        backend.conn.stats.connects = 0
        seen = await engine.runs.refresh()
        assert {r.state for r in seen} == {RunState.QUEUED}

        ssh_cmd(slurm, f"scancel {array}")  # 1,000 runs end at once
        sizes: list[int] = []
        real_run = backend.conn.run

        async def measured(command, **kw):
            sizes.append(len(backend.conn._command_line(command)))
            return await real_run(command, **kw)

        backend.conn.run = measured
        deadline = time.monotonic() + 120
        while True:
            await asyncio.sleep(1.1)  # past the backend's backoff (at most 1 s in tests)
            await engine.runs.refresh()
            runs = [await engine.runs.get(r.id) for r in records]
            if all(r.state.terminal for r in runs):
                break
            left = {r.state for r in runs if not r.state.terminal}
            why = runs[0].state_history[-1].message
            assert time.monotonic() < deadline, f"not ended: {left}; {why}"
        assert {r.state for r in runs} == {RunState.CANCELLED}
        # Never UNKNOWN on the way: the connection held; every command line stayed bounded.
        assert all(c.state != RunState.UNKNOWN for r in runs for c in r.state_history)
        assert backend.conn.stats.connects == 0, "the connection was lost and reopened"
        assert sizes and max(sizes) <= MAX_COMMAND_BYTES, max(sizes)
    finally:
        ssh_cmd(slurm, f"scancel {array}", check=False)
        await engine.close()
