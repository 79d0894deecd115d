"""Dataset staging to a Slurm cluster over SSH, on the real test cluster (backend level).

A 200-file version goes once (its tree: hard links to the shared objects/, no copies), a
second staging sends nothing in one command, a changed file sends only that file; a
one-file version; the listing of data already on the cluster; the store's list and
removal; an interrupted large upload goes on from where it stopped and a partial upload
that does not match is sent again; a job sees its data at its path. Each test has its own
work directory (and so its own cache) on the cluster. ~1 min on the test cluster.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyterlab_hpcml.backends.ssh.data_store import CHUNK, LARGE_FILE
from jupyterlab_hpcml.backends.ssh.slurm import SlurmBackend
from jupyterlab_hpcml.backends.ssh.transfer import TransferError
from jupyterlab_hpcml.core.errors import NotFound, UserInputError
from jupyterlab_hpcml.core.job import DataStage, JobRef
from jupyterlab_hpcml.core.states import RunState

from .data_projects import write_version
from .slurm_cluster import slurm, ssh_cmd, ssh_section  # noqa: F401 - fixture
from .test_slurm_array import context, new_id, project, wait_all

BIG = 70 << 20  # a large file (chunked, resumable): above LARGE_FILE


@pytest.fixture
def work(slurm: dict[str, str]) -> Iterator[str]:  # noqa: F811
    """A work directory of its own on the cluster (its cache too), removed afterwards."""
    name = f"hpcml-data-test-{uuid.uuid4().hex[:10]}"
    yield name
    ssh_cmd(slurm, f"chmod -R u+w ~/{name} 2>/dev/null; rm -rf ~/{name}", check=False)


def backend_for(s: dict[str, str], work: str, tmp_path: Path) -> SlurmBackend:
    return SlurmBackend({"SSH": {**ssh_section(s), "WorkDir": f"~/{work}"}}, tmp_path / "data")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def remote_hashes(s: dict[str, str], location: str) -> dict[str, str]:
    out = ssh_cmd(s, f"cd {shlex.quote(location)} && find . -type f -exec sha256sum {{}} +")
    return {line.split("  ", 1)[1][2:]: line.split("  ", 1)[0] for line in out.splitlines()}


def ssh_put(s: dict[str, str], path: str, data: bytes) -> None:
    """Write a file on the cluster with the ssh client (independent of the code under test)."""
    q = shlex.quote
    command = f"mkdir -p {q(os.path.dirname(path))} && cat > {q(path)}"
    subprocess.run(["ssh", "-F", s["HPCML_TEST_SSH_CONFIG"], "-o", "BatchMode=yes",
                    "hpcml-test-cluster", command],
                   input=data, check=True, timeout=120, capture_output=True)


async def test_a_version_goes_once_and_a_changed_file_alone(slurm, work, tmp_path):  # noqa: F811
    backend = backend_for(slurm, work, tmp_path)
    try:
        files = {f"part{i % 5}/f{i:03}.txt": os.urandom(1000 + 37 * i) for i in range(200)}
        v1 = write_version(tmp_path / "v1", "digits", files)
        calls: list[tuple[int, int, int, int]] = []
        before = backend.conn.stats.upload_bytes
        [staged] = await backend.stage_data([v1], progress=lambda *a: calls.append(a))
        total = sum(len(d) for d in files.values())
        assert (staged.digest, staged.sent_files, staged.sent_bytes) == (v1.digest, 200, total)
        assert backend.conn.stats.upload_bytes - before == total
        assert calls[-1] == (total, total, 200, 200), calls[-3:]
        cache = await backend._cache_dir()
        assert staged.location == f"{cache}/datasets/{v1.digest}"
        assert remote_hashes(slurm, staged.location) == {r: sha(d) for r, d in files.items()}
        # The tree's files ARE the cache's objects (hard links), and nobody can write there.
        some = "part3/f008.txt"
        inodes = ssh_cmd(slurm, f"stat -c %i {staged.location}/{some} "
                                f"{cache}/objects/{sha(files[some])[:2]}/{sha(files[some])}")
        assert len(set(inodes.split())) == 1, inodes
        modes = ssh_cmd(slurm, f"stat -c %a {staged.location} {staged.location}/part3 "
                               f"{staged.location}/{some}").split()
        assert modes == ["555", "555", "444"], modes

        # Again, unchanged: nothing sent, one command.
        before_cmds = sum(backend.conn.stats.commands.values())
        before = backend.conn.stats.upload_bytes
        [again] = await backend.stage_data([v1])
        assert (again.sent_files, again.sent_bytes, again.location) == (0, 0, staged.location)
        assert backend.conn.stats.upload_bytes == before
        assert sum(backend.conn.stats.commands.values()) - before_cmds == 1

        # One file changed: only it goes; the old version is untouched.
        changed = {**files, "part1/f011.txt": b"a new line\n" * 50}
        v2 = write_version(tmp_path / "v2", "digits", changed)
        before = backend.conn.stats.upload_bytes
        [second] = await backend.stage_data([v2])
        assert (second.sent_files, second.sent_bytes) == (1, 550)
        assert backend.conn.stats.upload_bytes - before == 550
        assert ssh_cmd(slurm, f"cat {second.location}/part1/f011.txt") == "a new line\n" * 50
        assert remote_hashes(slurm, staged.location) == {r: sha(d) for r, d in files.items()}

        # The store lists both; removing one frees it (and only it).
        listed = {v.digest: v for v in await backend.staged_versions()}
        assert set(listed) == {v1.digest, v2.digest}
        assert (listed[v1.digest].files, listed[v1.digest].size) == (200, total)
        assert listed[v2.digest].location == second.location
        assert listed[v1.digest].staged_at > 0
        assert await backend.remove_staged(v1.digest) is True
        assert await backend.remove_staged(v1.digest) is False
        assert await backend.remove_staged("../../etc") is False
        assert [v.digest for v in await backend.staged_versions()] == [v2.digest]
        assert ssh_cmd(slurm, f"ls {cache}/datasets").split() == [v2.digest, f"{v2.digest}.json"]
        # Its contents stay cached: staging it back sends nothing.
        [back] = await backend.stage_data([v1])
        assert (back.sent_files, back.sent_bytes) == (0, 0)
    finally:
        await backend.close()


async def test_a_one_file_version_is_that_file(slurm, work, tmp_path):  # noqa: F811
    backend = backend_for(slurm, work, tmp_path)
    try:
        v = write_version(tmp_path / "src", "table", {"table.csv": b"a,b\n1,2\n"}, single=True)
        [staged] = await backend.stage_data([v])
        assert staged.location == f"{await backend._cache_dir()}/datasets/{v.digest}/table.csv"
        assert ssh_cmd(slurm, f"cat {staged.location}") == "a,b\n1,2\n"
        [listed] = await backend.staged_versions()
        assert (listed.location, listed.files, listed.size) == (staged.location, 1, 8)
    finally:
        await backend.close()


async def test_listing_of_data_already_on_the_cluster(slurm, work, tmp_path):  # noqa: F811
    backend = backend_for(slurm, work, tmp_path)
    try:
        home = ssh_cmd(slurm, "echo $HOME").strip()
        d = f"{home}/{work}/shared/set"
        ssh_cmd(slurm, f"mkdir -p {d}/sub && printf abc > {d}/a && printf de > {d}/sub/b "
                       f"&& ln -s /etc {d}/link")
        first = await backend.target_listing(d)
        # a, sub/b and the link itself (4 bytes: "/etc"), not /etc's files
        assert (first.path, first.files, first.size) == (d, 3, 3 + 2 + 4)
        assert (await backend.target_listing(d)).digest == first.digest
        ssh_cmd(slurm, f"touch -d '2001-01-01' {d}/sub/b")
        assert (await backend.target_listing(d)).digest != first.digest
        one = await backend.target_listing(f"{d}/a")
        assert (one.files, one.size) == (1, 3)
        with pytest.raises(NotFound):
            await backend.target_listing(f"{d}/nothing-here")
        with pytest.raises(UserInputError):
            await backend.target_listing("relative/path")
    finally:
        await backend.close()


async def test_an_interrupted_large_upload_goes_on_where_it_stopped(slurm, work, tmp_path):  # noqa: F811
    assert BIG >= LARGE_FILE
    backend = backend_for(slurm, work, tmp_path)
    try:
        resumed, bad = os.urandom(BIG), os.urandom(BIG)
        v = write_version(tmp_path / "src", "big", {"resumed.bin": resumed, "bad.bin": bad})
        cache = await backend._cache_dir()
        half = BIG // 2
        # An upload that stopped half way, and one whose partial does not match the file.
        ssh_put(slurm, f"{cache}/incoming/{sha(resumed)}.partial", resumed[:half])
        ssh_put(slurm, f"{cache}/incoming/{sha(bad)}.partial", os.urandom(half))
        calls: list[tuple[int, int, int, int]] = []
        before = backend.conn.stats.upload_bytes
        [staged] = await backend.stage_data([v], progress=lambda *a: calls.append(a))
        sent = (BIG - half) + BIG  # the rest of one, all of the other
        assert (staged.sent_bytes, staged.sent_files) == (sent, 2)
        assert backend.conn.stats.upload_bytes - before == sent
        assert calls[-1] == (sent, sent, 2, 2)
        assert len({c[0] for c in calls}) >= sent // CHUNK  # progress per chunk
        assert remote_hashes(slurm, staged.location) == {"resumed.bin": sha(resumed),
                                                         "bad.bin": sha(bad)}
        assert ssh_cmd(slurm, f"ls -A {cache}/incoming") == ""
    finally:
        await backend.close()


class Stop(Exception):
    pass


async def test_a_staging_stopped_half_way_resumes_from_its_own_partial(slurm, work, tmp_path):  # noqa: F811
    backend = backend_for(slurm, work, tmp_path)
    try:
        data = os.urandom(BIG)
        v = write_version(tmp_path / "src", "big", {"big.bin": data})
        cache = await backend._cache_dir()

        def stop(sent: int, *_: int) -> None:
            if sent >= 20 << 20:
                raise Stop  # e.g. the server stopped in the middle of the upload

        with pytest.raises(Stop):
            await backend.stage_data([v], progress=stop)
        done = int(ssh_cmd(slurm, f"stat -c %s {cache}/incoming/{sha(data)}.partial"))
        assert 20 << 20 <= done < BIG
        before = backend.conn.stats.upload_bytes
        [staged] = await backend.stage_data([v])
        assert (staged.sent_bytes, staged.sent_files) == (BIG - done, 1)
        assert backend.conn.stats.upload_bytes - before == BIG - done
        assert remote_hashes(slurm, staged.location) == {"big.bin": sha(data)}
    finally:
        await backend.close()


async def test_an_upload_that_arrives_corrupted_is_deleted(slurm, work, tmp_path):  # noqa: F811
    backend = backend_for(slurm, work, tmp_path)
    try:
        cache = await backend._cache_dir()
        h = sha(b"what should have arrived")
        ssh_put(slurm, f"{cache}/incoming/{h}.x", b"something else")
        answer = await backend.data_store._call(cache, {
            "op": "data_tree", "cache": cache, "incoming": [[f"{h}.x", h]], "digests": []})
        assert answer["corrupt"] == [h]
        assert ssh_cmd(slurm, f"ls -A {cache}/incoming {cache}/objects/{h[:2]} 2>&1",
                       check=False).count(h) == 0
    finally:
        await backend.close()


async def test_a_job_reads_its_data_at_its_path(slurm, work, tmp_path):  # noqa: F811
    backend = backend_for(slurm, work, tmp_path)
    try:
        folder = write_version(tmp_path / "d", "digits",
                               {"a.txt": b"alpha\n", "sub/b.txt": b"beta\n"})
        table = write_version(tmp_path / "t", "table", {"t.csv": b"x,y\n"}, single=True)
        staged = await backend.stage_data([folder, table])
        snap = project(tmp_path, {"main.py": "print('code')\n"})
        ctx = context(backend, slurm, new_id(),
                      command="cat data/digits/a.txt data/digits/sub/b.txt in/t.csv && "
                              "echo $(readlink in/t.csv)")
        ctx = ctx.replace(data=(DataStage("digits", "data/digits", staged[0].location),
                                DataStage("table", "in/t.csv", staged[1].location)))
        prepared = await backend.prepare(ctx, snap)
        job_id, _ = await backend.submit(prepared)
        ref = JobRef(ctx.run_id, job_id, prepared.run_dir)
        final = await wait_all(backend, [ref])
        assert final[job_id].state == RunState.FINISHED, final
        out = ssh_cmd(slurm, f"cat {prepared.run_dir}/.hpcml/stdout.log")
        assert out == f"alpha\nbeta\nx,y\n{staged[1].location}\n", out

        # A path leaving the run directory is refused before anything is submitted.
        bad = ctx.replace(run_id=new_id(), run_dir=None,
                          data=(DataStage("x", "../elsewhere", staged[0].location),))
        with pytest.raises(UserInputError):
            await backend.submit(await backend.prepare(bad, snap))
        # Data removed from the store: the submission fails saying so, and submits nothing.
        assert await backend.remove_staged(table.digest)
        gone = ctx.replace(run_id=new_id(), run_dir=None)
        prepared = await backend.prepare(gone, snap)
        with pytest.raises(TransferError, match="dataset table is no longer at"):
            await backend.submit(prepared)
        assert ssh_cmd(slurm, f"ls -A {prepared.run_dir}/.hpcml 2>&1", check=False) \
            .count("job_id") == 0
    finally:
        await backend.close()


async def test_the_daily_collection_keeps_staged_data(slurm, work, tmp_path):  # noqa: F811
    backend = backend_for(slurm, work, tmp_path)
    try:
        data = os.urandom(5000)
        v = write_version(tmp_path / "d", "digits", {"a.bin": data})
        [staged] = await backend.stage_data([v])
        cache = await backend._cache_dir()
        kept, unused = f"objects/{sha(data)[:2]}/{sha(data)}", f"objects/ab/ab{'0' * 62}"
        abandoned = f"incoming/{'cd' * 32}.partial"
        ssh_cmd(slurm, f"cd {cache} && mkdir -p objects/ab && echo junk > {unused} && "
                       f"echo half > {abandoned} && "
                       f"touch -d '30 days ago' {kept} {unused} {abandoned} && rm -f gc.stamp")
        # Code prepared (a new tree): the helper collects.
        ctx = context(backend, slurm, new_id())
        await backend.prepare(ctx, project(tmp_path, {"main.py": os.urandom(8).hex()}))
        there = ssh_cmd(slurm, f"cd {cache} && for f in {kept} {unused} {abandoned} gc.stamp; "
                               "do [ -e $f ] && echo yes || echo no; done")
        assert there.split() == ["yes", "no", "no", "yes"], there
        assert ssh_cmd(slurm, f"cat {staged.location}/a.bin | sha256sum").split()[0] == sha(data)
    finally:
        await backend.close()


async def test_files_above_the_servers_sftp_write_limit_go(slurm, work, tmp_path):  # noqa: F811
    """OpenSSH's sftp-server takes writes up to 255 KiB and quits on larger ones: uploads
    of data and of code use the blocks its limits@openssh.com allows."""
    backend = backend_for(slurm, work, tmp_path)
    try:
        blobs = {f"f{i}.bin": os.urandom(1 << 20) for i in range(3)}
        [staged] = await backend.stage_data([write_version(tmp_path / "d", "blobs", blobs)])
        assert remote_hashes(slurm, staged.location) == {r: sha(d) for r, d in blobs.items()}
        code = os.urandom(1 << 20).hex()  # a 2 MiB source file
        ctx = context(backend, slurm, new_id())
        await backend.prepare(ctx, project(tmp_path, {"main.py": code}))
        assert backend.last_upload is not None and backend.last_upload.uploaded_files == 1
    finally:
        await backend.close()


async def test_an_upload_the_cluster_refuses_is_a_clear_error(slurm, work, tmp_path):  # noqa: F811
    backend = backend_for(slurm, work, tmp_path)
    try:
        [first] = await backend.stage_data([write_version(tmp_path / "a", "a", {"x": b"x"})])
        cache = await backend._cache_dir()
        ssh_cmd(slurm, f"chmod 555 {cache}/incoming")  # e.g. a full quota
        with pytest.raises(TransferError, match="upload to .* failed: .*ermission"):
            await backend.stage_data([write_version(tmp_path / "b", "b", {"y": os.urandom(99)})])
        assert [v.digest for v in await backend.staged_versions()] == [first.digest]
    finally:
        await backend.close()
