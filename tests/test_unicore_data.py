"""Datasets on the UNICORE backend: versions in the HOME storage's object store (shared with
the code), only missing contents sent and each verified by its sha256, manifests, listing of
data already on the site, staged versions listed and freed; through the engine, a job that
reads its data at the declared path and through HPCML_DATA_<NAME>, the version's tree built
on the site by the first job. The real pyunicore against the loopback UNICORE/X
(tests/servers/unicore_server.py), jobs executed for real."""
from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from jupyterlab_hpcml.backends.unicore import STORE_DIR, UnicoreBackend
from jupyterlab_hpcml.backends.unicore_data import VERSIONS_DIR, data_lines
from jupyterlab_hpcml.core.data_listing import listing_digest
from jupyterlab_hpcml.core.errors import Conflict, NotFound, UserInputError
from jupyterlab_hpcml.core.job import DataStage, DataVersion
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.data import version_at
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine

from . import data_projects
from .data_projects import folder_digest
from .servers.unicore_server import UnicoreServer

USER = "demouser"
PASSWORD = "pw-data-41c9"
# The shared reader, and what is special here: a mapped dataset, and the data read-only.
READER = data_projects.READER + (
    'print("mapped", digest(os.environ["HPCML_DATA_REFERENCE"]))\n'
    'print("writable", bool(os.stat("data/digits/part-001.csv").st_mode & 0o222))\n')


@pytest.fixture
def unicore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    server = UnicoreServer(tmp_path / "unicore", users={USER: PASSWORD}).start()
    monkeypatch.setenv("MANTIK_UNICORE_USERNAME", USER)
    monkeypatch.setenv("MANTIK_UNICORE_PASSWORD", PASSWORD)
    monkeypatch.setattr(UnicoreBackend, "http_timeout", 5.0)
    monkeypatch.setattr(UnicoreBackend, "retry_backoff", (0.05, 0.1, 0.2))
    yield server
    server.stop()


@pytest.fixture
def backend(unicore: UnicoreServer, tmp_path: Path) -> UnicoreBackend:
    return UnicoreBackend({"UnicoreApiUrl": unicore.base_url}, tmp_path / "hpcml")


def home(server: UnicoreServer) -> Path:
    return server.state.home(USER)


def make_folder(root: Path, files: int = 200) -> Path:
    for i in range(files):
        folder = root / ("sub/deeper" if i % 10 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"part-{i:03d}.csv").write_text(f"{i}," + "7," * (i + 1) + "\n")
    (root / "same-as-part-000.csv").write_text((root / "sub/deeper/part-000.csv").read_text())
    return root


def version_of(root: Path, name: str = "digits") -> DataVersion:
    return version_at(name, root)[0]


def home_uploads(server: UnicoreServer) -> list[str]:
    return [path for sid, path in server.state.uploads if sid == "HOME"]


# ---------------------------------------------------------------- the backend's calls


async def test_only_missing_contents_are_sent_and_verified(
        backend: UnicoreBackend, unicore: UnicoreServer, tmp_path: Path) -> None:
    data = make_folder(tmp_path / "digits")
    version = version_of(data)
    assert len(version.files) == 201
    contents = {f.sha256: f.size for f in version.files}  # 200: one content twice
    reports: list[tuple[int, int, int, int]] = []

    (staged,) = await backend.stage_data([version], lambda *r: reports.append(r))
    assert (staged.sent_files, staged.sent_bytes) == (len(contents), sum(contents.values()))
    assert reports[0] == (0, sum(contents.values()), 0, len(contents))
    assert reports[-1] == (sum(contents.values()), sum(contents.values()),
                           len(contents), len(contents))
    assert staged.location == f"{home(unicore)}/{VERSIONS_DIR}/{version.digest}"
    store = home(unicore) / STORE_DIR
    for sha in contents:  # every object is the content its name says
        assert hashlib.sha256((store / sha).read_bytes()).hexdigest() == sha
    assert (home(unicore) / VERSIONS_DIR / f"{version.digest}.json").is_file()
    assert not list((store / ".incoming").iterdir())  # each upload renamed into place
    uploads = len(home_uploads(unicore))
    assert uploads == len(contents) + 2  # + the two manifests

    reports.clear()
    (again,) = await backend.stage_data([version], lambda *r: reports.append(r))
    assert (again.digest, again.location) == (staged.digest, staged.location)
    assert (again.sent_files, again.sent_bytes) == (0, 0)
    assert reports == [(0, 0, 0, 0)]
    assert len(home_uploads(unicore)) == uploads  # nothing sent, not even a manifest

    time.sleep(0.01)
    (data / "part-005.csv").write_text("changed\n")
    changed = version_of(data)
    (third,) = await backend.stage_data([changed])
    assert third.digest != version.digest
    assert (third.sent_files, third.sent_bytes) == (1, len("changed\n"))
    sent = home_uploads(unicore)[uploads:]
    assert len(sent) == 3 and sum(p.startswith(VERSIONS_DIR) for p in sent) == 2

    # A content of a held version removed from the store (no job built its tree yet): the
    # next staging sends it again rather than answer a version no job could lay out.
    lost = changed.files[7]
    (store / lost.sha256).unlink()
    (fourth,) = await backend.stage_data([changed])
    assert (fourth.sent_files, fourth.sent_bytes) == (1, lost.size)
    assert (store / lost.sha256).read_bytes() == Path(lost.local_path).read_bytes()


