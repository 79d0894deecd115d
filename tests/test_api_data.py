"""Datasets through the REST API on the real server: a project's datasets with the current
version, staging ahead of a run (started, then followed until done), a run recording the
version it read and listed under it, freeing a version (refused while an active run reads
it); bad input is a 4xx naming what is wrong, every route wants the token."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from jupyterlab_hpcml.engine import data_service

from .conftest import TERMINAL, submit_run, wait_for_state

FILES = 12


@pytest.fixture
def data_project(toy_project: Path) -> Path:
    """The toy project with one dataset folder declared in its datasets.yaml."""
    folder = toy_project / "data" / "points"
    folder.mkdir(parents=True)
    for i in range(FILES):
        (folder / f"part-{i:02d}.csv").write_text(f"{i}," * (i + 1) + "\n")
    (toy_project / "datasets.yaml").write_text(
        "datasets:\n  points:\n    source: data/points\n    description: a few rows\n")
    return toy_project


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir())


async def overview(api: Any) -> dict[str, Any]:
    status, view = await api("GET", "data", project="toy")
    assert status == 200, view
    return view


async def stage_to_end(api: Any, body: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    status, staging = await api("POST", "data/stage", body)
    assert status == 202, staging
    assert staging["state"] in ("running", "done") and staging["id"], staging
    deadline = time.monotonic() + timeout
    while staging["state"] == "running":
        assert time.monotonic() < deadline, staging
        await asyncio.sleep(0.1)
        status, staging = await api("GET", f"data/stage/{staging['id']}")
        assert status == 200, staging
    return staging


async def test_overview_stage_run_and_free(api, data_project, hpcml_data):
    view = await overview(api)
    assert (view["project_relpath"], view["backend"], view["can_stage"]) == ("toy", "local", True)
    [ds] = view["datasets"]
    assert (ds["name"], ds["kind"], ds["source"], ds["path"], ds["env"], ds["description"]) == (
        "points", "project", "data/points", "data/points", "HPCML_DATA_POINTS", "a few rows")
    [current] = ds["versions"]
    assert len(current["digest"]) == 64 and current["current"] is True
    assert (current["size"], current["files"]) == (
        folder_size(data_project / "data" / "points"), FILES)
    assert (current["staged"], current["location"], current["runs"]) == (False, None, [])

    staging = await stage_to_end(api, {"project": "toy"})
    assert (staging["state"], staging["error"]) == ("done", None), staging
    [use] = staging["datasets"]
    assert (use["name"], use["digest"], use["files"], use["sent_files"]) == (
        "points", current["digest"], FILES, FILES)
    assert staging["progress"]["sent_bytes"] == staging["progress"]["total_bytes"] > 0
    [staged] = (await overview(api))["datasets"][0]["versions"]
    assert (staged["digest"], staged["current"], staged["staged"]) == (
        current["digest"], True, True)
    assert staged["location"] and Path(staged["location"]).is_dir(), staged
    assert staged["staged_at"] > 0

    # Staged again unchanged: nothing sent.
    again = await stage_to_end(api, {"project": "toy", "names": ["points"]})
    assert again["state"] == "done" and again["datasets"][0]["sent_bytes"] == 0, again

    # A run afterwards records the version and is listed under it.
    run = await submit_run(api, entry_point="fail", parameters={"code": 0})
    run = await wait_for_state(api, run["id"], TERMINAL)
    assert run["state"] == "FINISHED", run
    [read] = run["datasets"]
    assert (read["name"], read["digest"], read["size"], read["files"], read["sent_bytes"]) == (
        "points", current["digest"], current["size"], FILES, 0)
    [version] = (await overview(api))["datasets"][0]["versions"]
    assert [(r["id"], r["state"]) for r in version["runs"]] == [(run["id"], "FINISHED")]

    # Freed while a sleeping run reads it: refused; after it is cancelled: done.
    sleeper = await submit_run(api, entry_point="sleep", parameters={"seconds": 600})
    await wait_for_state(api, sleeper["id"], {"RUNNING"})
    status, err = await api("DELETE", f"data/versions/{current['digest']}", project="toy")
    assert status == 409 and sleeper["id"] in err["message"], err
    status, _ = await api("POST", f"runs/{sleeper['id']}/cancel")
    assert status == 200
    await wait_for_state(api, sleeper["id"], TERMINAL)
    status, freed = await api("DELETE", f"data/versions/{current['digest']}", project="toy")
    assert (status, freed) == (200, {"digest": current["digest"], "deleted": True})
    [version] = (await overview(api))["datasets"][0]["versions"]
    assert (version["staged"], version["location"]) == (False, None)
    status, err = await api("DELETE", f"data/versions/{current['digest']}", project="toy")
    assert status == 404 and "not staged" in err["message"], err


async def test_stagings_at_once_are_capped(api, data_project, hpcml_data, monkeypatch):
    # The cap counts the stagings still running; none may start past it, nothing starts.
    monkeypatch.setattr(data_service, "MAX_RUNNING_STAGINGS", 0)
    status, err = await api("POST", "data/stage", {"project": "toy", "names": ["points"]})
    assert status == 409 and "at most 0 at once" in err["message"], err
    assert [v["staged"] for v in (await overview(api))["datasets"][0]["versions"]] == [False]


async def test_a_failed_staging_says_why(api, data_project, hpcml_data):
    # Declared but gone by the time it is staged: the staging fails with the reason.
    (data_project / "datasets.yaml").write_text(
        "datasets:\n  points:\n    source: data/points\n  gone:\n    source: data/gone\n")
    status, err = await api("POST", "data/stage", {"project": "toy"})
    assert status == 400 and "data/gone" in err["message"], err
    status, staging = await api("POST", "data/stage", {"project": "toy", "names": ["points"]})
    assert status == 202, staging


async def test_bad_requests_are_4xx(api, data_project, hpcml_data):
    for body, words in [
        ({}, "project"),
        ({"project": 5}, "project"),
        ({"project": "toy", "names": "points"}, "names"),
        ({"project": "toy", "names": ["points"], "extra": 1}, "extra"),
        ({"project": "toy", "names": ["nope"]}, "nope"),
        ({"project": "toy", "backend_config": "missing.yaml"}, "missing.yaml"),
        ({"project": "../outside"}, "outside the server's root"),
    ]:
        status, err = await api("POST", "data/stage", body)
        assert status == 400, (body, err)
        assert words in err["message"] + str(err.get("problems")), (body, err)
    for params, words in [({"project": "../outside"}, "outside the server's root"),
                          ({}, "MLproject"), ({"project": "missing"}, "missing"),
                          ({"project": "toy", "config": "missing.yaml"}, "missing.yaml")]:
        status, err = await api("GET", "data", **params)
        assert status == 400 and words in err["message"], (params, err)
    status, err = await api("DELETE", f"data/versions/{'a' * 64}", project="../outside")
    assert status == 400 and "outside" in err["message"], err
    status, err = await api("DELETE", f"data/versions/{'a' * 64}", project="toy")
    assert status == 404 and "not staged" in err["message"], err
    status, err = await api("GET", "data/stage/abcdef012345")
    assert status == 404 and "abcdef012345" in err["message"], err


async def test_a_project_without_datasets(api, toy_project, hpcml_data):
    view = await overview(api)
    assert view["datasets"] == [] and view["project_relpath"] == "toy"
    status, staging = await api("POST", "data/stage", {"project": "toy", "names": ["points"]})
    assert status == 400 and "points" in staging["message"], staging


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "data"), ("POST", "data/stage"), ("GET", "data/stage/abcdef012345"),
    ("DELETE", f"data/versions/{'a' * 64}"),
])
async def test_unauthenticated_requests_are_rejected(jp_fetch, method, path):
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("hpcml", "api", *path.split("/"), method=method,
                       body="{}" if method == "POST" else None, headers={"Authorization": ""})
    assert exc.value.code == 403
