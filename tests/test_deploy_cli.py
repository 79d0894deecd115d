"""`hpcml models`, `hpcml deploy`, `hpcml predict` and the Python API's deployments as a
user runs them: real `hpcml` subprocesses and this process, one data dir, the digits example
trained with offline tracking (its model synced into the lab's store), registered, aliased,
served and scored on the local backend."""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_digits

from jupyterlab_hpcml.core.errors import HpcmlError

from .test_cli import hpcml

pytestmark = pytest.mark.usefixtures("deployments_stopped")
DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"


def test_cli_deploy_python_predict_batch_and_stop(hpcml_data: Path, tmp_path: Path) -> None:
    project = tmp_path / "digits"
    shutil.copytree(DIGITS, project)
    # Tracked offline (as on a cluster): the model is registered once the run is synced.
    run = json.loads(hpcml("submit", str(project), "-e", "train", "-P", "epochs=1", "-c",
                           "backend-configs/local-offline.yaml", "--wait", "--json").stdout)
    assert run["tracking_mode"] == "offline", run
    register_alias_ls_show(run["id"])  # digits v1 and v2, champion and challenger on v2
    model = mlflow.pyfunc.load_model("models:/digits@champion")

    dep = json.loads(hpcml("deploy", "models:/digits@champion", "--json").stdout)
    assert dep["state"] == "READY" and dep["name"] == "digits", dep
    listing = hpcml("deploy", "ls").stdout.splitlines()
    assert listing[0].split()[:3] == ["NAME", "STATE", "MODEL"]
    assert listing[1].split()[:4] == ["digits", "READY", "digits", "2"]

    # The Python API calls the serving job straight, the same model answers.
    from jupyterlab_hpcml import deployment

    x = load_digits().data[10:15]
    assert deployment("digits").predict(x) == model.predict(x).tolist()
    with pytest.raises(HpcmlError, match=r"refused the request \(400\): .+"):
        deployment("digits").predict([[1.0, 2.0]])  # 2 of the 64 pixels: MLflow's message

    # A batch run scores the project's dataset; its artifact holds one row per input row.
    out = hpcml("predict", "models:/digits@champion", "--input", "digits-csv", "--project",
                str(project), "--drop", "label", "--wait", "--json")
    scored = json.loads(out.stdout)
    assert scored["state"] == "FINISHED" and scored["datasets"][0]["name"] == "input", scored
    client = MlflowClient()
    tags = client.get_run(scored["mlflow_run_id"]).data.tags
    assert (tags["hpcml.model.name"], tags["hpcml.model.version"]) == ("digits", "2")
    local = client.download_artifacts(scored["mlflow_run_id"], "predictions/predictions.csv",
                                      str(tmp_path))
    rows = list(csv.DictReader(io.StringIO(Path(local).read_text())))
    expected = []
    for part in sorted((project / "data" / "digits-csv").glob("part-*.csv")):
        table = np.loadtxt(part, delimiter=",", skiprows=1, ndmin=2)
        expected += [(part.name, str(i), str(p)) for i, p in
                     enumerate(model.predict(table[:, :-1]).tolist())]
    assert [(r["source"], r["row"], r["prediction"]) for r in rows] == expected
    assert len(rows) == 1797

    stopped = hpcml("deploy", "stop", "digits")
    assert "deployment digits: STOPPED" in stopped.stderr
    gone = hpcml("deploy", "models:/digits@nope", check=False)
    assert gone.returncode == 1 and "has no alias 'nope'" in gone.stderr
    bad = hpcml("deploy", "digits", check=False)
    assert bad.returncode == 2 and "models:/<name>/<version>" in bad.stderr
    usage = hpcml("deploy", "stop", check=False)
    assert usage.returncode == 2 and "usage: hpcml deploy stop NAME" in usage.stderr


def register_alias_ls_show(run_id: str) -> None:
    """`hpcml models …`: register twice, set and move aliases, list, show, errors."""
    out = hpcml("models", "register", run_id[:8], "--name", "digits", "--alias",
                "champion").stdout
    assert "registered digits version 1 from models:/" in out and "as champion" in out
    hpcml("models", "register", run_id, "--name", "digits", "--alias", "challenger")
    assert "digits@champion → version 2" in hpcml("models", "alias", "digits", "champion",
                                                   "2").stdout
    listing = hpcml("models", "ls").stdout.splitlines()
    assert listing[0].split()[:2] == ["NAME", "ALIASES"]
    assert "challenger→v2, champion→v2" in listing[1]
    shown = json.loads(hpcml("models", "show", "digits", "--json").stdout)
    assert [(v["version"], sorted(v["aliases"])) for v in shown["versions"]] == \
        [("2", ["challenger", "champion"]), ("1", [])]
    bad = hpcml("models", "alias", "digits", "latest", "1", check=False)
    assert bad.returncode == 2 and "alias 'latest'" in bad.stderr
    missing = hpcml("models", "show", "nope", check=False)
    assert missing.returncode == 1 and "nope" in missing.stderr