async def test_a_file_changed_since_it_was_hashed_is_not_stored(
        backend: UnicoreBackend, unicore: UnicoreServer, tmp_path: Path) -> None:
    source = tmp_path / "one.csv"
    source.write_text("1,2,3\n")
    version = version_of(source, "one")
    assert version.single_file
    source.write_text("4,5,6\n")  # same size, other content: what the version names is gone
    with pytest.raises(Conflict, match="changed since it was hashed"):
        await backend.stage_data([version])
    store = home(unicore) / STORE_DIR
    assert not (store / version.files[0].sha256).exists()
    assert not list((store / ".incoming").iterdir())
    assert not (home(unicore) / VERSIONS_DIR).exists()  # no manifest: the version is not held

    source.write_text("1,2,3\n")
    (staged,) = await backend.stage_data([version])  # one file: its location is the file
    assert staged.location.endswith(f"/{version.digest}/one.csv")
    assert staged.sent_files == 1


async def test_staging_survives_failed_uploads_and_a_lost_answer(
        backend: UnicoreBackend, unicore: UnicoreServer, tmp_path: Path) -> None:
    """Uploads answered 500 or dropped are sent again (each whole, checked again); a rename
    of a manifest done but its answer lost is looked at, not sent again."""
    data = make_folder(tmp_path / "digits", files=20)
    version = version_of(data)
    unicore.state.faults.add("500", path=r"/storages/HOME/files/\.hpcml/objects/", method="PUT",
                             times=3)
    unicore.state.faults.add("drop", path=r"/storages/HOME/files/\.hpcml/objects/", method="PUT",
                             times=2)
    unicore.state.lost_answers.add("drop", path=r"/storages/HOME/actions/rename$", method="POST",
                                   times=1)
    (staged,) = await backend.stage_data([version])
    assert staged.sent_files == len({f.sha256 for f in version.files})
    assert unicore.state.faults.fired["500"] == 3 and unicore.state.faults.fired["drop"] == 2
    assert unicore.state.lost_answers.fired["drop"] == 1
    store = home(unicore) / STORE_DIR
    for f in version.files:
        assert hashlib.sha256((store / f.sha256).read_bytes()).hexdigest() == f.sha256
    assert not list((store / ".incoming").iterdir())
    assert [v.digest for v in await backend.staged_versions()] == [version.digest]


async def test_listing_of_data_already_on_the_site(
        backend: UnicoreBackend, unicore: UnicoreServer) -> None:
    shared = make_folder(home(unicore) / "shared" / "digits", files=30)
    expected = [(p.relative_to(shared).as_posix(), p.stat().st_size, p.stat().st_mtime)
                for p in shared.rglob("*") if p.is_file()]
    listing = await backend.target_listing(str(shared))
    assert (listing.path, listing.files) == (str(shared), 31)
    assert listing.size == sum(e[1] for e in expected)
    assert listing.digest == listing_digest(expected)

    one = shared / "part-001.csv"
    single = await backend.target_listing(str(one))
    assert (single.files, single.size) == (1, one.stat().st_size)
    assert single.digest == listing_digest([("part-001.csv", one.stat().st_size,
                                             one.stat().st_mtime)])

    os.utime(one, (1_000_000_000, 1_000_000_000))  # touched: another version
    assert (await backend.target_listing(str(shared))).digest != listing.digest
    with pytest.raises(NotFound):
        await backend.target_listing(str(shared / "nothing-here"))
    with pytest.raises(UserInputError, match="in no storage"):
        await backend.target_listing("/definitely/not/a/storage")
    with pytest.raises(UserInputError, match="absolute"):
        await backend.target_listing("shared/digits")


