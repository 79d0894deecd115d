"""Listings served from the stored JSON text, the poller's cached active runs, and the
server's frozen heap: each the same answer as before, with less work per request."""
from __future__ import annotations

import gc
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.models import CodeIdentity, RunRecord, StateChange
from jupyterlab_hpcml.engine.store import RunStore

S = RunState


def make_run(run_id: str, **fields: Any) -> RunRecord:
    data: dict[str, Any] = {
        "id": run_id, "name": f"run {run_id}", "project_path": "/home/u/proj",
        "project_name": "proj", "entry_point": "main", "command": "python train.py",
        "backend": "ssh",
    }
    data.update(fields)
    return RunRecord(**data)


def varied_runs(project: str = "/home/u/proj") -> list[RunRecord]:
    """Runs with every kind of field filled: quotes, non-ASCII, nested config, history."""
    return [
        make_run("lst00001", project_path=project, name='quo"te \\ ü 😀 \n',
                 parameters={"lr": "0.1", "label": "a,b'c\"d"},
                 backend_config={"SSH": {"Hostname": "h", "Port": 22}, "Resources": {"Nodes": 2}},
                 config_overrides={"Resources.Runtime": "1h"}, resources={"Memory": 1.5e9},
                 tracking_mode="offline", backend_job_id="123_4", connection="ssh:u@h:22",
                 code=CodeIdentity(git_commit="abc", content_hash="f" * 64),
                 notes=["GPUs ignored"], mlflow_run_id="m1", exit_code=None,
                 state=S.QUEUED,
                 state_history=[StateChange(state=S.SUBMITTING, at=1.5),
                                StateChange(state=S.QUEUED, at=2.25, message='said "queued"')]),
        make_run("lst00002", project_path=project, state=S.SUBMITTING),
        make_run("lst00003", project_path="/elsewhere/p", state=S.SUBMITTING),
    ]


def ended(store: RunStore) -> None:
    """lst00002 runs and ends; lst00001 is archived (listed with archived=None)."""
    store.transition("lst00002", S.RUNNING, message="started")
    store.transition("lst00002", S.FAILED, message="exit 3", exit_code=3)
    store.update("lst00001", archived=True)


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    s = RunStore(tmp_path / "runs.sqlite")
    yield s
    s.close()


# --------------------------------------------------------------------------- store


def test_list_json_is_the_models_json(store: RunStore) -> None:
    for run in varied_runs():
        store.insert(run)
    ended(store)
    records, total = store.list(archived=None)
    texts, total_json = store.list_json(archived=None)
    assert total_json == total == 3
    assert [t.id for t in texts] == [r.id for r in records]
    for text, record in zip(texts, records, strict=True):
        assert json.loads(text.json) == record.model_dump(mode="json")
        assert (text.started_at, text.ended_at) == (record.started_at, record.ended_at)
        assert text.project_path == record.project_path
    failed = next(t for t in texts if t.id == "lst00002")
    assert failed.started_at is not None and failed.ended_at is not None
    # Filters and paging as list()
    assert [t.id for t in store.list_json(states=[S.FAILED])[0]] == ["lst00002"]
    assert [t.id for t in store.list_json(archived=None, limit=1, offset=1)[0]] == [
        r.id for r in store.list(archived=None, limit=1, offset=1)[0]]
    assert store.list_json(limit=1)[1] == 2  # archived left out by default


def test_changed_since_json_is_the_models_json(store: RunStore) -> None:
    for run in varied_runs():
        store.insert(run)
    mark = store.get("lst00003").updated_at
    ended(store)
    texts = store.changed_since_json(mark)
    records = store.changed_since(mark)
    assert [t.id for t in texts] == [r.id for r in records] == ["lst00002", "lst00001"]
    for text, record in zip(texts, records, strict=True):
        assert json.loads(text.json) == record.model_dump(mode="json")


def test_a_record_written_by_another_model_shape_is_listed_with_its_defaults(
        store: RunStore) -> None:
    """A record stored before fields were added (no shape mark): the listing goes
    through the model, so it has every field, with the defaults, as get() gives it."""
    store.insert(make_run("old00001", state=S.FINISHED))
    old = make_run("old00001", state=S.FINISHED).model_dump_json(
        exclude={"state_history", "archived", "notes"})
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("UPDATE runs SET record = ? WHERE id = 'old00001'", (old,))
    conn.close()
    (text,), _ = store.list_json()
    data = json.loads(text.json)
    assert data["archived"] is False and data["notes"] == []
    assert data == store.get("old00001").model_dump(mode="json")


