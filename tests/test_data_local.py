"""Datasets on the local backend, through the engine: a 200-file dataset folder staged into
the local data store once, the job reading it at its declared path and through
HPCML_DATA_<NAME>, nothing copied a second time, one changed file copied alone, versions on
the run record and in MLflow; bad input refused before anything exists; a mapped path
used in place."""
from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from jupyterlab_hpcml.core.errors import UserInputError
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.requests import RerunRequest, SubmitRequest, SweepRequest
from jupyterlab_hpcml.engine.service import Engine

from .data_projects import (
    add_dataset,
    add_remote_sources,
    folder_digest,
    run_to_end,
    wait_seen,
)
from .test_data_source_https import Server, server  # noqa: F401 - fixture
from .test_data_source_s3 import client, endpoint  # noqa: F401 - fixtures


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "MLproject").write_text(
        "name: datatoy\nentry_points:\n  main:\n    command: python read.py\n")
    add_dataset(root)
    return root


@pytest.fixture
def engine(hpcml_data: Path) -> Engine:
    return Engine(data_dir=hpcml_data, poll_interval=0.2)


async def test_staged_once_then_only_the_changed_file(engine: Engine, project: Path) -> None:
    data = project / "data" / "digits"
    first_id, seen = await run_to_end(engine, project)
    assert seen["declared"] == seen["env"] == folder_digest(data)
    assert seen["abs"] == "True"
    first = await engine.get(first_id)
    assert [s.state for s in first.state_history][:2] == [RunState.STAGING, RunState.SUBMITTING]
    (use,) = first.datasets
    total = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    assert (use.name, use.path, use.files, use.size) == ("digits-csv", "data/digits", 200, total)
    assert (use.sent_files, use.sent_bytes) == (200, total)
    # The code snapshot left the data out: it reached the job through the data store only.
    snapshot_files = (engine.runs.manifest_dir / f"{first.snapshot_id}.json").read_text()
    assert "part-001.csv" not in snapshot_files

    second_id, seen2 = await run_to_end(engine, project)
    second = await engine.get(second_id)
    assert second.datasets[0].digest == use.digest
    assert (second.datasets[0].sent_files, second.datasets[0].sent_bytes) == (0, 0)
    assert seen2["declared"] == seen["declared"]

    time.sleep(0.01)
    changed = data / "part-005.csv"
    changed.write_text("changed\n")
    third_id, seen3 = await run_to_end(engine, project)
    third = await engine.get(third_id)
    assert third.datasets[0].digest != use.digest
    assert (third.datasets[0].sent_files, third.datasets[0].sent_bytes) == (1, len("changed\n"))
    assert seen3["declared"] == folder_digest(data) != seen["declared"]
    # The first run's version is intact: staged versions are never written to.
    assert folder_digest(Path(use.location or "")) == seen["declared"]

    mlflow_client = MlflowClient(engine.tracking_uri)
    digests = []
    for run_id in (first_id, third_id):
        inputs = mlflow_client.get_run((await engine.get(run_id)).mlflow_run_id).inputs
        (ds,) = inputs.dataset_inputs
        assert ds.dataset.name == "digits-csv"
        digests.append(ds.dataset.digest)
    assert digests == [use.digest[:32], third.datasets[0].digest[:32]]


async def test_no_data(engine: Engine, project: Path) -> None:
    (project / "read.py").write_text("import os; print('has', os.path.exists('data/digits'))\n")
    none_id, seen = await run_to_end(engine, project, data=[])
    assert seen["has"] == "False"
    assert (await engine.get(none_id)).datasets == []


@pytest.mark.parametrize("change, key, words", [
    ({"data": ["nope"]}, "data", "unknown dataset nope (declared: digits-csv)"),
    ("missing-source", "datasets.digits-csv.source", "does not exist"),
    ("undeclared-mapping", "Data.other", "not declared"),
])
async def test_bad_input_creates_nothing(engine: Engine, project: Path, change: object,
                                         key: str, words: str) -> None:
    req: dict[str, object] = {}
    if isinstance(change, dict):
        req.update(change)
    elif change == "missing-source":
        shutil.rmtree(project / "data" / "digits")
    else:
        (project / "local.yaml").write_text("Data:\n  other: /tmp\n")
        req["backend_config"] = "local.yaml"
    with pytest.raises(UserInputError) as err:
        await engine.submit(SubmitRequest(project=str(project), **req))
    problem = next(p for p in err.value.problems if p.key == key)
    assert words in problem.message
    assert (await engine.list_runs())[1] == 0


