"""The runs-view endpoints (handlers/runs_view.py) on the real server with the extension."""
from __future__ import annotations

import time
from pathlib import Path

from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.models import RunRecord, StateChange
from jupyterlab_hpcml.engine.store import RunStore

from .conftest import TERMINAL, wait_for_state


def fill(data: Path) -> list[str]:
    """Three ended runs (the poller leaves them alone): b FINISHED after 30 s, a FAILED after
    10 s, c CANCELLED before it started (no job id)."""
    store = RunStore(data / "runs.sqlite")
    now = time.time()
    specs = [
        ("r-b", "bravo", RunState.FINISHED, "101", [(RunState.RUNNING, now - 100),
                                                     (RunState.FINISHED, now - 70)]),
        ("r-a", "Alpha", RunState.FAILED, "102", [(RunState.RUNNING, now - 20),
                                                 (RunState.FAILED, now - 10)]),
        ("r-c", "charlie", RunState.CANCELLED, None, [(RunState.CANCELLED, now - 5)]),
    ]
    for i, (rid, name, state, job, history) in enumerate(specs):
        store.insert(RunRecord(
            id=rid, name=name, project_path="/p/toy", project_name="toy",
            entry_point="main", command="python train.py", backend="local", state=state,
            backend_job_id=job, created_at=now - 200 + i,
            state_history=[StateChange(state=RunState.SUBMITTING, at=now - 200 + i)]
            + [StateChange(state=s, at=at) for s, at in history],
        ))
    store.close()
    return [s[0] for s in specs]


async def test_rows_sorted_filtered_and_paged(api, hpcml_data):
    fill(hpcml_data)
    status, page = await api("GET", "runs-view/rows")
    assert status == 200 and page["total"] == 3
    assert [r["id"] for r in page["rows"]] == ["r-c", "r-a", "r-b"]  # newest first
    row = page["rows"][2]
    assert row["state"] == "FINISHED" and row["backend_job_id"] == "101"
    assert row["ended_at"] - row["started_at"] == 30
    assert page["cursor"] == max(r["updated_at"] for r in page["rows"])

    _, page = await api("GET", "runs-view/rows", sort="name", order="asc")
    assert [r["name"] for r in page["rows"]] == ["Alpha", "bravo", "charlie"]
    _, page = await api("GET", "runs-view/rows", sort="duration", order="desc")
    assert [r["id"] for r in page["rows"]] == ["r-b", "r-a", "r-c"]  # never started: last
    _, page = await api("GET", "runs-view/rows", sort="job_id", order="asc")
    assert [r["id"] for r in page["rows"]] == ["r-b", "r-a", "r-c"]  # no job id: last

    _, page = await api("GET", "runs-view/rows", state="FAILED,CANCELLED", sort="name", order="asc")
    assert page["total"] == 2 and [r["id"] for r in page["rows"]] == ["r-a", "r-c"]
    _, page = await api("GET", "runs-view/rows", q="rav")
    assert [r["id"] for r in page["rows"]] == ["r-b"]
    _, page = await api("GET", "runs-view/rows", sort="name", order="asc", limit=1, offset=1)
    assert page["total"] == 3 and [r["name"] for r in page["rows"]] == ["bravo"]


async def test_rows_reject_bad_arguments(api, hpcml_data):
    status, err = await api("GET", "runs-view/rows", sort="colour")
    assert status == 400 and err["problems"][0]["key"] == "sort"
    status, err = await api("GET", "runs-view/rows", order="up")
    assert status == 400 and err["problems"][0]["key"] == "order"
    status, err = await api("GET", "runs-view/rows", limit=0)
    assert status == 400
    status, err = await api("GET", "runs-view/rows", state="DONE")
    assert status == 400 and err["problems"][0]["key"] == "state"
    status, err = await api("GET", "runs-view/metrics")
    assert status == 400 and err["problems"][0]["key"] == "run"


async def test_latest_metrics_and_histories_of_several_runs(api, toy_project):
    ids = []
    for steps in (3, 5):
        status, run = await api("POST", "runs", {"project": "toy", "parameters": {"steps": steps}})
        assert status == 201, run
        ids.append((await wait_for_state(api, run["id"], TERMINAL))["id"])

    status, latest = await api("GET", "runs-view/metrics", run=",".join([*ids, "nope-nope"]))
    assert status == 200
    assert latest["metrics"] == {ids[0]: {"loss": 1 / 3}, ids[1]: {"loss": 0.2}}

    status, hist = await api("GET", "runs-view/histories", run=",".join(ids), max_points=4)
    assert status == 200
    first, second = hist["runs"]
    assert first["id"] == ids[0] and first["error"] is None
    assert [m["key"] for m in first["metrics"]] == ["loss"]
    assert first["metrics"][0]["total"] == 3 and len(first["metrics"][0]["points"]) == 3
    assert second["metrics"][0]["total"] == 5 and len(second["metrics"][0]["points"]) <= 4
    # spikes survive downsampling: the bucket min/max keep the extremes
    assert max(p["max"] for p in second["metrics"][0]["points"]) == 1.0

    status, hist = await api("GET", "runs-view/histories", run="nope-nope")
    assert status == 200 and hist["runs"][0]["error"]


async def test_histories_match_the_single_metric_endpoint(api, toy_project):
    """The SQL fast path answers exactly what MLflow's API (GET runs/{id}/metrics/{key}) does."""
    status, run = await api("POST", "runs", {"project": "toy", "parameters": {"steps": 30}})
    assert status == 201, run
    run = await wait_for_state(api, run["id"], TERMINAL)
    for x in ("step", "time"):
        for max_points in (1000, 7):
            _, many = await api(
                "GET", "runs-view/histories", run=run["id"], max_points=max_points, x=x
            )
            _, one = await api("GET", f"runs/{run['id']}/metrics/loss", max_points=max_points, x=x)
            assert many["runs"][0]["metrics"] == [one], (x, max_points)