async def test_staged_versions_listed_and_freed(
        backend: UnicoreBackend, unicore: UnicoreServer, tmp_path: Path) -> None:
    data = make_folder(tmp_path / "digits", files=20)
    first = version_of(data)
    await backend.stage_data([first])
    original = (data / "part-003.csv").read_text()
    (data / "part-003.csv").write_text("only in the second\n")
    second = version_of(data)
    await backend.stage_data([second])
    held = {v.digest: v for v in await backend.staged_versions()}
    assert set(held) == {first.digest, second.digest}
    assert (held[first.digest].files, held[first.digest].size) == (21, first.size)
    assert held[second.digest].location.endswith(second.digest)
    assert held[first.digest].staged_at > time.time() - 600

    store = home(unicore) / STORE_DIR
    only_first = {f.sha256 for f in first.files} - {f.sha256 for f in second.files}
    assert len(only_first) == 1
    assert not await backend.remove_staged("0" * 64)
    assert not await backend.remove_staged("../../etc")
    assert await backend.remove_staged(first.digest)
    assert [v.digest for v in await backend.staged_versions()] == [second.digest]
    assert not (store / only_first.pop()).exists()  # its own content went
    assert all((store / f.sha256).exists() for f in second.files)  # shared ones stayed
    assert not (home(unicore) / VERSIONS_DIR / f"{first.digest}.files0").exists()
    (data / "part-003.csv").write_text(original)
    (again,) = await backend.stage_data([first])  # freed: sent again, only what went
    assert again.sent_files == 1


# ---------------------------------------------------------------- through the engine


@pytest.fixture
def project(tmp_path: Path, unicore: UnicoreServer) -> Path:
    root = tmp_path / "proj"
    make_folder(root / "data" / "digits")
    (root / "MLproject").write_text(
        "name: datatoy\nentry_points:\n  main:\n    command: python read.py\n")
    (root / "read.py").write_text(READER)
    (root / "datasets.yaml").write_text(
        "datasets:\n  digits-csv:\n    source: data/digits\n"
        "  reference:\n    source: data/reference\n")
    reference = make_folder(home(unicore) / "shared" / "reference", files=12)
    (root / "unicore.yaml").write_text(
        f"UnicoreApiUrl: {unicore.base_url}\n"
        "Resources:\n  Queue: batch\n  Runtime: 10m\n  Account: proj1\n"
        f"Data:\n  reference: {reference}\n")
    return root


async def run_to_end(engine: Engine, project: Path) -> tuple[str, dict[str, str]]:
    run = await engine.submit(SubmitRequest(project=str(project), backend_config="unicore.yaml"))
    deadline = time.monotonic() + 90
    while not run.state.terminal and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        run = await engine.current(run.id)
    out = (await engine.read_log_all(run.id, "stdout")).data
    assert run.state == RunState.FINISHED, (run.state, run.state_history, out)
    return run.id, dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


async def test_engine_run_reads_its_data_at_the_path_and_through_the_variable(
        hpcml_data: Path, project: Path, unicore: UnicoreServer) -> None:
    engine = Engine(data_dir=hpcml_data, poll_interval=0.2)
    try:
        data = project / "data" / "digits"
        first_id, seen = await run_to_end(engine, project)
        assert seen["declared"] == seen["env"] == folder_digest(data)
        assert seen["mapped"] == folder_digest(home(unicore) / "shared" / "reference")
        assert seen["writable"] == "False"  # the store's contents are read-only to the job
        run = await engine.get(first_id)
        digits, reference = run.datasets
        assert (digits.files, digits.sent_files) == (201, 200)
        assert (reference.version, reference.files, reference.sent_bytes) == ("listing", 13, 0)
        # The version's tree was built on the site, of hard links to the objects.
        tree = home(unicore) / VERSIONS_DIR / digits.digest
        assert digits.location == str(tree)
        part = tree / "sub" / "deeper" / "part-010.csv"
        sha = hashlib.sha256(part.read_bytes()).hexdigest()
        assert part.stat().st_ino == (home(unicore) / STORE_DIR / sha).stat().st_ino
        job = unicore.state.jobs[run.backend_job_id or ""]
        assert (job.workdir / "data" / "digits").resolve() == tree
        snapshot = (engine.runs.manifest_dir / f"{run.snapshot_id}.json").read_text()
        assert "part-001.csv" not in snapshot  # the data reached the job through the store

        uploads = len(home_uploads(unicore))
        second_id, seen2 = await run_to_end(engine, project)
        second = await engine.get(second_id)
        assert (second.datasets[0].digest, second.datasets[0].sent_bytes) == (digits.digest, 0)
        assert seen2["env"] == seen["env"]
        assert len(home_uploads(unicore)) == uploads  # nothing new in HOME
    finally:
        await engine.close()