async def test_a_mapped_path_is_used_in_place(engine: Engine, project: Path,
                                              tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "digits"
    shutil.copytree(project / "data" / "digits", shared)
    (project / "local.yaml").write_text(f"Data:\n  digits-csv: {shared}\n")
    run_id, seen = await run_to_end(engine, project, backend_config="local.yaml")
    run = await engine.get(run_id)
    (use,) = run.datasets
    assert (use.version, use.location, use.files, use.sent_bytes) == ("listing", str(shared),
                                                                       200, 0)
    assert seen["declared"] == folder_digest(shared)
    assert not (engine.data_dir / "datasets" / "versions").exists()


async def test_a_mapping_to_nothing_fails_the_run_before_any_job(
        engine: Engine, project: Path, tmp_path: Path) -> None:
    (project / "local.yaml").write_text(f"Data:\n  digits-csv: {tmp_path / 'nowhere'}\n")
    run = await engine.submit(SubmitRequest(project=str(project), backend_config="local.yaml"))
    assert run.state == RunState.FAILED
    assert "staging data failed" in (run.state_history[-1].message or "")
    assert "nowhere" in (run.state_history[-1].message or "")
    assert run.backend_job_id is None


async def test_remote_sources_stage_and_a_404_fails_the_run(
        engine: Engine, project: Path, server: Server, client: object,  # noqa: F811
) -> None:
    """An https:// archive from a real HTTPS server and an s3:// prefix from a real
    S3-compatible server both reach the job; a URL that 404s fails the run while STAGING,
    before any job, with the reason."""
    add_remote_sources(project, server.root, server.url, client)  # type: ignore[attr-defined]
    run_id, seen = await run_to_end(engine, project)
    assert (seen["web"], seen["bucket"]) == ("3,4", "x")
    run = await engine.get(run_id)
    assert [(u.name, u.files) for u in run.datasets] == [("web", 1), ("bucket", 1)]

    (project / "datasets.yaml").write_text(
        f"datasets:\n  web:\n    source: {server.url}/missing.tar.gz\n")
    failed = await engine.submit(SubmitRequest(project=str(project)))
    assert failed.state == RunState.FAILED and failed.backend_job_id is None
    assert [s.state for s in failed.state_history] == [RunState.STAGING, RunState.FAILED]
    assert "404" in (failed.state_history[-1].message or "")


async def test_unused_versions_are_collected(engine: Engine, project: Path) -> None:
    """A version no stored run read goes (after its age); one a run read stays until that
    run is deleted."""
    ahead = await engine.stage_data(project)  # staged ahead: no run reads it
    (project / "data" / "digits" / "part-001.csv").write_text("new\n")
    run_id, _seen = await run_to_end(engine, project)
    used = (await engine.get(run_id)).datasets[0].digest
    assert ahead[0].digest != used
    assert await engine.collect_data(project, max_age=3600) == []  # both too young
    assert await engine.collect_data(project, max_age=0) == [ahead[0].digest]
    assert [v.digest for v in await engine.registry.get("local", {}).staged_versions()] \
        == [used]
    await engine.delete(run_id)
    assert await engine.collect_data(project, max_age=0) == [used]
    store = engine.data_dir / "datasets"
    assert not list((store / "versions").iterdir())
    assert not [p for p in (store / "objects").rglob("*") if p.is_file()]


async def test_a_sweep_with_a_slot_cap_stages_for_every_child(engine: Engine,
                                                             project: Path) -> None:
    """Children held back by max-parallel stage their data when a slot frees up."""
    (project / "MLproject").write_text(
        "name: datatoy\nentry_points:\n  main:\n    parameters:\n      n: {type: int}\n"
        "    command: python read.py\n")
    view = await engine.submit_sweep(SweepRequest(project=str(project),
                                                  parameters={"n": "1,2,3"}, max_parallel=1))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        children = (await engine.current_sweep(view.id)).children
        if all(c.state.terminal for c in children):
            break
        await asyncio.sleep(0.3)
    digests = {c.datasets[0].digest for c in children if c.datasets}
    assert [c.state for c in children] == [RunState.FINISHED] * 3
    assert len(digests) == 1 and all(c.datasets for c in children)
    assert all(RunState.STAGING in [s.state for s in c.state_history] for c in children)


async def test_a_rerun_reads_the_same_version_while_it_is_staged(engine: Engine,
                                                                 project: Path) -> None:
    data = project / "data" / "digits"
    first_id, seen = await run_to_end(engine, project)
    old = (await engine.get(first_id)).datasets[0].digest
    (data / "part-002.csv").write_text("edited after the run\n")

    again = await engine.rerun(first_id, RerunRequest())
    again_id, seen_again = await wait_seen(engine, again.id)
    rerun = await engine.get(again_id)
    assert rerun.datasets[0].digest == old and seen_again["declared"] == seen["declared"]
    assert any("the same version" in n for n in rerun.notes)

    await engine.remove_data_version(project, None, old)
    third = await engine.rerun(first_id, RerunRequest())
    third_id, seen_third = await wait_seen(engine, third.id)
    current = await engine.get(third_id)
    assert current.datasets[0].digest != old
    assert seen_third["declared"] == folder_digest(data)
    assert any("no longer on the target" in n for n in current.notes)
