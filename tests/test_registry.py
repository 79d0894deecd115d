"""The model registry through the engine's Registry, on MLflow's own registry (the embedded
store): the digits example trained locally, its logged model registered as versions of a
named model, aliases set and moved, errors named."""
from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import mlflow
import pytest

from jupyterlab_hpcml.core.errors import NotFound, UserInputError
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine import model_jobs
from jupyterlab_hpcml.engine.limits import MAX_INPUT_EXAMPLE_BYTES
from jupyterlab_hpcml.engine.registry import Registry
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"


async def trained(engine: Engine, project: Path, **params: str) -> str:
    run = await engine.submit(SubmitRequest(project=str(project), entry_point="train",
                                            parameters={"epochs": "1", **params}))
    deadline = time.monotonic() + 180
    while not run.state.terminal and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        run = await engine.current(run.id)
    assert run.state == RunState.FINISHED, run.state_history
    return run.id


async def test_register_alias_list_and_errors(hpcml_data: Path, tmp_path: Path) -> None:
    project = tmp_path / "digits"
    shutil.copytree(DIGITS, project)
    engine = Engine(data_dir=hpcml_data, poll_interval=0.2)
    registry = Registry(engine.tracker)
    first = await engine.get(await trained(engine, project))
    second = await engine.get(await trained(engine, project, seed="1"))

    # MLflow's process-wide tracking URI naming another store (a notebook's, another test's)
    # must not matter: parts of MLflow read it, the engine's registry is its own.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/elsewhere.db")
    try:
        await check_registry(registry, first, second, tmp_path)
    finally:
        mlflow.set_tracking_uri(None)
    await engine.close()


async def check_registry(registry: Registry, first, second, tmp_path: Path) -> None:
    v1 = registry.register(first, "digits", alias="champion", description="first")
    assert (v1.version, v1.aliases, v1.description) == ("1", ["champion"], "first")
    assert v1.source.startswith("models:/") and v1.model_id and v1.mlflow_run_id == \
        first.mlflow_run_id
    v2 = registry.register(second, "digits", alias="challenger")
    assert v2.version == "2"

    moved = registry.set_alias("digits", "champion", "2")
    assert set(moved.aliases) == {"champion", "challenger"}
    model = registry.get_model("digits")
    assert model.aliases == {"champion": "2", "challenger": "2"}
    assert [v.version for v in model.versions] == ["2", "1"]
    assert [m.name for m in registry.list_models()] == ["digits"]

    with pytest.raises(NotFound):
        registry.get_model("nope")
    with pytest.raises(NotFound):
        registry.set_alias("digits", "champion", "9")
    with pytest.raises(UserInputError):
        registry.set_alias("digits", "latest", "1")
    with pytest.raises(NotFound, match="no model at 'nothing'"):
        registry.register(first, "digits", path="nothing")
    files = model_jobs.fetch(registry, "models:/digits@champion", tmp_path / "cache")
    assert files.version.version == "2" and "python_function" in files.flavors


def test_an_input_example_goes_to_the_browser_only_when_small(tmp_path: Path) -> None:
    (tmp_path / "serving_input_example.json").write_text('{"inputs": [[1, 2]]}')
    assert model_jobs.input_example(tmp_path) == {"inputs": [[1, 2]]}
    rows = ",".join(["[0.5]"] * (MAX_INPUT_EXAMPLE_BYTES // 5 + 1))
    (tmp_path / "serving_input_example.json").write_text(f'{{"inputs": [{rows}]}}')
    assert model_jobs.input_example(tmp_path) is None  # over the limit: none shown
    (tmp_path / "serving_input_example.json").write_text("{not json")
    assert model_jobs.input_example(tmp_path) is None
    assert model_jobs.input_example(tmp_path / "absent") is None
