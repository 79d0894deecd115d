"""DVC sources from a real git repository tracked by DVC, with a real DVC remote (a local
folder): fetched through DVC's API from the remote (the repository's own cache removed),
not fetched again at the same commit, a new commit's data fetched; a run of a project
declaring it reads it; errors named."""
from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyterlab_hpcml.core.errors import UserInputError
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.data_sources import dvc
from jupyterlab_hpcml.engine.datasets import DvcSource
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine


def run(cwd: Path, *args: str) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def dvc_cli(cwd: Path, *args: str) -> None:
    run(cwd, sys.executable, "-m", "dvc", *args)


def commit_data(repo: Path, files: dict[str, str]) -> str:
    """Write data/set, track it with DVC, commit, push to the remote; the commit."""
    data = repo / "data" / "set"
    shutil.rmtree(data, ignore_errors=True)
    for rel, text in files.items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_text(text)
    dvc_cli(repo, "add", "-q", "data/set")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "data")
    dvc_cli(repo, "push", "-q")
    shutil.rmtree(repo / ".dvc" / "cache", ignore_errors=True)  # only the remote has it now
    return run(repo, "git", "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    run(root, "git", "init", "-q")
    run(root, "git", "config", "user.email", "t@example.org")
    run(root, "git", "config", "user.name", "t")
    dvc_cli(root, "init", "-q")
    dvc_cli(root, "remote", "add", "-q", "-d", "store", str(tmp_path / "remote"))
    return root


def test_fetched_from_the_remote_once_per_commit(repo: Path, tmp_path: Path) -> None:
    first = commit_data(repo, {"a.csv": "1\n", "sub/b.csv": "2\n"})
    cache = tmp_path / "cache"
    got = dvc.fetch(DvcSource(str(repo), "data/set"), cache)
    assert (got / "sub" / "b.csv").read_text() == "2\n"
    stamp = got.stat().st_mtime_ns
    again = dvc.fetch(DvcSource(str(repo), "data/set", rev=first), cache)
    assert again == got and again.stat().st_mtime_ns == stamp  # same commit: not fetched

    time.sleep(0.01)
    second = commit_data(repo, {"a.csv": "changed\n"})
    newer = dvc.fetch(DvcSource(str(repo), "data/set"), cache)
    assert newer != got and sorted(p.name for p in newer.iterdir()) == ["a.csv"]
    old = dvc.fetch(DvcSource(str(repo), "data/set", rev=first), cache)
    assert (old / "a.csv").read_text() == "1\n" and second != first


def test_errors_are_named(repo: Path, tmp_path: Path) -> None:
    commit_data(repo, {"a.csv": "1\n"})
    with pytest.raises(UserInputError, match="no such path"):
        dvc.fetch(DvcSource(str(repo), "data/nothing"), tmp_path / "cache")
    with pytest.raises(UserInputError, match="cannot read it"):
        dvc.fetch(DvcSource(str(repo), "data/set", rev="no-such-rev"), tmp_path / "cache")
    shutil.rmtree(tmp_path / "remote")  # pushed data gone: nothing to fetch it from
    with pytest.raises(UserInputError, match="cannot fetch it"):
        dvc.fetch(DvcSource(str(repo), "data/set"), tmp_path / "cache2")


async def test_a_run_reads_a_dvc_dataset(repo: Path, tmp_path: Path, hpcml_data: Path) -> None:
    commit_data(repo, {"a.csv": "from dvc\n"})
    project = tmp_path / "project"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: dvctoy\nentry_points:\n  main:\n    command: python read.py\n")
    (project / "read.py").write_text(
        "import os\nprint(open(os.environ['HPCML_DATA_SET'] + '/a.csv').read().strip())\n")
    (project / "datasets.yaml").write_text(
        f"datasets:\n  set:\n    source: {{dvc: {{repo: '{repo}', path: data/set}}}}\n")
    engine = Engine(data_dir=hpcml_data, poll_interval=0.2)
    run_ = await engine.submit(SubmitRequest(project=str(project)))
    deadline = time.monotonic() + 60
    while not run_.state.terminal and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        run_ = await engine.current(run_.id)
    assert run_.state == RunState.FINISHED, run_.state_history
    assert (await engine.read_log_all(run_.id, "stdout")).data.strip() == "from dvc"
    (use,) = run_.datasets
    # The record says which repository (and revision, when given) the data came from.
    assert (use.name, use.source, use.path, use.files) == (
        "set", f"dvc {repo} data/set", "data/set", 1)
    await engine.close()
