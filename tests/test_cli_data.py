"""`hpcml data ls|stage|rm` and `--data`/`--no-data` as a user runs them: real `hpcml`
subprocesses over one data dir, the local backend's data store, real local runs."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import TOY_PROJECT
from .test_cli import hpcml


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "toy"
    shutil.copytree(TOY_PROJECT, dest)
    (dest / "data" / "set").mkdir(parents=True)
    for i in range(5):
        (dest / "data" / "set" / f"f{i}.txt").write_text(f"line {i}\n" * 100)
    (dest / "datasets.yaml").write_text(
        "datasets:\n  set:\n    source: data/set\n  other:\n    source: data/set/f0.txt\n"
        "    path: extra/f0.txt\n")
    return dest


def overview(project: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(hpcml("data", "ls", str(project), "--json").stdout)
    return {d["name"]: d for d in data["datasets"]}


def test_ls_stage_submit_rm(project: Path, hpcml_data: Path) -> None:
    before = overview(project)
    assert set(before) == {"set", "other"}
    (current,) = before["set"]["versions"]
    assert current["current"] and not current["staged"] and current["files"] == 5
    assert before["other"]["path"] == "extra/f0.txt"

    staged = hpcml("data", "stage", str(project), "set").stdout
    assert f"set: version {current['digest'][:12]}" in staged and "in 5 files" in staged
    again = hpcml("data", "stage", str(project), "set").stdout
    assert "sent 0 B in 0 files" in again

    run = json.loads(hpcml("submit", str(project), "--data", "set", "-P", "steps=1",
                           "--wait", "--json").stdout)
    assert run["state"] == "FINISHED"
    assert [(d["name"], d["digest"], d["sent_bytes"]) for d in run["datasets"]] == \
        [("set", current["digest"], 0)]
    listed = overview(project)["set"]["versions"][0]
    assert listed["staged"] and [r["id"] for r in listed["runs"]] == [run["id"]]
    text = hpcml("data", "ls", str(project)).stdout
    assert current["digest"][:12] in text and run["id"] in text

    bare = json.loads(hpcml("submit", str(project), "--no-data", "-P", "steps=1",
                            "--wait", "--json").stdout)
    assert bare["datasets"] == [] and bare["state"] == "FINISHED"

    # A sleeping run reads the version: it cannot be removed until that run has ended.
    sleeper = json.loads(hpcml("submit", str(project), "-e", "sleep", "-P", "seconds=60",
                               "--data", "set", "--json").stdout)
    refused = hpcml("data", "rm", "set", "--version", current["digest"][:10],
                    "--project", str(project), check=False)
    assert refused.returncode == 1 and sleeper["id"] in refused.stderr
    hpcml("cancel", sleeper["id"])
    deadline = time.monotonic() + 60
    while json.loads(hpcml("show", sleeper["id"], "--json").stdout)["state"] != "CANCELLED":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    out = hpcml("data", "rm", "set", "--version", current["digest"][:10],
                "--project", str(project)).stdout
    assert "removed set version" in out
    assert not overview(project)["set"]["versions"][0]["staged"]


@pytest.mark.parametrize("args, words", [
    (["submit", "--data", "nope"], "unknown dataset nope"),
    (["data", "stage", "{project}", "nope"], "unknown dataset nope"),
    (["data", "rm", "set", "--version", "abc", "--project", "{project}"],
     "no staged version of set"),
])
def test_bad_input(project: Path, hpcml_data: Path, args: list[str], words: str) -> None:
    argv = [a.replace("{project}", str(project)) for a in args]
    if argv[0] == "submit":
        argv.insert(1, str(project))
    proc = hpcml(*argv, check=False)
    assert proc.returncode == 2 and words in proc.stderr
    assert json.loads(hpcml("runs", "--json").stdout)["runs"] == []
