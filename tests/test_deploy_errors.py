"""Deployments through the REST API of the real server extension: bad input named clearly
(nothing created), replicas called in turn, and the registry routes' errors. A tiny
python_function model keeps it fast; the digits model is served in test_deploy_local."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from jupyterlab_hpcml.core.errors import Conflict
from jupyterlab_hpcml.engine.deployments import ORPHAN_AFTER
from jupyterlab_hpcml.engine.models import DeploymentRecord
from jupyterlab_hpcml.engine.service import Engine

from .conftest import wait_deployment, wait_for_state

pytestmark = pytest.mark.usefixtures("deployments_stopped")
PAYLOAD = '{"dataframe_split": {"columns": ["x"], "data": [[1], [2.5]]}}'
DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [2 * float(v) for v in model_input.iloc[:, 0]]


@pytest.fixture
def models(hpcml_data: Path, tmp_path: Path) -> None:
    """``doubler`` v1 (python_function, alias live) and ``odd`` v1 (a flavor nothing serves)."""
    with mlflow.start_run():  # in hpcml_data's store ($MLFLOW_TRACKING_URI)
        mlflow.pyfunc.log_model(name="model", python_model=Doubler(),
                                registered_model_name="doubler")
    client = MlflowClient()
    client.set_registered_model_alias("doubler", "live", "1")
    odd = tmp_path / "odd-model"
    odd.mkdir()
    (odd / "MLmodel").write_text(yaml.safe_dump({"flavors": {"custom_only": {}}}))
    client.create_registered_model("odd")
    client.create_model_version("odd", str(odd))


async def test_bad_deploy_requests_are_named_and_create_nothing(api, models, jp_root_dir):
    shutil.copytree(DIGITS, jp_root_dir / "digits")
    cases = [
        ({"model_uri": "doubler"}, 400, "models:/<name>/<version>"),
        ({"model_uri": "models:/nope/1"}, 404, "nope"),
        ({"model_uri": "models:/doubler@missing"}, 404, "live"),  # names the aliases it has
        ({"model_uri": "models:/doubler/7"}, 404, "7"),
        ({"model_uri": "models:/odd/1"}, 400, "cannot be served"),
        ({"model_uri": "models:/doubler/1", "project": "digits",
          "backend_config": "backend-configs/firecrest.yaml"}, 400, "no tunnel"),
        ({"model_uri": "models:/doubler/1", "backend_config": "/etc/passwd"}, 400, "project"),
        ({"model_uri": "models:/doubler/1", "name": "Bad Name"}, 400, "name"),
        ({"model_uri": "models:/doubler/1", "replicas": 0}, 400, "replicas"),
        ({"model_uri": "models:/doubler/1", "extra": 1}, 400, "extra"),
    ]
    for body, status, text in cases:
        got, answer = await api("POST", "deployments", body)
        assert got == status and text in str(answer), (body, answer)
    assert (await api("GET", "deployments"))[1] == {"deployments": []}
    assert (await api("GET", "deployments/nope"))[0] == 404
    assert (await api("POST", "deployments/nope/stop"))[0] == 404

    # The registry routes.
    assert (await api("GET", "models/nope"))[0] == 404
    got, answer = await api("PUT", "models/doubler/aliases/latest", {"version": "1"})
    assert got == 400 and "alias" in answer["message"], answer
    assert (await api("PUT", "models/doubler/aliases/x", {"version": "9"}))[0] == 404
    got, answer = await api("POST", "models", {"run_id": "000000000000", "name": "x"})
    assert got == 404, answer
    got, models = await api("GET", "models")
    assert got == 200 and {m["name"] for m in models["models"]} == {"doubler", "odd"}
    got, detail = await api("GET", "models/odd/versions/1")
    assert got == 200 and not detail["servable"] and detail["run"] is None, detail


async def test_two_replicas_answer_in_turn_and_stop(api, models, jp_fetch):
    got, dep = await api("POST", "deployments", {"model_uri": "models:/doubler@live",
                                                 "name": "double", "replicas": 2})
    assert got == 201 and len(dep["run_ids"]) == 2 and dep["model_version"] == "1", dep
    dep = await wait_deployment(api, "double", {"READY", "FAILED"})
    assert dep["state"] == "READY", dep
    served_by = set()
    for _ in range(4):
        resp = await jp_fetch("hpcml", "api", "deployments", "double", "invocations",
                              method="POST", body=PAYLOAD,
                              headers={"Content-Type": "application/json"})
        assert resp.code == 200 and b'"predictions": [2.0, 5.0]' in resp.body, resp.body
        served_by.add(resp.headers.get("X-Hpcml-Replica"))
    assert served_by == set(dep["run_ids"])  # round robin over both
    got, dep = await api("POST", "deployments/double/stop")
    assert got == 200 and dep["state"] == "STOPPED", dep
    for run_id in dep["run_ids"]:
        run = await wait_for_state(api, run_id, {"CANCELLED", "FAILED", "FINISHED"})
        assert run["state"] == "CANCELLED", run


async def test_an_interrupted_deploy_fails_and_frees_its_name(hpcml_data: Path) -> None:
    """A creator that died before its first job (no run ids) blocks the name for a while,
    then the deployment is FAILED and the name can be taken again."""
    engine = Engine(data_dir=hpcml_data)
    store = engine.deployments.store
    old = DeploymentRecord(name="x", model_uri="models:/a/1", model_name="a", model_version="1",
                           model_source="models:/m-1", backend="local",
                           created_at=time.time() - ORPHAN_AFTER - 1)
    store.insert(old)
    with pytest.raises(Conflict, match="'x' is STARTING"):
        store.insert(old.model_copy(update={"created_at": time.time()}))
    got = await engine.get_deployment("x", refresh=True)
    assert got.state == "FAILED" and "interrupted" in (got.message or ""), got
    store.insert(old.model_copy(update={"created_at": time.time()}))  # the name is free
    fresh = await engine.get_deployment("x", refresh=True)
    assert fresh.state == "STARTING"  # being created: left alone
    await engine.close()
