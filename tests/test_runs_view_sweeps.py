"""The runs tab's rows with sweeps: one row per sweep (its children's counts and state)
among the single runs, in the same order and filters; children are not top-level rows."""
from __future__ import annotations

import time
from pathlib import Path

from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.models import RunRecord, StateChange, SweepDefinition, SweepRecord
from jupyterlab_hpcml.engine.store import RunStore


def run(rid: str, name: str, state: RunState, created: float, **extra: object) -> RunRecord:
    return RunRecord(
        id=rid, name=name, project_path="/p/toy", project_name="toy", entry_point="main",
        command="python train.py", backend="local", state=state, created_at=created,
        state_history=[StateChange(state=RunState.SUBMITTING, at=created),
                       StateChange(state=RunState.RUNNING, at=created + 1)]
        + ([] if state == RunState.RUNNING else [StateChange(state=state, at=created + 2)]),
        **extra,  # type: ignore[arg-type]
    )


def fill(path: Path) -> RunStore:
    """Runs r-old (t-300), r-new (t-100) and sweep s0123456789a (t-200, 'grid lr') with
    three children: FINISHED, FAILED, RUNNING."""
    store = RunStore(path)
    now = time.time()
    store.insert(run("r-old", "old run", RunState.FINISHED, now - 300))
    store.insert(run("r-new", "new run", RunState.FAILED, now - 100))
    store.insert_sweep(SweepRecord(
        id="s0123456789a", name="grid lr", project_path="/p/toy", project_name="toy",
        entry_point="main", backend="local", created_at=now - 200,
        definition=SweepDefinition(parameters={"lr": "0.1,0.01,0.001"}, points=3),
        mlflow_run_id="parent1"))
    for i, state in enumerate((RunState.FINISHED, RunState.FAILED, RunState.RUNNING)):
        store.insert(run(f"c-{i}", f"grid lr {i}", state, now - 199 + i,
                         sweep_id="s0123456789a", sweep_index=i))
    return store


def test_sweep_is_one_row_among_runs_by_submission_time(tmp_path):
    store = fill(tmp_path / "runs.sqlite")
    page = store.rows()
    assert [r["id"] for r in page["rows"]] == ["r-new", "s0123456789a", "r-old"]
    assert page["total"] == 3
    sweep = page["rows"][1]
    assert sweep["kind"] == "sweep" and sweep["name"] == "grid lr"
    assert sweep["counts"] == {"FINISHED": 1, "FAILED": 1, "RUNNING": 1}
    assert sweep["state"] == "RUNNING"  # a child is still active
    assert sweep["mlflow_run_id"] == "parent1" and sweep["archived"] is False
    assert page["rows"][0]["kind"] == "run" and "counts" not in page["rows"][0]

    page = store.rows(descending=False)
    assert [r["id"] for r in page["rows"]] == ["r-old", "s0123456789a", "r-new"]
    page = store.rows(limit=1, offset=1)
    assert [r["id"] for r in page["rows"]] == ["s0123456789a"] and page["total"] == 3


def test_sweep_state_filter_text_and_other_sorts(tmp_path):
    store = fill(tmp_path / "runs.sqlite")
    assert [r["id"] for r in store.rows(states=[RunState.RUNNING])["rows"]] == ["s0123456789a"]
    page = store.rows(states=[RunState.FAILED])
    assert [r["id"] for r in page["rows"]] == ["r-new"] and page["total"] == 1
    assert [r["id"] for r in store.rows(text="grid")["rows"]] == ["s0123456789a"]
    by_name = store.rows(sort="name", descending=False)["rows"]
    assert [r["name"] for r in by_name] == ["grid lr", "new run", "old run"]
    # No duration for a sweep: last, as runs that never started.
    assert store.rows(sort="duration")["rows"][-1]["id"] == "s0123456789a"
    # Archived-only listings have no sweeps.
    assert store.rows(archived=True)["total"] == 0

    # Every child ended: FAILED (one failed); a child's change is the sweep row's change.
    store.transition("c-2", RunState.FINISHED)
    row = store.rows(text="grid")["rows"][0]
    assert row["state"] == "FAILED" and row["counts"] == {"FINISHED": 2, "FAILED": 1}
    assert row["updated_at"] == store.get("c-2").updated_at


async def test_rows_endpoint_lists_sweeps(api, hpcml_data):
    fill(hpcml_data / "runs.sqlite").close()
    status, page = await api("GET", "runs-view/rows")
    assert status == 200 and [r["kind"] for r in page["rows"]] == ["run", "sweep", "run"]
    assert page["rows"][1]["counts"] == {"FINISHED": 1, "FAILED": 1, "RUNNING": 1}
