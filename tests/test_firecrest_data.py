"""Dataset staging on the FirecREST backend: the real pyfirecrest client against the loopback
FirecREST test server (tests/servers/firecrest_server.py; its cluster's paths are this
machine's paths, its ``extract`` unpacks with tar as the real server does).

A 200-file version goes once (its tree: hard links to the verified objects), a second
staging sends nothing, a changed file goes alone; a content that does not match its hash
is refused; large files go as themselves through FirecREST's staged transfer; data
already on the cluster is listed in place; the store's versions are listed and removed;
through the engine, a job reads its data at its declared path and via HPCML_DATA_<NAME>."""
from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

import pytest
import yaml

from jupyterlab_hpcml.backends import firecrest_data
from jupyterlab_hpcml.backends.firecrest import FirecrestBackend
from jupyterlab_hpcml.backends.remote_calls import RemoteError
from jupyterlab_hpcml.core.errors import NotFound, UserInputError
from jupyterlab_hpcml.core.job import DataStage
from jupyterlab_hpcml.core.snapshots import Snapshot
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine import job_context
from jupyterlab_hpcml.engine.models import RunRecord
from jupyterlab_hpcml.engine.requests import SweepRequest
from jupyterlab_hpcml.engine.service import Engine

from .data_projects import add_dataset, folder_digest, parse_output, write_version
from .firecrest_fixtures import config, request, serve_firecrest
from .servers.firecrest_server import USER, FirecrestServer

SECRET = "canary-fc-data-6a2e41-secret"
UPLOADS = ("POST /filesystem/{system}/ops/upload", "POST /filesystem/{system}/transfer/upload")


@pytest.fixture
def firecrest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    yield from serve_firecrest(tmp_path, monkeypatch, SECRET)


@pytest.fixture
def backend(firecrest: FirecrestServer, tmp_path: Path) -> FirecrestBackend:
    """A backend on its own (its HTTP client goes with the test's event loop)."""
    b = FirecrestBackend(config(firecrest), tmp_path / "data")
    b.retry_backoff = (0.05,)
    return b


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree(location: str) -> dict[str, bytes]:
    root = Path(location)
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def uploads(server: FirecrestServer) -> int:
    return sum(server.state.requests[r] for r in UPLOADS)


def data_root(server: FirecrestServer) -> Path:
    return server.state.scratch / USER / "hpcml" / ".data"


async def test_a_version_goes_once_and_a_changed_file_alone(backend, firecrest, tmp_path):
    files = {f"part{i % 5}/f{i:03}.csv": os.urandom(500 + 13 * i) for i in range(200)}
    v1 = write_version(tmp_path / "v1", "digits", files)
    calls: list[tuple[int, int, int, int]] = []
    [staged] = await backend.stage_data([v1], progress=lambda *a: calls.append(a))
    assert (staged.sent_files, staged.sent_bytes) == (200, v1.size)
    assert calls[0] == (0, v1.size, 0, 200) and calls[-1] == (v1.size, v1.size, 200, 200)
    assert tree(staged.location) == files  # every file, the right content, at its path
    # The tree is hard links to the store's objects, which were checked by sha256 there.
    some = Path(staged.location) / "part3/f003.csv"
    obj = data_root(firecrest) / "objects" / sha(files["part3/f003.csv"])[:2] / \
        sha(files["part3/f003.csv"])
    assert os.path.samefile(some, obj)
    assert firecrest.state.requests["GET /filesystem/{system}/ops/checksum"] == 200
    assert not list((data_root(firecrest) / "incoming").iterdir())

    before, calls = uploads(firecrest), []
    [again] = await backend.stage_data([v1], progress=lambda *a: calls.append(a))
    assert (again.sent_files, again.sent_bytes) == (0, 0)
    assert again.location == staged.location and uploads(firecrest) == before
    assert calls == [(0, 0, 0, 0)]

    changed = dict(files, **{"part1/f001.csv": b"changed\n"})
    v2 = write_version(tmp_path / "v2", "digits", changed)
    [second] = await backend.stage_data([v2])
    assert (second.sent_files, second.sent_bytes) == (1, len(b"changed\n"))
    assert second.location != staged.location and tree(second.location) == changed
    assert tree(staged.location) == files  # the first version is untouched


async def test_a_one_file_version_is_that_file(backend, tmp_path):
    v = write_version(tmp_path / "one", "table", {"table.parquet": b"PAR1" * 1000}, single=True)
    [staged] = await backend.stage_data([v])
    assert Path(staged.location).read_bytes() == b"PAR1" * 1000
    [held] = await backend.staged_versions()
    assert (held.digest, held.location, held.size, held.files) == (v.digest, staged.location,
                                                                   4000, 1)