def test_active_reparses_only_what_changed(store: RunStore, tmp_path: Path) -> None:
    """The poller asks every 2 s: unchanged runs are not parsed again."""
    for i in range(5):
        store.insert(make_run(f"act0000{i}", state=S.QUEUED))
    first = {r.id: r for r in store.active()}
    second = {r.id: r for r in store.active()}
    assert all(second[i] is first[i] for i in first)  # the same objects: nothing re-parsed
    # Changed by another process (its own store on the same file): only that run is new.
    other = RunStore(tmp_path / "runs.sqlite")
    try:
        other.transition("act00002", S.RUNNING, message="started")
        other.transition("act00004", S.FINISHED, exit_code=0)
        other.update("act00001", notes=["x"])
    finally:
        other.close()
    third = {r.id: r for r in store.active()}
    assert list(third) == ["act00003", "act00002", "act00001", "act00000"]  # newest first
    assert third["act00003"] is first["act00003"] and third["act00000"] is first["act00000"]
    assert third["act00002"] is not first["act00002"]
    assert third["act00002"].state == S.RUNNING
    assert [c.state for c in third["act00002"].state_history] == [S.QUEUED, S.RUNNING]
    assert third["act00001"].notes == ["x"]
    assert first["act00002"].state == S.QUEUED  # what an earlier caller holds is unchanged
    for record in third.values():
        assert record == store.get(record.id)


# --------------------------------------------------------------------------- REST


async def test_runs_pages_are_the_models_json(api, jp_serverapp, jp_root_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    engine = jp_serverapp.web_app.settings["hpcml_engine"]
    project = str(jp_root_dir.resolve() / "proj")
    for run in varied_runs(project):
        engine.store.insert(run)
    ended(engine.store)
    # All ended, so that the server's poller changes nothing between two reads.
    engine.store.transition("lst00001", S.CANCELLED, message="cancelled")
    engine.store.transition("lst00003", S.FINISHED, exit_code=0)

    resolved: list[Path] = []
    resolve = Path.resolve

    def counting(self: Path, strict: bool = False) -> Path:
        resolved.append(self)
        return resolve(self, strict=strict)

    monkeypatch.setattr(Path, "resolve", counting)
    status, page = await api("GET", "runs", archived="true", limit="50")
    assert status == 200
    # The server root is resolved once, not twice per run (it was 2 per run listed).
    assert len(resolved) <= 1
    monkeypatch.undo()

    records, total = engine.store.list(archived=None)
    assert page["total"] == total == 3
    expected = []
    for record in records:
        data = record.model_dump(mode="json")
        data.update(started_at=record.started_at, ended_at=record.ended_at, upload_progress=None,
                    staging_progress=None,
                    project_relpath="proj" if record.project_path == project
                    else record.project_path)
        expected.append(data)
    assert page["runs"] == expected
    status, one = await api("GET", f"runs/{records[0].id}")
    assert status == 200 and one == expected[0]
    # The change feed the lab polls: the same objects.
    status, changed = await api("GET", "runs", since="0")
    assert status == 200 and changed["total"] == 3
    assert sorted(changed["runs"], key=lambda r: r["id"]) == sorted(expected, key=lambda r: r["id"])


async def test_the_server_freezes_its_heap_after_start_up(jp_serverapp) -> None:
    """Objects alive after start-up are kept out of full collections (gc.freeze), and
    given back to the collector when the extension stops."""
    app = jp_serverapp.extension_manager.extension_apps["jupyterlab_hpcml"]
    (hpcml,) = app
    before = gc.get_freeze_count()
    await hpcml._start_jupyter_server_extension(jp_serverapp)
    try:
        assert gc.get_freeze_count() > before
    finally:
        hpcml.heap.stop()
    assert gc.get_freeze_count() == 0


# Run in a process of its own: in the test process (millions of objects, frozen ones freed
# as earlier tests' objects die) the freeze count moves both ways, and each full
# collection of the settler takes seconds.
LATER_IMPORTS = """
import asyncio, gc, sys, types
from jupyterlab_hpcml import heap

heap.CHECK_INTERVAL = 0.05

async def main():
    settler = heap.HeapSettler()
    settler.start()
    frozen = gc.get_freeze_count()
    kept = [[] for _ in range(1000)]  # what the imports define (classes, functions, ...)
    for i in range(heap.NEW_MODULES):  # as an import of a package would add them
        sys.modules[f"hpcml_test_mod{i}"] = types.ModuleType(f"m{i}")
    for _ in range(200):
        if gc.get_freeze_count() > frozen:
            break
        await asyncio.sleep(0.05)
    later = gc.get_freeze_count()
    settler.stop()
    print(frozen, later, gc.get_freeze_count(), len(kept))

asyncio.run(main())
"""


def test_later_imports_are_frozen_too() -> None:
    """MLflow and the backends' libraries are imported on first use, after start-up."""
    out = subprocess.run([sys.executable, "-c", LATER_IMPORTS], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    frozen, later, stopped, kept = map(int, out.split())
    assert frozen > 0 and later >= frozen + kept, out  # frozen again after the imports
    assert stopped == 0, out
