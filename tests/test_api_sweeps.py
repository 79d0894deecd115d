"""Sweeps through the REST API on the real server: submit, preview, list, get with
children, cancel, re-run failed; bad input is a 400 naming each bad value."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from mlflow.tracking import MlflowClient

from .conftest import TERMINAL


async def wait_sweep(api: Any, sweep_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, sweep = await api("GET", f"sweeps/{sweep_id}")
        assert status == 200, sweep
        if sweep["state"] in TERMINAL:
            return sweep
        assert time.monotonic() < deadline, sweep["counts"]
        await asyncio.sleep(0.3)


async def test_sweep_lifecycle(api, toy_project, hpcml_data):
    body = {"project": "toy", "entry_point": "fail", "parameters": {"code": "0,3,0"},
            "max_parallel": 2, "run_name": "codes"}
    status, preview = await api("POST", "sweeps/preview", body)
    assert status == 200 and preview["points"] == 3 and preview["varying"] == ["code"]
    status, listed = await api("GET", "sweeps")
    assert status == 200 and listed["sweeps"] == []  # a preview creates nothing

    status, sweep = await api("POST", "sweeps", body)
    assert status == 201, sweep
    assert sweep["id"].startswith("s") and sweep["max_parallel"] == 2
    assert [c["parameters"]["code"] for c in sweep["children"]] == ["0", "3", "0"]
    assert all(c["sweep_id"] == sweep["id"] for c in sweep["children"])
    sweep = await wait_sweep(api, sweep["id"])
    assert sweep["state"] == "FAILED" and sweep["counts"] == {"FINISHED": 2, "FAILED": 1}
    failed = next(c for c in sweep["children"] if c["state"] == "FAILED")
    assert failed["exit_code"] == 3 and failed["sweep_index"] == 1

    # Each child is a run of its own: its log, its MLflow run nested under the parent.
    status, log = await api("GET", f"runs/{failed['id']}/logs/stdout")
    assert status == 200 and "failing now" in log["data"]
    client = MlflowClient()
    child = client.get_run(failed["mlflow_run_id"])
    assert child.data.tags["mlflow.parentRunId"] == sweep["mlflow_run_id"]
    assert child.data.params["code"] == "3"

    status, listed = await api("GET", "sweeps")
    assert [s["id"] for s in listed["sweeps"]] == [sweep["id"]]
    assert listed["sweeps"][0]["counts"] == {"FINISHED": 2, "FAILED": 1}

    status, again = await api("POST", f"sweeps/{sweep['id']}/rerun",
                              {"failed": True, "parameters": {"code": 0}})
    assert status == 201, again
    reruns = [c for c in again["children"] if c["rerun_of"]]
    assert [(c["sweep_index"], c["rerun_of"], c["parameters"]["code"]) for c in reruns] == [
        (1, failed["id"], "0")]
    done = await wait_sweep(api, sweep["id"])
    assert next(c for c in done["children"] if c["rerun_of"])["state"] == "FINISHED"
    status, err = await api("POST", f"sweeps/{sweep['id']}/cancel")
    assert status == 409 and "no active child" in err["message"]


async def test_bad_sweeps_are_400_and_create_nothing(api, toy_project, hpcml_data):
    status, err = await api("POST", "sweeps", {
        "project": "toy", "parameters": {"steps": "1,x", "lr": "0.1,y", "delay": "2,z"}})
    assert status == 400
    keys = {p["key"] for p in err["problems"]}
    assert keys == {"parameters.steps", "parameters.lr", "parameters.delay"}, err
    assert "'x'" in err["message"] and "'y'" in err["message"] and "'z'" in err["message"]
    status, err = await api("POST", "sweeps", {
        "project": "toy", "parameters": {"steps": "range(1", "lr": "interval(0.1)"}})
    assert status == 400 and {p["key"] for p in err["problems"]} == {
        "parameters.steps", "parameters.lr"}, err
    status, err = await api("POST", "sweeps", {"project": "toy", "random": 3})
    assert status == 400 and "needs a parameter to sample" in err["message"]
    status, err = await api("POST", "sweeps", {"project": "toy", "max_parallel": 0})
    assert status == 400 and err["problems"][0]["key"] == "max_parallel"
    status, err = await api("POST", "sweeps", {"project": "../outside"})
    assert status in (400, 403, 404), err
    status, listed = await api("GET", "sweeps")
    assert listed["sweeps"] == []
    status, runs = await api("GET", "runs")
    assert runs["total"] == 0
    status, err = await api("GET", "sweeps/s0000000000")
    assert status == 404
