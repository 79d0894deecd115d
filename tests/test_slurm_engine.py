"""Slurm over SSH at the engine level (real sshd + Slurm): incremental upload, batched
polling, host keys, path escapes. Needs the test cluster; skips without it."""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
import yaml

from jupyterlab_hpcml.backends.base import JobRef
from jupyterlab_hpcml.backends.ssh.connection import SSHConnection, SSHError
from jupyterlab_hpcml.backends.ssh.slurm import SlurmBackend
from jupyterlab_hpcml.core.errors import UserInputError
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine

from .slurm_cluster import backend_config, make_project, slurm, ssh_cmd, ssh_section  # noqa: F401 - fixture


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
    listing = await backend.list_files(second.job_ref())
    paths = {f.path for f in listing}
    assert "data/part7.txt" in paths and "secret.ckpt" not in paths and ".hpcml/job.sbatch" in paths
    chunk = await backend.read(second.job_ref(), "data/part7.txt", 0, 100)
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
        await backend.read(runs[0].job_ref(), "../../x", 0, 10)
    with pytest.raises(UserInputError):
        await backend.read(runs[0].job_ref(), "escape", 0, 10)
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


async def test_unchanged_code_is_one_command_and_a_lost_tree_is_rebuilt(engine, tmp_path, slurm):  # noqa: F811
    project = make_project(tmp_path / "toy", slurm)
    (project / "unique.txt").write_text(os.urandom(8).hex())  # a snapshot of this test only
    req = SubmitRequest(project=str(project), backend_config="slurm.yaml", entry_point="fail",
                        parameters={"code": 0})
    first = await engine.runs.submit(req)
    backend = engine.registry.for_run(first)
    assert first.backend_job_id and backend.last_upload.commands >= 1

    before = dict(backend.conn.stats.commands)
    second = await engine.runs.submit(req)
    delta = {
        k: v - before.get(k, 0)
        for k, v in backend.conn.stats.commands.items()
        if v != before.get(k, 0)
    }
    assert second.backend_job_id and delta == {"sbatch": 1}, (
        delta
    )  # no helper, no SFTP: one command
    assert backend.last_upload.commands == 0 and backend.last_upload.uploaded_bytes == 0

    # The cluster's cache lost the tree (pruned, cleaned): rebuilt from the cached objects.
    ssh_cmd(slurm, f"rm -rf ~/hpcml/.cache/trees/{first.snapshot_id}-*")
    before = dict(backend.conn.stats.commands)
    third = await engine.runs.submit(req)
    assert third.state == RunState.QUEUED and third.backend_job_id, third
    delta = {
        k: v - before.get(k, 0)
        for k, v in backend.conn.stats.commands.items()
        if v != before.get(k, 0)
    }
    assert delta == {"sbatch": 2, "hpcml-plan": 1}, delta  # refused before anything, then done
    assert backend.last_upload.uploaded_bytes == 0  # the contents were still in the cache
    for run in (first, second, third):
        code = ssh_cmd(slurm, f"cat {run.run_dir}/.hpcml/code.json; cat {run.run_dir}/unique.txt")
        assert first.snapshot_id in code and (project / "unique.txt").read_text() in code
        assert (await wait_terminal(engine, run.id)).state == RunState.FINISHED
    await engine.close()


