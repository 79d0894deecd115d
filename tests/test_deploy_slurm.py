"""Deployments and batch prediction on the real test cluster, through the REST API of the
real server extension: the digits example trained locally and registered as `champion`,
served as a Slurm job reached through the SSH tunnel (same predictions as the model loaded
in this process), stopped (the Slurm job CANCELLED); then `hpcml predict` as a batch job on
the cluster whose predictions artifact matches in-process scoring of the dataset.
Needs the test cluster (scripts/test-cluster-start.sh); skips without it.
"""
from __future__ import annotations

import asyncio
import io
import json

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_digits

from .conftest import TERMINAL, wait_deployment, wait_for_state
from .slurm_cluster import slurm, ssh_cmd  # noqa: F401 - fixture
from .test_slurm_example import CONFIG, digits  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("slurm", "deployments_stopped")
CHAMPION = "models:/digits@champion"


async def finished(api, run: dict, timeout: float = 180) -> dict:
    """``run`` once ended; fails with its stderr unless FINISHED."""
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=timeout)
    if run["state"] != "FINISHED":
        _, err = await api("GET", f"runs/{run['id']}/logs/stderr", max_bytes=1 << 20)
        pytest.fail(f"run ended {run['state']}: {run['state_history'][-1]}\n"
                    f"stderr:\n{err['data'][-3000:]}")
    return run


async def champion(api) -> None:
    """digits trained locally (1 epoch), registered as `digits` with alias `champion`."""
    status, run = await api("POST", "runs", {"project": "digits", "entry_point": "train",
                                             "parameters": {"epochs": 1}})
    assert status == 201 and run["backend"] == "local", run
    run = await finished(api, run)
    status, version = await api("POST", "models", {"run_id": run["id"], "name": "digits",
                                                   "alias": "champion"})
    assert status == 201 and version["version"] == "1", version


def slurm_state(s: dict[str, str], job_id: str) -> str:
    return ssh_cmd(s, f"sacct -X -n -P -j {job_id} -o State").strip()


async def invoke(jp_fetch, name: str, payload: dict) -> tuple[int, dict]:
    resp = await jp_fetch("hpcml", "api", "deployments", name, "invocations", method="POST",
                          body=json.dumps(payload),
                          headers={"Content-Type": "application/json"})
    return resp.code, json.loads(resp.body)


async def test_digits_served_as_a_slurm_job_then_scored_by_a_batch_job(
        api, jp_fetch, digits, slurm):  # noqa: F811
    await champion(api)
    x = load_digits().data[:8]
    model = await asyncio.to_thread(mlflow.pyfunc.load_model, CHAMPION)
    expected = model.predict(x).tolist()

    # --- the deployment: a Slurm job, reached through the tunnel, the lab's proxy in front
    status, dep = await api("POST", "deployments", {
        "model_uri": CHAMPION, "project": "digits", "backend_config": CONFIG})
    assert status == 201 and dep["backend"] == "ssh" and dep["state"] == "STARTING", dep
    status, serving = await api("GET", f"runs/{dep['run_ids'][0]}")
    assert status == 200 and serving["backend_job_id"].isdigit(), serving
    job_id = serving["backend_job_id"]
    dep = await wait_deployment(api, "digits", {"READY", "FAILED"})
    assert dep["state"] == "READY", dep
    status, answer = await invoke(jp_fetch, "digits", {"inputs": x.tolist()})
    assert status == 200 and answer["predictions"] == expected, answer

    status, dep = await api("POST", "deployments/digits/stop")
    assert status == 200 and dep["state"] == "STOPPED", dep
    assert (await wait_for_state(api, serving["id"], TERMINAL))["state"] == "CANCELLED"
    assert slurm_state(slurm, job_id).startswith("CANCELLED"), slurm_state(slurm, job_id)

    # --- batch prediction of the project's dataset, as a job on the cluster
    status, run = await api("POST", "predictions", {
        "model_uri": CHAMPION, "input": "digits-csv", "project": "digits",
        "backend_config": CONFIG, "drop_columns": ["label"]})
    assert status == 201 and run["backend"] == "ssh" and run["backend_job_id"].isdigit(), run
    run = await finished(api, run)
    assert run["datasets"][0]["name"] == "input", run["datasets"]
    tags = MlflowClient().get_run(run["mlflow_run_id"]).data.tags
    assert (tags["hpcml.model.name"], tags["hpcml.model.version"]) == ("digits", "1"), tags

    status, csv = await api("GET", f"runs/{run['id']}/artifacts/download",
                            path="predictions/predictions.csv")
    assert status == 200, csv
    got = pd.read_csv(io.BytesIO(csv))
    parts = sorted((digits / "data" / "digits-csv").glob("*.csv"))
    frames = [pd.read_csv(p).drop(columns=["label"]) for p in parts]
    # The model's signature is a float64 tensor: the files' integers given as floats.
    want = [int(v) for f in frames for v in model.predict(f.to_numpy(dtype="float64"))]
    assert len(got) == sum(len(f) for f in frames) == 1797
    assert got["prediction"].tolist() == want
    sources = [p.name for p, f in zip(parts, frames, strict=True) for _ in range(len(f))]
    assert got["source"].tolist() == sources
    assert got["row"].tolist() == [i for f in frames for i in range(len(f))]