async def test_a_content_that_does_not_match_its_hash_is_refused(backend, firecrest, tmp_path):
    v = write_version(tmp_path / "bad", "bad", {"a.csv": b"a", "b.csv": b"b"})
    Path(v.files[1].local_path).write_bytes(b"B")  # changed since it was hashed
    with pytest.raises(RemoteError, match=r"b\.csv arrived corrupted 3 times"):
        await backend.stage_data([v])
    assert await backend.staged_versions() == []
    # a.csv arrived intact: kept (linked into the store), not sent again next time.
    Path(v.files[1].local_path).write_bytes(b"b")
    [staged] = await backend.stage_data([v])
    assert (staged.sent_files, staged.sent_bytes) == (1, 1)
    assert tree(staged.location) == {"a.csv": b"a", "b.csv": b"b"}
    assert not list((data_root(firecrest) / "incoming").iterdir())


async def test_large_files_go_as_themselves_in_several_transfers(
        backend, firecrest, tmp_path, monkeypatch):
    monkeypatch.setattr(firecrest_data, "LARGE_FILE", 2 << 20)
    monkeypatch.setattr(firecrest_data, "BATCH_BYTES", 64 << 10)
    files = {"big.bin": os.urandom(3 << 20), **{f"s/{i}.txt": os.urandom(20 << 10)
                                                for i in range(10)}}
    v = write_version(tmp_path / "large", "large", files)
    calls: list[tuple[int, int, int, int]] = []
    [staged] = await backend.stage_data([v], progress=lambda *a: calls.append(a))
    assert tree(staged.location) == files
    # The big file through FirecREST's staged (S3 multipart) transfer, the small ones in
    # archives of at most 64 KiB (several of them, progress after each).
    assert firecrest.state.requests["POST /filesystem/{system}/transfer/upload"] >= 1
    assert len({c[0] for c in calls}) >= 5 and calls[-1] == (v.size, v.size, 11, 11)


async def test_contents_the_code_store_holds_are_linked_not_sent(backend, firecrest, tmp_path):
    data = b"shared content\n" * 100
    code_objects = firecrest.state.scratch / USER / "hpcml" / ".objects"
    code_objects.mkdir(parents=True)
    (code_objects / sha(data)).write_bytes(data)
    v = write_version(tmp_path / "c", "c", {"x.txt": data, "y.txt": b"own"})
    [staged] = await backend.stage_data([v])
    assert (staged.sent_files, staged.sent_bytes) == (1, 3)
    assert tree(staged.location) == {"x.txt": data, "y.txt": b"own"}


async def test_listing_of_data_already_on_the_cluster(backend, firecrest):
    shared = firecrest.state.scratch / "shared" / "imagenet"
    for i in range(30):
        (shared / f"c{i % 3}").mkdir(parents=True, exist_ok=True)
        (shared / f"c{i % 3}" / f"{i}.jpg").write_bytes(b"x" * i)
    listing = await backend.target_listing(str(shared))
    assert (listing.path, listing.files, listing.size) == (str(shared), 30, sum(range(30)))
    assert (await backend.target_listing(f"{shared}/")).digest == listing.digest
    (shared / "c0" / "0.jpg").write_bytes(b"grown")  # path, size and mtime make the version
    assert (await backend.target_listing(str(shared))).digest != listing.digest
    one = await backend.target_listing(str(shared / "c1" / "1.jpg"))
    assert (one.files, one.size) == (1, 1)
    with pytest.raises(NotFound, match="no such file or folder"):
        await backend.target_listing(str(shared / "nope"))
    with pytest.raises(UserInputError):
        await backend.target_listing("relative/path")


async def test_versions_listed_and_removed_with_their_own_contents(backend, firecrest, tmp_path):
    common = {f"f{i}.txt": os.urandom(100) for i in range(5)}
    v1 = write_version(tmp_path / "v1", "d", {**common, "only1.txt": b"one"})
    v2 = write_version(tmp_path / "v2", "d", {**common, "only2.txt": b"two"})
    s1, s2 = await backend.stage_data([v1, v2])
    held = {v.digest: v for v in await backend.staged_versions()}
    assert set(held) == {v1.digest, v2.digest}
    assert (held[v1.digest].size, held[v1.digest].files) == (v1.size, 6)
    assert held[v1.digest].location == s1.location
    assert abs(held[v1.digest].staged_at - time.time()) < 24 * 3600

    assert await backend.remove_staged(v1.digest) is True
    assert [v.digest for v in await backend.staged_versions()] == [v2.digest]
    assert not os.path.lexists(s1.location)
    assert tree(s2.location) == {**common, "only2.txt": b"two"}
    objects = {p.name for p in (data_root(firecrest) / "objects").rglob("*") if p.is_file()}
    assert sha(b"one") not in objects and sha(b"two") in objects
    assert {sha(d) for d in common.values()} <= objects
    assert await backend.remove_staged(v1.digest) is False
    assert await backend.remove_staged("../etc") is False