async def test_login_node_commands_and_the_secrets_file_on_failures(
    engine, tmp_path, slurm, monkeypatch  # noqa: F811
):
    project = make_project(tmp_path / "toy", slurm, Environment={
        "PreRunCommandOnLoginNode": ["echo 'prepared on login' > from_login.txt"],
        "PostRunCommandOnLoginNode": ["echo done > post.txt"]})
    good = await engine.runs.submit(SubmitRequest(project=str(project), backend_config="slurm.yaml",
                                                  entry_point="fail", parameters={"code": 0}))
    assert good.state == RunState.QUEUED, good
    assert ssh_cmd(slurm, f"cat {good.run_dir}/from_login.txt") == "prepared on login\n"

    (project / "bad.yaml").write_text(yaml.safe_dump(backend_config(slurm, Environment={
        "PreRunCommandOnLoginNode": ["echo fine", "echo 'login trouble' >&2; exit 3"]})))
    bad = await engine.runs.submit(SubmitRequest(project=str(project), backend_config="bad.yaml"))
    assert bad.state == RunState.FAILED and not bad.backend_job_id
    message = bad.state_history[-1].message
    assert (
        "pre-run command on the login node failed with exit code 3: echo 'login trouble'" in message
    )
    assert message.rstrip().endswith("fine\nlogin trouble"), message  # the tail of login.log

    # A token for direct tracking goes to a 0600 file, removed again when Slurm refuses the job.
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "canary-" + os.urandom(4).hex())
    (project / "direct.yaml").write_text((project / "slurm.yaml").read_text() +
                                         "Tracking: {Mode: direct, Uri: 'https://mlflow.invalid'}\n")
    refused = await engine.runs.submit(
        SubmitRequest(
            project=str(project), backend_config="direct.yaml", overrides=["Resources.Queue=nosuch"]
        )
    )
    assert (
        refused.state == RunState.FAILED
        and "Slurm rejected the job" in refused.state_history[-1].message
    )
    assert ssh_cmd(slurm, f"ls ~/hpcml/.secrets/ | grep -c {refused.id} || true").strip() == "0"
    held = await engine.runs.submit(
        SubmitRequest(
            project=str(project),
            backend_config="direct.yaml",
            entry_point="sleep",
            parameters={"seconds": 60},
        )
    )
    assert held.backend_job_id, held
    modes = ssh_cmd(
        slurm, f"stat -c '%a %n' ~/hpcml/.secrets ~/hpcml/.secrets/{held.id}.env"
    ).split()
    assert modes[0::2] == ["700", "600"], modes  # only the user can read the token
    await engine.runs.cancel(held.id)  # pending or running: the secrets file goes
    assert ssh_cmd(slurm, f"ls ~/hpcml/.secrets/ | grep -c {held.id} || true").strip() == "0"

    good = await wait_terminal(engine, good.id)
    assert good.state == RunState.FINISHED
    for _ in range(50):  # the post command runs detached once a poll saw the end
        if ssh_cmd(slurm, f"cat {good.run_dir}/post.txt 2>/dev/null || true") == "done\n":
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("the login-node post-run command did not run")
    await engine.close()


async def test_a_connection_lost_during_sbatch_does_not_submit_twice(engine, tmp_path, slurm):  # noqa: F811
    from jupyterlab_hpcml.core.errors import BackendUnavailable

    project = make_project(tmp_path / "toy", slurm)
    req = SubmitRequest(
        project=str(project),
        backend_config="slurm.yaml",
        entry_point="fail",
        parameters={"code": 0},
    )
    first = await engine.runs.submit(req)  # connected, code on the cluster
    backend = engine.registry.for_run(first)
    real_run = backend.conn.run

    async def lossy_run(command, **kw):
        res = await real_run(command, **kw)
        if kw.get("name") == "sbatch":  # the job reached Slurm, the answer did not reach us
            raise BackendUnavailable("lost the connection (simulated)")
        return res

    backend.conn.run = lossy_run
    run = await engine.runs.submit(req)
    backend.conn.run = real_run
    assert run.state == RunState.QUEUED and run.backend_job_id, run  # found via .hpcml/job_id
    listed = ssh_cmd(slurm, "squeue --me -t all -h -o '%i %k'").split("\n")
    assert [line.split()[0] for line in listed if line.endswith(f"hpcml:{run.id}")] == [
        run.backend_job_id
    ]
    await engine.close()


async def test_large_files_and_local_images_are_hard_linked_from_the_cache(
    engine, tmp_path, slurm, monkeypatch  # noqa: F811
):
    from jupyterlab_hpcml.backends.ssh import transfer

    monkeypatch.setattr(transfer, "LINK_THRESHOLD", 4096)
    image = tmp_path / "img.sif"
    image.write_bytes(os.urandom(5000))
    project = make_project(tmp_path / "toy", slurm)
    cfg = backend_config(slurm)
    cfg["Environment"] = {
        "Apptainer": {"Path": str(image), "Type": "local"}
    }  # (the job fails: no apptainer)
    (project / "slurm.yaml").write_text(yaml.safe_dump(cfg))
    (project / "weights").mkdir()
    (project / "weights" / "big.bin").write_bytes(os.urandom(6000))
    req = SubmitRequest(
        project=str(project),
        backend_config="slurm.yaml",
        entry_point="fail",
        parameters={"code": 0},
    )
    runs = [await engine.runs.submit(req) for _ in range(2)]
    backend = engine.registry.for_run(runs[0])
    assert backend.last_upload.commands == 0  # the second: tree and image known to be there
    for run in runs:
        assert run.backend_job_id, run
        out = ssh_cmd(
            slurm,
            f"cd {run.run_dir} && stat -c '%h %s %n' weights/big.bin .hpcml/apptainer/img.sif",
        )
        assert out.split("\n")[:2] == [
            "3 6000 weights/big.bin",
            "3 5000 .hpcml/apptainer/img.sif",
        ], out
        await engine.runs.cancel(run.id)
    chunk = await backend.read(runs[1].job_ref(), "weights/big.bin", 0, 10000)
    assert chunk.data == (project / "weights" / "big.bin").read_bytes()
    await engine.close()


