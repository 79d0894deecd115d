"""The final copy of a run's offline tracking happens before the run is seen to end; when
it fails (here: the main artifact store refuses writes) the run stays open and the next
poll tries again, for a while, then the run ends with a note saying what is missing."""
from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.models import RunRecord
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "proj"
    p.mkdir()
    (p / "MLproject").write_text(
        "name: syncy\nentry_points:\n  main:\n    command: python job.py\n"
    )
    (p / "job.py").write_text(textwrap.dedent("""
        import mlflow
        with mlflow.start_run():
            mlflow.log_metric("loss", 0.5, step=1)
            mlflow.log_text("the model card", "card.txt")
    """))
    (p / "offline.yaml").write_text("Local: {}\nTracking:\n  Mode: offline\n")
    return p


async def job_ended_and_polled(engine: Engine, run: RunRecord) -> RunRecord:
    """Poll until the job's process has ended and one more poll has seen that."""
    deadline = time.monotonic() + 90
    while not (Path(run.run_dir or "") / ".hpcml" / "exit_code").exists():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    await engine.runs.refresh()
    return await engine.runs.get(run.id)


def block_artifacts(engine: Engine, run: RunRecord) -> Path:
    """A file where the run's artifact folder must go: writes fail (even as root)."""
    exp = engine.tracker.client.get_experiment(run.mlflow_experiment_id)
    blocker = Path(urlparse(exp.artifact_location).path) / str(run.mlflow_run_id)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")
    return blocker


async def test_a_failed_final_copy_keeps_the_run_open_until_it_succeeds(
    hpcml_data: Path, project: Path
):
    engine = Engine(data_dir=hpcml_data)
    try:
        run = await engine.runs.submit(
            SubmitRequest(project=str(project), backend_config="offline.yaml")
        )
        blocker = block_artifacts(engine, run)
        run = await job_ended_and_polled(engine, run)
        assert run.state == RunState.RUNNING  # the job ended, but its artifacts are not copied yet
        assert engine.tracker.client.get_run(run.mlflow_run_id).info.status == "RUNNING"

        blocker.unlink()  # the artifact store is back
        await engine.runs.refresh()
        run = await engine.runs.get(run.id)
        assert (run.state, run.exit_code) == (RunState.FINISHED, 0)
        assert [a.path for a in engine.tracker.list_artifacts(run.mlflow_run_id)] == ["card.txt"]
        assert engine.tracker.client.get_run(run.mlflow_run_id).data.metrics == {"loss": 0.5}
        assert not any("incomplete" in (c.message or "") for c in run.state_history)
    finally:
        await engine.close()


async def test_a_final_copy_failing_for_too_long_ends_the_run_with_a_note(
    hpcml_data: Path, project: Path
):
    engine = Engine(data_dir=hpcml_data)
    engine.runs.final_sync_patience = 0.0
    try:
        run = await engine.runs.submit(
            SubmitRequest(project=str(project), backend_config="offline.yaml")
        )
        block_artifacts(engine, run)
        run = await job_ended_and_polled(engine, run)
        assert (run.state, run.exit_code) == (RunState.FINISHED, 0)
        note = run.state_history[-1].message or ""
        assert (
            "MLflow copy of the run's offline tracking incomplete" in note
            and "card.txt" not in note
        )
        # What could be copied was: the metrics are there, the artifact is not.
        assert engine.tracker.client.get_run(run.mlflow_run_id).data.metrics == {"loss": 0.5}
    finally:
        await engine.close()


async def test_params_and_status_are_in_mlflow_when_submit_returns(hpcml_data: Path, project: Path):
    # Offline runs write them while the job is being submitted; submit waits for them.
    (project / "MLproject").write_text(
        "name: syncy\nentry_points:\n  main:\n    parameters: {lr: {type: float, default: 0.1}}\n"
        "    command: python job.py\n")
    engine = Engine(data_dir=hpcml_data)
    try:
        run = await engine.runs.submit(
            SubmitRequest(
                project=str(project), backend_config="offline.yaml", parameters={"lr": 0.5}
            )
        )
        mlflow_run = engine.tracker.client.get_run(run.mlflow_run_id)
        assert mlflow_run.data.params == {"lr": "0.5"}
        assert run.state in (RunState.QUEUED, RunState.RUNNING)
        assert mlflow_run.info.status == (
            "SCHEDULED" if run.state == RunState.QUEUED else "RUNNING"
        )
    finally:
        await engine.close()
