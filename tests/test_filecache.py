"""Parsed MLproject and backend-config files are reused only while the files are unchanged."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from jupyterlab_hpcml.engine import filecache
from jupyterlab_hpcml.engine.config import load_backend_config
from jupyterlab_hpcml.engine.filecache import RACY_SECONDS, StatCache
from jupyterlab_hpcml.engine.project import load_project


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled at once (they would after RACY_SECONDS)."""
    monkeypatch.setattr(filecache, "RACY_SECONDS", 0.0)


def counting_loader(path: Path):
    calls: list[str] = []

    def load() -> str:
        calls.append(path.read_text())
        return calls[-1]

    return calls, load


def test_reused_until_the_file_changes_even_with_same_size_and_mtime(
    tmp_path: Path, settled: None
) -> None:
    f = tmp_path / "a.yaml"
    f.write_text("Nodes: 2\n")
    cache: StatCache[str] = StatCache()
    calls, load = counting_loader(f)
    assert cache.get([f], load) == "Nodes: 2\n"
    assert cache.get([f], load) == "Nodes: 2\n"
    assert len(calls) == 1
    mtime = f.stat().st_mtime
    f.write_text("Nodes: 4\n")  # same size; mtime put back: the ctime still tells
    os.utime(f, (mtime, mtime))
    assert cache.get([f], load) == "Nodes: 4\n"
    assert len(calls) == 2


def test_a_file_written_just_now_is_not_cached(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text("x: 1\n")
    assert time.time() - f.stat().st_mtime < RACY_SECONDS
    cache: StatCache[str] = StatCache()
    calls, load = counting_loader(f)
    cache.get([f], load)
    cache.get([f], load)
    assert len(calls) == 2


def test_a_missing_file_appearing_invalidates(tmp_path: Path, settled: None) -> None:
    f, g = tmp_path / "a", tmp_path / "b"
    f.write_text("a")
    cache: StatCache[str] = StatCache()
    calls, load = counting_loader(f)
    cache.get([f, g], load)
    cache.get([f, g], load)
    g.write_text("now here")
    cache.get([f, g], load)
    assert len(calls) == 2


def test_loaded_configs_and_projects_are_private_copies(tmp_path: Path, settled: None) -> None:
    cfg_file = tmp_path / "local.yaml"
    cfg_file.write_text("Resources:\n  Runtime: 1h\nEnvironment:\n  Variables: {A: '1'}\n")
    (tmp_path / "MLproject").write_text(
        "name: p\nentry_points:\n  main:\n"
        "    parameters: {n: {type: int, default: 1}}\n    command: echo {n}\n"
    )
    first = load_backend_config(cfg_file)
    first.data["Environment"]["Variables"]["A"] = "changed"
    first.resources["Runtime"] = 1
    again = load_backend_config(cfg_file)
    assert again.data["Environment"]["Variables"]["A"] == "1" and again.resources["Runtime"] == 3600

    spec = load_project(tmp_path)
    spec.entry_points["main"].parameters.clear()
    assert [p.name for p in load_project(tmp_path).entry_points["main"].parameters] == ["n"]
    # A new environment file in the folder changes the project's note although MLproject did not
    # change.
    (tmp_path / "python_env.yaml").write_text("python: '3.11'\n")
    assert "python_env.yaml" in (load_project(tmp_path).env_note or "")