# ---------------------------------------------------------------- job.sh's data lines


def job_data_script(stages: list[DataStage]) -> str:
    fail = '__hpcml_fail() { echo "hpcml: $2" >&2; exit "$1"; }'
    return "\n".join([fail, *data_lines(stages), "echo laid-out"]) + "\n"


def fake_store(home_dir: Path, files: dict[str, bytes]) -> tuple[str, str]:
    """A version in a store laid out as stage_data leaves it: (digest, tree location)."""
    objects = home_dir / STORE_DIR
    objects.mkdir(parents=True)
    listing = b""
    for rel, content in files.items():
        sha = hashlib.sha256(content).hexdigest()
        (objects / sha).write_bytes(content)
        listing += sha.encode() + b"\0" + rel.encode() + b"\0"
    digest = hashlib.sha256(listing).hexdigest()
    versions = home_dir / VERSIONS_DIR
    versions.mkdir(parents=True)
    (versions / f"{digest}.files0").write_bytes(listing)
    return digest, str(versions / digest)


def run_bash(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=60)


def test_the_job_builds_the_tree_once_and_links_the_paths(tmp_path: Path) -> None:
    files = {f"d{i % 3}/f{i}.txt": f"content {i}\n".encode() for i in range(40)}
    digest, tree = fake_store(tmp_path / "home", files)
    mapped = tmp_path / "shared" / "ref"
    mapped.mkdir(parents=True)
    stages = [DataStage("digits", "data/digits", tree), DataStage("ref", "ref", str(mapped))]
    script = job_data_script(stages)
    runs = [tmp_path / f"run{i}" for i in range(4)]
    for run in runs:
        run.mkdir()
    # Four jobs at once: one tree, complete, no temporary folder left.
    procs = [subprocess.Popen(["bash", "-c", script], cwd=run, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for run in runs]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert (proc.returncode, out.strip()) == (0, "laid-out"), err
    versions = tmp_path / "home" / VERSIONS_DIR
    assert sorted(p.name for p in versions.iterdir()) == [digest, f"{digest}.files0"]
    for rel, content in files.items():
        placed = Path(tree) / rel
        assert placed.read_bytes() == content
        obj = tmp_path / "home" / STORE_DIR / hashlib.sha256(content).hexdigest()
        assert placed.stat().st_ino == obj.stat().st_ino  # a hard link, not a copy
        assert not placed.stat().st_mode & 0o222  # read-only: a job cannot spoil the store
    for run in runs:
        assert os.readlink(run / "data" / "digits") == tree
        assert (run / "ref").resolve() == mapped


def test_the_job_fails_clearly_when_its_data_cannot_be_laid_out(tmp_path: Path) -> None:
    digest, tree = fake_store(tmp_path / "home", {"a.txt": b"a\n", "b/c.txt": b"c\n"})
    (tmp_path / "home" / STORE_DIR / hashlib.sha256(b"c\n").hexdigest()).unlink()
    run = tmp_path / "run"
    run.mkdir()
    res = run_bash(job_data_script([DataStage("digits", "data/digits", tree)]), run)
    assert res.returncode == 1 and "incomplete in the data store" in res.stderr
    versions = tmp_path / "home" / VERSIONS_DIR
    assert sorted(p.name for p in versions.iterdir()) == [f"{digest}.files0"]  # nothing half

    gone = tmp_path / "nowhere"
    res = run_bash(job_data_script([DataStage("ref", "ref", str(gone))]), run)
    assert res.returncode == 1 and f"no longer at {gone}" in res.stderr
    (run / "code-folder").mkdir()
    res = run_bash(job_data_script([DataStage("ref", "code-folder", str(tmp_path))]), run)
    assert res.returncode == 1 and "already has a folder" in res.stderr
    for bad in ("../out", ".hpcml/data", "", "/abs"):
        with pytest.raises(UserInputError):
            data_lines([DataStage("x", bad, str(tmp_path))])
