"""The shipped example project trains and evaluates for real on the local backend."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from mlflow.tracking import MlflowClient

from .test_cli import hpcml

EXAMPLE = Path(__file__).parents[1] / "examples" / "digits"


def test_digits_train_then_evaluate(tmp_path: Path, hpcml_data: Path) -> None:
    project = tmp_path / "digits"
    shutil.copytree(EXAMPLE, project)
    trained = json.loads(hpcml("submit", str(project), "-e", "train", "-P", "epochs=2",
                               "-c", "backend-configs/local.yaml", "--wait", "--json").stdout)
    assert trained["state"] == "FINISHED", trained
    client = MlflowClient()
    history = client.get_metric_history(trained["mlflow_run_id"], "val_accuracy")
    assert [m.step for m in history] == [1, 2] and history[-1].value > 0.8

    model_uri = f"runs:/{trained['mlflow_run_id']}/model"
    evaluated = json.loads(hpcml("submit", str(project), "-e", "evaluate", "-P",
                                 f"model_uri={model_uri}", "--wait", "--json").stdout)
    assert evaluated["state"] == "FINISHED", evaluated
    metrics = client.get_run(evaluated["mlflow_run_id"]).data.metrics
    assert metrics["test_accuracy"] > 0.8
