"""The shipped example (examples/digits) through the real server extension → sshd → Slurm.

The job trains for real on the test cluster with offline tracking (the cluster default);
the engine copies its metrics and artifacts back into the lab's MLflow store.
Needs the test cluster (scripts/test-cluster-start.sh), whose venv has scikit-learn;
skips without it.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from .conftest import TERMINAL, wait_for_state
from .slurm_cluster import backend_config, slurm  # noqa: F401 - fixture

EXAMPLE = Path(__file__).parents[1] / "examples" / "digits"
CONFIG = "backend-configs/test-cluster.yaml"

pytestmark = pytest.mark.usefixtures("slurm")


@pytest.fixture
def digits(jp_root_dir: Path, slurm) -> Path:  # noqa: F811
    """The example project in the server's root, with a backend config for the test cluster."""
    project = jp_root_dir / "digits"
    shutil.copytree(EXAMPLE, project)
    # Shaped like backend-configs/slurm.yaml, pointed at the test cluster.
    cfg = backend_config(
        slurm,
        Name="Test cluster (SSH)",
        Resources={"Nodes": 1, "CPUsPerNode": 2},
        Environment={"Variables": {"OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}},
        Exclude=["*.ckpt", "outputs/"],
    )
    (project / CONFIG).write_text(yaml.safe_dump(cfg))
    return project


async def artifact_paths(api, run_id: str, path: str = "") -> dict[str, bool]:
    """``{path: is_dir}`` of one level of the run's artifacts, through the REST API."""
    params = {"path": path} if path else {}
    status, body = await api("GET", f"runs/{run_id}/artifacts", **params)
    assert status == 200, body
    return {a["path"]: a["is_dir"] for a in body["artifacts"]}


async def train(api, run_name: str, epochs: int = 2) -> dict:
    """Submit the `train` entry point through the REST API; return the run once FINISHED."""
    status, run = await api("POST", "runs", {
        "project": "digits", "entry_point": "train", "backend_config": CONFIG,
        "parameters": {"epochs": epochs}, "run_name": run_name,
    })
    assert status == 201, run
    assert run["backend"] == "ssh" and run["backend_job_id"].isdigit(), run
    assert run["tracking_mode"] == "offline", run  # the cluster default
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=300)
    if run["state"] != "FINISHED":
        _, err = await api("GET", f"runs/{run['id']}/logs/stderr", max_bytes=1 << 20)
        pytest.fail(f"run ended {run['state']}: {run['state_history'][-1]}\n"
                    f"stderr:\n{err['data'][-3000:]}")
    assert run["exit_code"] == 0
    return run


async def test_digits_train_finishes_with_metrics_and_confusion_matrix(api, digits):
    run = await train(api, "digits-on-slurm")
    _, log = await api("GET", f"runs/{run['id']}/logs/stdout", max_bytes=1 << 20)
    assert "epoch   2/2" in log["data"] and "done: val_accuracy=" in log["data"], log["data"]

    # What the job logged offline on the cluster, copied into the lab's MLflow store.
    client = MlflowClient()
    mlflow_run = client.get_run(run["mlflow_run_id"])
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.info.run_name == "digits-on-slurm"
    assert mlflow_run.data.params["epochs"] == "2"
    history = client.get_metric_history(run["mlflow_run_id"], "val_accuracy")
    assert sorted(m.step for m in history) == [1, 2], history
    val_accuracy = max(history, key=lambda m: m.step).value
    assert val_accuracy > 0.8, history
    assert {"train_loss", "train_accuracy", "training_seconds"} <= set(mlflow_run.data.metrics)
    # ...and the same through the REST API the lab's charts use.
    status, rest_history = await api("GET", f"runs/{run['id']}/metrics/val_accuracy")
    assert status == 200 and rest_history["total"] == 2, rest_history

    # The confusion matrix, through the REST artifacts endpoint.
    top = await artifact_paths(api, run["id"])
    assert top.get("confusion_matrix.json") is False, top
    assert top.get("confusion_matrix.txt") is False, top
    download = f"runs/{run['id']}/artifacts/download"
    status, cm = await api("GET", download, path="confusion_matrix.json")
    assert status == 200, cm  # served as application/json: the api fixture decodes it
    assert cm["labels"] == list(range(10))
    assert sum(map(sum, cm["matrix"])) == 288  # the validation split
    assert sum(cm["matrix"][i][i] for i in range(10)) / 288 == pytest.approx(val_accuracy)
    status, text = await api("GET", download, path="confusion_matrix.txt")
    assert status == 200 and text.decode().startswith("true\\pred"), text


class LoggedModelMissing(AssertionError):
    """The one known gap (below); any other failure of that test fails it for real."""


async def test_digits_logged_model_reaches_the_lab(api, digits):
    run = await train(api, "digits-model")
    # In MLflow 3 the model is a LoggedModel, not a run artifact: it is not in the top-level
    # listing, but MLflow resolves the path `model` of its source run to it (as it does for
    # a run on the local backend).
    model = await artifact_paths(api, run["id"], "model")
    if not {"model/MLmodel", "model/model.skops"} <= set(model):
        raise LoggedModelMissing(f"no logged model under the run's `model` path: {model}")
    status, mlmodel = await api("GET", f"runs/{run['id']}/artifacts/download", path="model/MLmodel")
    assert status == 200, mlmodel
    assert "sklearn" in yaml.safe_load(mlmodel)["flavors"], mlmodel
