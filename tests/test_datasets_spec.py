"""datasets.yaml: what a project declares, checked with every problem named (file, line,
key), before anything is staged or submitted."""
from __future__ import annotations

from pathlib import Path

import pytest

from jupyterlab_hpcml.core.errors import UserInputError
from jupyterlab_hpcml.engine import datasets


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "datasets.yaml").write_text(text)
    return tmp_path


def test_no_file_no_datasets(tmp_path: Path) -> None:
    assert datasets.load(tmp_path) == {}


def test_every_kind_of_source_and_default_paths(tmp_path: Path) -> None:
    specs = datasets.load(write(tmp_path, """
datasets:
  digits-csv:
    source: data/digits
  scratch:
    source: /scratch/shared/imagenet
    path: inputs/imagenet
  remote.tar:
    source: https://example.org/x.tar.gz
  bucket:
    source: s3://bucket/prefix
  versioned:
    source: {dvc: {repo: https://github.com/org/repo, path: data/raw, rev: v1}}
    description: raw data
"""))
    got = {n: (s.kind, s.path, s.env_name) for n, s in specs.items()}
    assert got == {
        "digits-csv": ("project", "data/digits", "HPCML_DATA_DIGITS_CSV"),
        "scratch": ("local", "inputs/imagenet", "HPCML_DATA_SCRATCH"),
        "remote.tar": ("https", "data/remote.tar", "HPCML_DATA_REMOTE_TAR"),
        "bucket": ("s3", "data/bucket", "HPCML_DATA_BUCKET"),
        "versioned": ("dvc", "data/versioned", "HPCML_DATA_VERSIONED"),
    }
    dvc = specs["versioned"].dvc
    assert dvc is not None and (dvc.repo, dvc.path, dvc.rev) == (
        "https://github.com/org/repo", "data/raw", "v1")


def test_every_problem_is_named_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(UserInputError) as err:
        datasets.load(write(tmp_path, """datasets:
  1bad:
    source: x
  nosource:
    path: y
  extra:
    source: x
    colour: blue
"""))
    got = {(p.line, p.message.split(":")[0]) for p in err.value.problems}
    assert (2, "dataset name '1bad'") in got
    assert any(line == 4 and "source" in msg for line, msg in got)
    assert any(line in (6, 8) and "unknown key" in msg for line, msg in got)
    assert all(p.file and p.file.endswith("datasets.yaml") for p in err.value.problems)


@pytest.mark.parametrize(("entry", "fragment"), [
    ("source: ../outside", "leaves the project"),
    ("source: http://example.org/x", "only https://"),
    ("source: /abs\n    path: /etc", "relative path inside"),
    ("source: /abs\n    path: a/../../b", "relative path inside"),
    ("source: /abs\n    path: .hpcml/x", "relative path inside"),
])
def test_paths_stay_inside(tmp_path: Path, entry: str, fragment: str) -> None:
    with pytest.raises(UserInputError, match=fragment):
        datasets.load(write(tmp_path, f"datasets:\n  d:\n    {entry}\n"))


def test_clashing_variables_and_overlapping_paths(tmp_path: Path) -> None:
    with pytest.raises(UserInputError) as err:
        datasets.load(write(tmp_path, """datasets:
  a-b: {source: /x}
  a_b: {source: /y}
  outer: {source: /z, path: data}
  inner: {source: /w, path: data/inner}
"""))
    messages = " | ".join(p.message for p in err.value.problems)
    assert "HPCML_DATA_A_B is also a-b's" in messages
    assert "overlaps" in messages


def test_not_yaml(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="not valid YAML"):
        datasets.load(write(tmp_path, "datasets: [\n"))