async def test_array_job_elements_are_polled_one_by_one(engine, slurm):  # noqa: F811
    # Job ids of array elements look like 123_4 (squeue -r and sacct list them so).
    out = ssh_cmd(slurm, "sbatch --parsable --array=0-2 -p debug -o /dev/null "
                         "--wrap 'sleep 1; exit $SLURM_ARRAY_TASK_ID'")
    array = out.strip().split(";")[0]
    backend = SlurmBackend({"SSH": ssh_section(slurm)}, engine.data_dir)
    refs = [JobRef(f"r{i}", f"{array}_{i}", f"/nonexistent/{i}") for i in range(3)]
    try:
        deadline = time.monotonic() + 90
        while True:
            statuses = await backend.poll(refs)
            # sacct may lag a moment behind squeue: the exit codes come from it here (no run dirs)
            if all(s.state.terminal and s.exit_code is not None for s in statuses.values()):
                break
            assert time.monotonic() < deadline, statuses
            await asyncio.sleep(1.1)  # past the backend's backoff (at most 1 s in tests)
        assert set(statuses) == {r.job_id for r in refs}
        assert [(statuses[r.job_id].state, statuses[r.job_id].exit_code) for r in refs] == [
            (RunState.FINISHED, 0), (RunState.FAILED, 1), (RunState.FAILED, 2)]
    finally:
        await backend.close()


async def test_the_cluster_cache_drops_old_contents_no_kept_tree_uses(engine, tmp_path, slurm):  # noqa: F811
    project = make_project(tmp_path / "toy", slurm)
    (project / "unique.txt").write_text(os.urandom(8).hex())
    req = SubmitRequest(project=str(project), backend_config="slurm.yaml", entry_point="fail",
                        parameters={"code": 0})
    first = await engine.runs.submit(req)
    assert first.backend_job_id, first
    cache = "~/hpcml/.cache"
    kept_hash = ssh_cmd(slurm, f"sha256sum {first.run_dir}/unique.txt").split()[0]
    old_unused, new_unused = "ab" + "0" * 62, "ab" + "1" * 62
    ssh_cmd(slurm, " && ".join([
        f"mkdir -p {cache}/objects/ab {cache}/moded/ab",
        f"echo junk > {cache}/objects/ab/{old_unused}",
        f"echo junk > {cache}/moded/ab/{old_unused}-644",
        f"echo '[]' > {cache}/manifests/{old_unused}.json",
        f"echo fresh > {cache}/objects/ab/{new_unused}",
        # old, but the tree of the first submission uses it
        f"touch -d '30 days ago' {cache}/objects/ab/{old_unused} {cache}/moded/ab/{old_unused}-644 "
        f"{cache}/manifests/{old_unused}.json {cache}/objects/{kept_hash[:2]}/{kept_hash}",
        f"rm -f {cache}/gc.stamp",
    ]))
    (project / "unique.txt").write_text(
        os.urandom(8).hex()
    )  # a new tree: the helper prunes and collects
    second = await engine.runs.submit(req)
    assert second.backend_job_id, second
    left = ssh_cmd(slurm, f"cd {cache} && ls objects/ab moded/ab manifests gc.stamp "
                          f"objects/{kept_hash[:2]}/{kept_hash} 2>&1", check=False)
    assert old_unused not in left and new_unused in left, left
    assert "No such file" not in left, left  # the stamp is there and so is the old but used content
    for run in (first, second):
        assert (await wait_terminal(engine, run.id)).state == RunState.FINISHED
    await engine.close()
