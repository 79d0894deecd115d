"""Slurm over SSH at the engine level (real sshd + Slurm): incremental upload, batched
polling, host keys, path escapes. Needs the test cluster; skips without it."""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from jupyterlab_hpcml.backends.base import JobRef
from jupyterlab_hpcml.backends.ssh.connection import SSHConnection, SSHError
from jupyterlab_hpcml.backends.ssh.slurm import SlurmBackend
from jupyterlab_hpcml.engine.errors import UserInputError
from jupyterlab_hpcml.engine.models import RunState
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine

from .slurm_cluster import make_project, slurm, ssh_cmd, ssh_section  # noqa: F401 - fixture


@pytest.fixture
def engine(hpcml_data: Path, slurm) -> Engine:  # noqa: F811
    return Engine(data_dir=hpcml_data)


async def wait_terminal(engine: Engine, run_id: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        await engine.runs.refresh()
        run = await engine.runs.get(run_id)
        if run.state.terminal:
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run.state}"
        await asyncio.sleep(0.3)


async def test_resubmit_after_one_file_edit_sends_only_that_file(engine, tmp_path, slurm):  # noqa: F811
    project = make_project(tmp_path / "toy", slurm)
    (project / "data").mkdir()
    for i in range(40):  # unique contents: nothing of this project is in the cluster's cache yet
        (project / "data" / f"part{i}.txt").write_text(f"{os.urandom(8).hex()} {i}\n" * 50)
    (project / "secret.ckpt").write_text("excluded by .gitignore")
    (project / ".gitignore").write_text("*.ckpt\n")
    req = SubmitRequest(project=str(project), backend_config="slurm.yaml", parameters={"steps": 1})
    progress: list[tuple[int, int]] = []
    first = await engine.runs.submit(req)
    backend = engine.registry.for_run(first)
    assert isinstance(backend, SlurmBackend)
    up1 = backend.last_upload
    assert up1 is not None and up1.full_manifest and up1.uploaded_files >= 40

    edited = project / "data" / "part7.txt"
    new_content = f"changed {os.urandom(8).hex()}\n".encode()  # not in the cache yet
    edited.write_bytes(new_content)
    original = engine.runs._progress
    engine.runs._progress = lambda run_id, s, t: (progress.append((s, t)), original(run_id, s, t))
    second = await engine.runs.submit(req)
    up2 = backend.last_upload
    assert up2 is not None and not up2.full_manifest
    assert (up2.uploaded_files, up2.uploaded_bytes) == (1, len(new_content))
    assert up2.manifest_bytes < 4000  # a delta, not the manifest of every file
    assert progress[-1] == (len(new_content), len(new_content))

    for run in (first, second):
        run = await wait_terminal(engine, run.id)
        assert run.state == RunState.FINISHED, run
    listing = await backend.list_files(second)
    paths = {f.path for f in listing}
    assert "data/part7.txt" in paths and "secret.ckpt" not in paths and ".hpcml/job.sbatch" in paths
    chunk = await backend.read(second, "data/part7.txt", 0, 100)
    assert chunk.data == new_content and chunk.size == len(new_content)
    await engine.close()


async def test_one_squeue_per_poll_whatever_the_number_of_jobs(engine, tmp_path, slurm):  # noqa: F811
    project = make_project(tmp_path / "toy", slurm)
    req = SubmitRequest(project=str(project), backend_config="slurm.yaml", entry_point="sleep",
                        parameters={"seconds": 60})
    runs = [await engine.runs.submit(req) for _ in range(3)]
    backend = engine.registry.for_run(runs[0])
    refs = [JobRef(r.id, r.backend_job_id or "", r.run_dir or "") for r in runs]
    before = dict(backend.conn.stats.commands)
    statuses = await backend.poll(refs)
    after = backend.conn.stats.commands
    assert set(statuses) == {r.backend_job_id for r in runs}
    assert after["squeue"] - before.get("squeue", 0) == 1
    assert after.get("sacct", 0) == before.get("sacct", 0)  # nothing ended: no sacct
    for run in runs:
        await engine.runs.cancel(run.id)
    ended = [await wait_terminal(engine, r.id) for r in runs]
    assert {r.state for r in ended} == {RunState.CANCELLED}
    # A path outside the run directory is refused, also through a symlink.
    ssh_cmd(slurm, f"ln -sf ~/.ssh/authorized_keys {runs[0].run_dir}/escape")
    with pytest.raises(UserInputError):
        await backend.read(runs[0], "../../x", 0, 10)
    with pytest.raises(UserInputError):
        await backend.read(runs[0], "escape", 0, 10)
    await engine.close()


async def test_unknown_host_key_is_a_clear_error(slurm, tmp_path, monkeypatch):  # noqa: F811
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{slurm['HPCML_TEST_SSH_PORT']} ssh-ed25519 "
                     "AAAAC3NzaC1lZDI1NTE5AAAAIHh3bS5w2c0y0mSxkK8rK6xXJ9o0d8vQkQ2m5oq2c3aB\n")
    monkeypatch.setenv("HPCML_SSH_KNOWN_HOSTS", str(wrong))
    conn = SSHConnection(ssh_section(slurm))
    with pytest.raises(SSHError, match="host key .* is not trusted"):
        await conn.run("true")
    monkeypatch.setenv("HPCML_SSH_KNOWN_HOSTS", str(tmp_path / "missing"))
    with pytest.raises(SSHError, match="not trusted"):
        await SSHConnection(ssh_section(slurm)).run("true")


async def test_ssh_config_alias_gives_host_port_user_key(slurm, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HPCML_SSH_CONFIG", slurm["HPCML_TEST_SSH_CONFIG"])
    monkeypatch.delenv("HPCML_SSH_KNOWN_HOSTS")  # UserKnownHostsFile comes from the config
    conn = SSHConnection({"Hostname": "hpcml-test-cluster"})
    res = await conn.run("id -un")
    assert res.out.strip() == slurm["HPCML_TEST_SSH_USER"]
    await conn.run("true")
    assert conn.stats.connects == 1  # one connection for every call
    await conn.close()
