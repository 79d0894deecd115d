"""A dataset version names its content: the same files anywhere give the same digest, one
changed byte gives another; links out of the source are never followed."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from jupyterlab_hpcml.core.errors import UserInputError
from jupyterlab_hpcml.engine.dataset_versions import local_version


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    for i in range(20):
        (folder / ("sub" if i % 2 else "") / f"f{i}.csv").write_text(f"{i},{i * i}\n")
    (folder / ".gitignore").write_text("*.csv\n")  # git's rules do not apply to data
    return folder


def test_content_not_place_or_time(data: Path, tmp_path: Path) -> None:
    first = local_version(data)
    assert first.files == 21 and first.size == sum(
        p.stat().st_size for p in data.rglob("*") if p.is_file())
    copy = tmp_path / "elsewhere"
    shutil.copytree(data, copy)
    os.utime(copy / "f0.csv", (0, 0))
    assert local_version(copy).digest == first.digest


def test_one_changed_file_changes_the_digest(data: Path) -> None:
    before = local_version(data)
    (data / "sub" / "f1.csv").write_text("1,2\n")
    after = local_version(data)
    assert after.digest != before.digest
    changed = {a.relpath for a, b in zip(before.listing, after.listing, strict=True) if a != b}
    assert changed == {"sub/f1.csv"}


def test_links_out_of_the_source_are_skipped(data: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not data")
    (data / "out.txt").symlink_to(secret)
    (data / "in.csv").symlink_to(data / "f0.csv")
    version = local_version(data)
    names = {f.relpath for f in version.listing}
    assert "out.txt" not in names and "in.csv" in names
    assert any("out.txt" in note for note in version.notes)


def test_a_single_file_and_a_missing_source(tmp_path: Path) -> None:
    one = tmp_path / "x.bin"
    one.write_bytes(b"\0" * 10)
    version = local_version(one)
    assert (version.files, version.size, version.listing[0].relpath) == (1, 10, "x.bin")
    with pytest.raises(UserInputError, match="no such file or folder"):
        local_version(tmp_path / "missing")