@pytest.mark.parametrize("path", ["../elsewhere", "/abs/path", ".hpcml/data", "."])
async def test_a_dataset_path_outside_the_run_directory_is_refused(backend, tmp_path, path):
    run = RunRecord(id="r1", name="n", project_path="/p", project_name="p", entry_point="main",
                    command="true", backend="firecrest")
    ctx = job_context.context(run, backend.config).replace(
        data=(DataStage("d", path, "/somewhere"),))
    with pytest.raises(UserInputError, match="the path of dataset 'd'"):
        await backend.prepare(ctx, Snapshot(id="empty", files=[], object_dir=tmp_path))


# ---------------------------------------------------------------- through the engine


@pytest.fixture
def project(tmp_path: Path, firecrest: FirecrestServer) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "MLproject").write_text(
        "name: datatoy\nentry_points:\n  main:\n    command: python read.py\n")
    add_dataset(root)
    (root / "firecrest.yaml").write_text(yaml.safe_dump(config(firecrest)))
    return root


async def run_to_end(engine: Engine, project: Path) -> tuple[str, dict[str, str]]:
    run = await engine.submit(request(project))
    deadline = time.monotonic() + 90
    while not run.state.terminal and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        run = await engine.current(run.id)
    stdout = (await engine.read_log_all(run.id, "stdout")).data
    assert run.state == RunState.FINISHED, (run.state_history, stdout)
    return run.id, parse_output(stdout)


async def test_a_job_reads_its_data_at_its_path_and_through_the_variable(
        hpcml_data, project, firecrest):
    data = project / "data" / "digits"
    engine = Engine(data_dir=hpcml_data, poll_interval=0.2)
    try:
        first_id, seen = await run_to_end(engine, project)
        assert seen["declared"] == seen["env"] == folder_digest(data)
        assert seen["abs"] == "True"
        first = await engine.get(first_id)
        assert [s.state for s in first.state_history][:2] == [RunState.STAGING,
                                                              RunState.SUBMITTING]
        (use,) = first.datasets
        total = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
        assert (use.files, use.size, use.sent_files, use.sent_bytes) == (200, total, 200, total)
        assert (use.location or "").startswith(str(data_root(firecrest)))

        second_id, seen2 = await run_to_end(engine, project)
        (use2,) = (await engine.get(second_id)).datasets
        assert (use2.digest, use2.sent_files, use2.sent_bytes) == (use.digest, 0, 0)
        assert seen2["declared"] == seen["declared"]

        (data / "part-005.csv").write_text("changed\n")
        third_id, seen3 = await run_to_end(engine, project)
        (use3,) = (await engine.get(third_id)).datasets
        assert use3.digest != use.digest
        assert (use3.sent_files, use3.sent_bytes) == (1, len("changed\n"))
        assert seen3["declared"] == seen3["env"] == folder_digest(data) != seen["declared"]
    finally:
        await engine.close()


async def test_a_mapped_path_is_used_in_place(hpcml_data, project, firecrest):
    shared = firecrest.state.scratch / "shared" / "digits"
    shared.parent.mkdir(parents=True)
    add_dataset(shared.parent.parent / "copy")  # the same files, already on the cluster
    (shared.parent.parent / "copy" / "data" / "digits").rename(shared)
    cfg = {**config(firecrest), "Data": {"digits-csv": str(shared)}}
    (project / "firecrest.yaml").write_text(yaml.safe_dump(cfg))
    engine = Engine(data_dir=hpcml_data, poll_interval=0.2)
    try:
        run_id, seen = await run_to_end(engine, project)
        (use,) = (await engine.get(run_id)).datasets
        assert (use.version, use.location, use.files, use.sent_bytes) == (
            "listing", str(shared), 200, 0)
        assert seen["declared"] == seen["env"] == folder_digest(shared)
    finally:
        await engine.close()
    assert not data_root(firecrest).exists()  # nothing was staged


async def test_a_sweeps_tasks_read_the_data_staged_once(hpcml_data, project, firecrest):
    (project / "MLproject").write_text(
        "name: datatoy\nentry_points:\n  main:\n    parameters:\n      k: {type: float}\n"
        "    command: python read.py {k}\n")
    data = project / "data" / "digits"
    engine = Engine(data_dir=hpcml_data, poll_interval=0.2)
    try:
        sweep = await engine.submit_sweep(SweepRequest(
            project=str(project), backend_config="firecrest.yaml", parameters={"k": "1,2,3"}))
        deadline = time.monotonic() + 90
        while not all(c.state.terminal for c in sweep.children):
            assert time.monotonic() < deadline, [c.state for c in sweep.children]
            await asyncio.sleep(0.3)
            sweep = await engine.current_sweep(sweep.id)
        assert len(sweep.children) == 3
        assert len({c.backend_job_id.partition("_")[0] for c in sweep.children
                    if c.backend_job_id}) == 1  # one array job
        for child in sweep.children:
            out = parse_output((await engine.read_log_all(child.id, "stdout")).data)
            assert child.state == RunState.FINISHED, child.state_history
            assert out["declared"] == out["env"] == folder_digest(data)
    finally:
        await engine.close()
    assert firecrest.state.requests["GET /filesystem/{system}/ops/checksum"] == 200  # once
