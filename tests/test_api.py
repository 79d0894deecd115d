"""The REST API on the real jupyter_server with the extension, real processes, real MLflow."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from tornado.httpclient import HTTPClientError

from .conftest import TERMINAL, submit_run, wait_for_state

submit = submit_run


async def test_submit_runs_to_finished_and_tracks_in_mlflow(api, toy_project, hpcml_data):
    run = await submit(api, parameters={"steps": 5, "label": "digits"}, run_name="first")
    assert run["state"] in {"QUEUED", "RUNNING"}
    assert run["backend"] == "local" and run["backend_job_id"]
    assert run["code"]["content_hash"]

    run = await wait_for_state(api, run["id"], TERMINAL)
    assert run["state"] == "FINISHED", run
    assert run["exit_code"] == 0
    assert [c["state"] for c in run["state_history"]][:2] == ["SUBMITTING", "RUNNING"]
    assert run["parameters"] == {"steps": "5", "lr": "0.1", "label": "digits", "delay": "0"}

    client = MlflowClient()
    mlrun = client.get_run(run["mlflow_run_id"])
    assert mlrun.info.status == "FINISHED"
    assert mlrun.info.experiment_id == run["mlflow_experiment_id"]
    assert mlrun.data.params["steps"] == "5"
    assert mlrun.data.tags["hpcml.backend"] == "local"
    assert mlrun.data.tags["hpcml.run_id"] == run["id"]
    assert mlrun.data.tags["mlflow.runName"] == "first"
    assert [m.value for m in client.get_metric_history(run["mlflow_run_id"], "loss")] == [
        1.0, 0.5, 1 / 3, 0.25, 0.2
    ]

    status, keys = await api("GET", f"runs/{run['id']}/metrics")
    assert status == 200 and [m["key"] for m in keys["metrics"]] == ["loss"]
    status, hist = await api("GET", f"runs/{run['id']}/metrics/loss", max_points=1000)
    assert status == 200 and hist["total"] == 5 and len(hist["points"]) == 5

    status, log = await api("GET", f"runs/{run['id']}/logs/stdout")
    assert status == 200 and "step 4 loss 0.200" in log["data"] and log["running"] is False
    assert log["next_offset"] == log["size"]

    status, arts = await api("GET", f"runs/{run['id']}/artifacts")
    assert status == 200 and [a["path"] for a in arts["artifacts"]] == ["result.txt"]
    status, body = await api("GET", f"runs/{run['id']}/artifacts/download", path="result.txt")
    assert status == 200 and body == b"label=digits\n"


async def test_log_chunks_by_offset_reassemble_the_log(api, toy_project):
    run = await submit(api, parameters={"steps": 40})
    run = await wait_for_state(api, run["id"], TERMINAL)
    whole = ""
    offset = 0
    while True:
        status, chunk = await api(
            "GET", f"runs/{run['id']}/logs/stdout", offset=offset, max_bytes=7
        )
        assert status == 200
        if not chunk["data"]:
            break
        assert chunk["offset"] == offset
        whole += chunk["data"]
        offset = chunk["next_offset"]
    assert whole.count("\n") == 41 and whole.startswith("step 0 loss 1.000\n")


async def test_failed_run_records_exit_code(api, toy_project):
    run = await submit(api, entry_point="fail", parameters={"code": 7})
    run = await wait_for_state(api, run["id"], TERMINAL)
    assert run["state"] == "FAILED" and run["exit_code"] == 7
    assert MlflowClient().get_run(run["mlflow_run_id"]).info.status == "FAILED"
    status, log = await api("GET", f"runs/{run['id']}/logs/stdout")
    assert "failing now" in log["data"]


async def test_cancel_long_run(api, toy_project):
    run = await submit(api, entry_point="sleep")
    await wait_for_state(api, run["id"], {"RUNNING"})
    status, cancelled = await api("POST", f"runs/{run['id']}/cancel")
    assert status == 200 and cancelled["cancel_requested"] is True
    run = await wait_for_state(api, run["id"], TERMINAL, timeout=30)
    assert run["state"] == "CANCELLED"
    assert MlflowClient().get_run(run["mlflow_run_id"]).info.status == "KILLED"
    status, err = await api("POST", f"runs/{run['id']}/cancel")
    assert status == 409 and "already ended" in err["message"]


async def test_rerun_with_parameter_and_config_override(api, toy_project):
    first = await submit(api, parameters={"steps": 2}, backend_config="local.yaml")
    first = await wait_for_state(api, first["id"], TERMINAL)
    status, second = await api(
        "POST", f"runs/{first['id']}/rerun",
        {"parameters": {"steps": 4}, "overrides": ["Resources.Runtime=90min"]},
    )
    assert status == 201, second
    assert second["rerun_of"] == first["id"] and second["id"] != first["id"]
    assert second["parameters"]["steps"] == "4" and second["parameters"]["label"] == "hello"
    assert second["snapshot_id"] == first["snapshot_id"]
    assert second["resources"]["Runtime"] == 5400
    second = await wait_for_state(api, second["id"], TERMINAL)
    assert second["state"] == "FINISHED"
    history = MlflowClient().get_metric_history(second["mlflow_run_id"], "loss")
    assert len(history) == 4


async def test_rerun_fresh_code_takes_a_new_snapshot(api, toy_project):
    first = await submit(api, parameters={"steps": 1})
    first = await wait_for_state(api, first["id"], TERMINAL)
    (toy_project / "train.py").write_text(
        (toy_project / "train.py").read_text().replace("label={a.label}", "changed={a.label}")
    )
    status, same = await api("POST", f"runs/{first['id']}/rerun", {})
    status, fresh = await api("POST", f"runs/{first['id']}/rerun", {"fresh_code": True})
    assert status == 201
    assert same["snapshot_id"] == first["snapshot_id"]
    assert fresh["snapshot_id"] != first["snapshot_id"]
    assert fresh["code"]["content_hash"] != first["code"]["content_hash"]
    for run in (same, fresh):
        await wait_for_state(api, run["id"], TERMINAL)
    _, body_same = await api("GET", f"runs/{same['id']}/artifacts/download", path="result.txt")
    _, body_fresh = await api("GET", f"runs/{fresh['id']}/artifacts/download", path="result.txt")
    assert body_same == b"label=hello\n" and body_fresh == b"changed=hello\n"


HOSTILE = ["; rm -rf ~", "$(id)", "`id`", "a\nb", "it's \"quoted\"", "$HOME", "*", "--flag"]


@pytest.mark.parametrize("value", HOSTILE)
async def test_hostile_parameter_values_stay_literal(api, toy_project, value):
    run = await submit(api, entry_point="args", parameters={"value": value})
    run = await wait_for_state(api, run["id"], TERMINAL)
    assert run["state"] == "FINISHED", run
    _, log = await api("GET", f"runs/{run['id']}/logs/stdout")
    assert json.loads(log["data"].strip().splitlines()[-1]) == [value]


async def test_list_runs_paged_and_filtered(api, toy_project):
    ok = [await submit(api, parameters={"steps": 1}, run_name=f"ok-{i}") for i in range(3)]
    bad = await submit(api, entry_point="fail")
    for run in [*ok, bad]:
        await wait_for_state(api, run["id"], TERMINAL)
    status, page = await api("GET", "runs", limit=2)
    assert status == 200 and page["total"] == 4 and len(page["runs"]) == 2
    assert page["runs"][0]["id"] == bad["id"]  # newest first
    _, failed = await api("GET", "runs", state="FAILED")
    assert [r["id"] for r in failed["runs"]] == [bad["id"]]
    _, named = await api("GET", "runs", q="ok-1")
    assert [r["name"] for r in named["runs"]] == ["ok-1"]
    _, by_project = await api("GET", "runs", project="toy", offset=3)
    assert by_project["total"] == 4 and len(by_project["runs"]) == 1


async def test_project_introspection(api, toy_project):
    status, proj = await api("GET", "project", path="toy/train.py")
    assert status == 200, proj
    assert proj["name"] == "toy" and proj["path"] == "toy"
    entry_points = {ep["name"]: ep for ep in proj["entry_points"]}
    assert set(entry_points) == {"main", "fail", "sleep", "args"}
    schema = entry_points["main"]["json_schema"]
    assert schema["properties"]["steps"]["type"] == "integer"
    assert schema["properties"]["lr"]["default"] in (0.1, "0.1")
    assert [c["path"] for c in proj["backend_configs"]] == ["local.yaml"]
    assert proj["backend_configs"][0]["kind"] == "local"


async def test_features_and_schema(api):
    status, features = await api("GET", "features")
    assert status == 200 and features["backends"]["local"]["cancel"] is True
    status, schema = await api("GET", "schema/backend-config")
    assert status == 200 and "Resources" in schema["properties"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"entry_point": "slep"}, "sleep"),  # unknown entry point lists the real ones
        ({"parameters": {"steps": "many"}}, "steps"),
        ({"parameters": {"lr": "fast"}}, "lr"),
        ({"parameters": {"stpes": 3}}, "steps"),  # undeclared, closest match named
        ({"entry_point": "args"}, "value"),  # required parameter missing
        ({"backend_config": "missing.yaml"}, "missing.yaml"),
        ({"overrides": ["Resources.Nodes=two"]}, "Nodes"),
        ({"overrides": ["Resorces.Nodes=2"]}, "Resources"),
        ({"project": "../outside"}, "outside the server's root"),
        ({"project": "toy", "colour": "red"}, "colour"),
    ],
)
async def test_bad_submissions_get_a_specific_400(api, toy_project, body, expected):
    body = {"project": "toy", **body}
    status, err = await api("POST", "runs", body)
    assert status == 400, err
    assert expected in err["message"], err
    _, runs = await api("GET", "runs")
    assert runs["total"] == 0  # nothing was created


async def test_bad_config_file_names_file_key_and_line(api, toy_project):
    (toy_project / "broken.yaml").write_text("Resources:\n  Queue: gpu\n  Nodse: 2\n")
    status, err = await api("POST", "runs", {"project": "toy", "backend_config": "broken.yaml"})
    assert status == 400
    problem = err["problems"][0]
    assert problem["file"].endswith("broken.yaml") and problem["line"] == 3
    assert "Nodes" in problem["message"]


async def test_bad_requests_elsewhere_are_4xx(api, toy_project):
    assert (await api("GET", "runs/doesnotexist"))[0] == 404
    assert (await api("GET", "runs", limit="lots"))[0] == 400
    assert (await api("GET", "runs", state="DONE"))[0] == 400
    run = await submit(api, parameters={"steps": 1})
    await wait_for_state(api, run["id"], TERMINAL)
    assert (await api("GET", f"runs/{run['id']}/logs/stdin"))[0] == 400
    assert (await api("GET", f"runs/{run['id']}/logs/stdout", offset=-1))[0] == 400
    status, err = await api("GET", f"runs/{run['id']}/artifacts/download", path="../../etc/passwd")
    assert status == 400 and "artifact root" in err["message"]
    assert (await api("GET", f"runs/{run['id']}/artifacts/download", path="nope.txt"))[0] == 404
    assert (await api("GET", "project", path="nowhere"))[0] in (400, 404)


async def test_malformed_json_body_is_400(jp_fetch, toy_project):
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("hpcml", "api", "runs", method="POST", body="{not json")
    assert exc.value.code == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "runs"), ("POST", "runs"), ("GET", "features"), ("GET", "project"),
     ("GET", "runs/abc/logs/stdout"), ("POST", "runs/abc/cancel"), ("GET", "runs/abc/metrics")],
)
async def test_unauthenticated_requests_are_rejected(jp_fetch, method, path):
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("hpcml", "api", *path.split("/"), method=method,
                       body="{}" if method == "POST" else None, headers={"Authorization": ""})
    assert exc.value.code == 403


async def test_tracking_token_reaches_job_but_no_record(api, toy_project, hpcml_data, monkeypatch):
    secret = "tok-3f9c2a-very-secret"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", secret)
    run = await submit(api, parameters={"steps": 1})
    run = await wait_for_state(api, run["id"], TERMINAL)
    _, log = await api("GET", f"runs/{run['id']}/logs/stdout")
    assert "SECRET_TOKEN_SET" in log["data"]  # the job got it
    assert secret not in json.dumps(run)
    mlrun = MlflowClient().get_run(run["mlflow_run_id"])
    assert secret not in json.dumps({**mlrun.data.params, **mlrun.data.tags})
    for path in Path(run["run_dir"]).rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret.encode() not in (hpcml_data / "runs.sqlite").read_bytes()


async def test_offline_tracking_syncs_metrics_into_main_store(api, toy_project):
    (toy_project / "offline.yaml").write_text("Local: {}\nTracking:\n  Mode: offline\n")
    run = await submit(api, parameters={"steps": 6, "delay": 0.5}, backend_config="offline.yaml")
    assert run["tracking_mode"] == "offline"
    client = MlflowClient()
    # Metrics reach the main store while the job is still running, not only at the end.
    for _ in range(100):
        live = client.get_metric_history(run["mlflow_run_id"], "loss")
        if live:
            break
        await asyncio.sleep(0.1)
    _, during = await api("GET", f"runs/{run['id']}")
    assert live and during["state"] == "RUNNING"
    run = await wait_for_state(api, run["id"], TERMINAL)
    assert run["state"] == "FINISHED", run
    assert [m.step for m in client.get_metric_history(run["mlflow_run_id"], "loss")] == list(
        range(6)
    )
    assert [a.path for a in client.list_artifacts(run["mlflow_run_id"])] == ["result.txt"]
    assert client.get_run(run["mlflow_run_id"]).info.status == "FINISHED"


async def test_concurrent_cli_and_server_submissions(api, toy_project):
    import sys

    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "jupyterlab_hpcml.cli", "submit", str(toy_project),
            "-P", "steps=1", "--json", stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    server_runs = await asyncio.gather(*(submit(api, parameters={"steps": 1}) for _ in range(4)))
    cli_ids = [json.loads((await p.communicate())[0])["id"] for p in procs]
    ids = {r["id"] for r in server_runs} | set(cli_ids)
    assert len(ids) == 8
    _, listing = await api("GET", "runs", limit=100)
    assert {r["id"] for r in listing["runs"]} == ids
    for run_id in ids:
        assert (await wait_for_state(api, run_id, TERMINAL))["state"] == "FINISHED"
