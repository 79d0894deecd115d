"""The SQLite run store, on real files: API semantics, migrations, and concurrency
across threads and real processes (server, CLI and kernels share one file)."""
from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import pydantic
import pytest

from jupyterlab_hpcml.core.errors import Conflict, HpcmlError, NotFound
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine import store as store_module
from jupyterlab_hpcml.engine.models import RunRecord, StateChange
from jupyterlab_hpcml.engine.store import MIGRATIONS, RunStore, _row, _sql

S = RunState


def make_run(run_id: str, **fields: Any) -> RunRecord:
    data: dict[str, Any] = {
        "id": run_id,
        "name": f"run {run_id}",
        "project_path": "/home/u/proj",
        "project_name": "proj",
        "entry_point": "main",
        "command": "python train.py",
        "backend": "local",
    }
    data.update(fields)
    return RunRecord(**data)


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    s = RunStore(tmp_path / "data" / "runs.sqlite")
    yield s
    s.close()


def raw_rows(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# --------------------------------------------------------------------------- basics


def test_creates_parent_dirs_wal_and_version(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "runs.sqlite"
    s = RunStore(path)
    assert path.exists()
    assert s.schema_version == len(MIGRATIONS)
    assert raw_rows(path, "PRAGMA journal_mode") == [("wal",)]
    s.close()


def test_insert_and_get(store: RunStore) -> None:
    run = make_run("abcd0001", parameters={"lr": "0.1"}, created_at=1000.0)
    store.insert(run)
    got = store.get("abcd0001")
    assert got.model_dump(exclude={"updated_at", "state_history"}) == run.model_dump(
        exclude={"updated_at", "state_history"}
    )
    assert [(c.state, c.at) for c in got.state_history] == [(S.SUBMITTING, 1000.0)]
    assert got.updated_at >= run.created_at


def test_insert_keeps_history_and_ends_it_in_the_state(store: RunStore) -> None:
    history = [StateChange(state=S.SUBMITTING, at=1.0), StateChange(state=S.QUEUED, at=2.0)]
    store.insert(make_run("hist0001", state=S.QUEUED, state_history=history))
    assert store.get("hist0001").state_history == history
    # A history not ending in the record's state gets the state appended.
    store.insert(make_run("hist0002", state=S.RUNNING, state_history=history))
    assert [c.state for c in store.get("hist0002").state_history] == [
        S.SUBMITTING, S.QUEUED, S.RUNNING
    ]


def test_insert_duplicate_is_conflict(store: RunStore) -> None:
    store.insert(make_run("dup00001"))
    with pytest.raises(Conflict):
        store.insert(make_run("dup00001"))


def test_get_by_prefix(store: RunStore) -> None:
    for run_id in ("abcd1111", "abce2222", "abce3333", "zz"):
        store.insert(make_run(run_id))
    assert store.get("abcd").id == "abcd1111"
    assert store.get("abcd11").id == "abcd1111"
    assert store.get("zz").id == "zz"  # exact ids of any length
    with pytest.raises(NotFound, match="ambiguous"):
        store.get("abce")
    with pytest.raises(NotFound, match="at least 4"):
        store.get("abc")
    with pytest.raises(NotFound):
        store.get("nope0000")
    with pytest.raises(NotFound):
        store.get("ABCD")  # ids are case-sensitive


def test_update(store: RunStore) -> None:
    store.insert(make_run("upd00001"))
    before = store.get("upd00001")
    after = store.update("upd00001", backend_job_id="4242", run_dir="/scratch/x", notes=["n"])
    assert (after.backend_job_id, after.run_dir, after.notes) == ("4242", "/scratch/x", ["n"])
    assert after.updated_at > before.updated_at
    assert store.get("upd00001") == after
    # An update that changes nothing does not bump updated_at.
    assert store.update("upd00001", backend_job_id="4242").updated_at == after.updated_at


def test_update_rejects_managed_unknown_and_invalid_fields(store: RunStore) -> None:
    store.insert(make_run("upd00002"))
    for bad in ({"state": S.RUNNING}, {"state_history": []}, {"id": "x"}, {"bogus": 1}):
        with pytest.raises(ValueError):
            store.update("upd00002", **bad)
    with pytest.raises(pydantic.ValidationError):
        store.update("upd00002", exit_code="not a number")
    with pytest.raises(NotFound):
        store.update("missing0", notes=[])
    assert store.get("upd00002").state == S.SUBMITTING


# --------------------------------------------------------------------------- transitions


def test_transition_appends_history_and_sets_fields(store: RunStore) -> None:
    store.insert(make_run("tr000001"))
    queued = store.transition("tr000001", S.QUEUED, message="job 7", backend_job_id="7")
    assert queued is not None and queued.state == S.QUEUED and queued.backend_job_id == "7"
    running = store.transition("tr000001", S.RUNNING)
    done = store.transition("tr000001", S.FINISHED, exit_code=0)
    assert done is not None and done.exit_code == 0
    got = store.get("tr000001")
    assert [(c.state, c.message) for c in got.state_history] == [
        (S.SUBMITTING, None), (S.QUEUED, "job 7"), (S.RUNNING, None), (S.FINISHED, None)
    ]
    assert running is not None and got.started_at == running.updated_at
    assert got.ended_at == done.updated_at == got.updated_at


def test_transition_compare_and_set(store: RunStore) -> None:
    store.insert(make_run("cas00001", state=S.RUNNING))
    # Same state, nothing else changes: not applied.
    assert store.transition("cas00001", S.RUNNING) is None
    # Same state with changed fields: applied, but no history entry.
    applied = store.transition("cas00001", S.RUNNING, backend_job_id="9")
    assert applied is not None and len(applied.state_history) == 1
    # `expect` not matching the current state: not applied.
    assert store.transition("cas00001", S.FINISHED, expect={S.QUEUED}) is None
    assert store.transition("cas00001", S.FINISHED, expect=[S.RUNNING]) is not None
    # Terminal runs stay terminal by default ...
    for state in (S.RUNNING, S.FAILED, S.UNKNOWN, S.CANCELLED):
        assert store.transition("cas00001", state) is None
    assert store.get("cas00001").state == S.FINISHED
    # ... unless the caller explicitly expects a terminal state.
    fixed = store.transition("cas00001", S.FAILED, expect={S.FINISHED}, message="fixed")
    assert fixed is not None and fixed.state == S.FAILED
    with pytest.raises(ValueError):
        store.transition("cas00001", S.RUNNING, expect={S.FAILED}, state_history=[])
    with pytest.raises(NotFound):
        store.transition("missing0", S.RUNNING)


def test_unknown_and_submitting_are_active(store: RunStore) -> None:
    store.insert(make_run("act00001"))
    store.insert(make_run("act00002", state=S.UNKNOWN))
    store.insert(make_run("act00003", state=S.FINISHED))
    store.insert(make_run("act00004", state=S.QUEUED))
    assert {r.id for r in store.active()} == {"act00001", "act00002", "act00004"}
    # UNKNOWN is non-terminal: the poller may resolve it.
    assert store.transition("act00002", S.RUNNING) is not None


def test_columns_always_match_the_record(store: RunStore) -> None:
    store.insert(make_run("col00001", mlflow_experiment_name="exp", mlflow_experiment_id="3"))
    store.update("col00001", backend_job_id="55", mlflow_experiment_name="exp2")
    store.transition("col00001", S.RUNNING)
    (row,) = raw_rows(store.path, "SELECT * FROM runs")
    record = store.get("col00001").model_copy(update={"state_history": []})
    assert row == tuple(_row(record).values())


# --------------------------------------------------------------------------- list


@pytest.fixture
def listed(store: RunStore) -> RunStore:
    runs = [
        make_run("r01", created_at=1.0, project_name="alpha", project_path="/p/alpha",
                 mlflow_experiment_name="exp-a", mlflow_experiment_id="1", entry_point="train"),
        make_run("r02", created_at=2.0, project_name="alpha", project_path="/p/alpha",
                 mlflow_experiment_name="exp-a", mlflow_experiment_id="1", state=S.RUNNING),
        make_run("r03", created_at=3.0, project_name="beta", project_path="/p/beta",
                 mlflow_experiment_name="exp-b", mlflow_experiment_id="2", state=S.FINISHED,
                 name="Big_Sweep 100%"),
        make_run("r04", created_at=4.0, project_name="beta", project_path="/p/other/beta",
                 state=S.FAILED, backend_job_id="slurm-777"),
        make_run("r05", created_at=4.0, project_name="gamma", project_path="/p/gamma"),
    ]
    for run in runs:
        store.insert(run)
    return store


def ids(result: tuple[list[RunRecord], int]) -> tuple[list[str], int]:
    page, total = result
    return [r.id for r in page], total


def test_list_newest_first_with_id_tiebreak(listed: RunStore) -> None:
    assert ids(listed.list()) == (["r04", "r05", "r03", "r02", "r01"], 5)
    page, _ = listed.list()
    assert all(r.state_history for r in page)  # history attached to list results too


def test_list_paging_and_total(listed: RunStore) -> None:
    assert ids(listed.list(limit=2)) == (["r04", "r05"], 5)
    assert ids(listed.list(limit=2, offset=2)) == (["r03", "r02"], 5)
    assert ids(listed.list(limit=2, offset=4)) == (["r01"], 5)
    assert ids(listed.list(limit=2, offset=10)) == ([], 5)
    assert ids(listed.list(limit=0)) == ([], 5)
    with pytest.raises(ValueError):
        listed.list(limit=-1)


def test_list_filters(listed: RunStore) -> None:
    assert ids(listed.list(states=[S.RUNNING, S.FAILED])) == (["r04", "r02"], 2)
    assert ids(listed.list(states=[])) == ([], 0)
    assert ids(listed.list(project="beta")) == (["r04", "r03"], 2)
    assert ids(listed.list(project="/p/other/beta")) == (["r04"], 1)
    assert ids(listed.list(experiment="exp-a")) == (["r02", "r01"], 2)
    assert ids(listed.list(experiment="2")) == (["r03"], 1)
    assert ids(listed.list(project="alpha", states={S.SUBMITTING})) == (["r01"], 1)
    assert ids(listed.list(project="alpha", limit=1, offset=1)) == (["r01"], 2)


def test_list_text_search(listed: RunStore) -> None:
    assert ids(listed.list(text="big_sweep")) == (["r03"], 1)  # case-insensitive, name
    assert ids(listed.list(text="100%")) == (["r03"], 1)  # LIKE wildcards are literal
    assert ids(listed.list(text="_"))[1] == 1
    assert ids(listed.list(text="R05")) == (["r05"], 1)  # id
    assert ids(listed.list(text="TRAIN")) == (["r01"], 1)  # entry point
    assert ids(listed.list(text="GAMM")) == (["r05"], 1)  # project name
    assert ids(listed.list(text="777")) == (["r04"], 1)  # backend job id
    assert ids(listed.list(text="nothing like it")) == ([], 0)


def test_changed_since(store: RunStore) -> None:
    store.insert(make_run("chg00001"))
    store.insert(make_run("chg00002"))
    mark = store.get("chg00002").updated_at
    assert store.changed_since(mark) == []
    store.transition("chg00001", S.RUNNING)
    assert [r.id for r in store.changed_since(mark)] == ["chg00001"]
    assert [r.id for r in store.changed_since(0)] == ["chg00002", "chg00001"]  # oldest change first
    assert [r.id for r in store.changed_since(0, limit=1)] == ["chg00002"]


def test_changed_since_within_one_clock_tick(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A frozen clock: every write must still be strictly after the previous one.
    monkeypatch.setattr(store_module.time, "time", lambda: 5000.0)
    store.insert(make_run("tick0001"))
    store.insert(make_run("tick0002"))
    seen = store.changed_since(0)
    store.update("tick0001", notes=["again"])
    store.transition("tick0002", S.QUEUED)
    later = store.changed_since(seen[-1].updated_at)
    assert [r.id for r in later] == ["tick0001", "tick0002"]
    stamps = [r.updated_at for r in later]
    assert seen[-1].updated_at < stamps[0] < stamps[1]


# --------------------------------------------------------------------------- sync state


def test_sync_state(store: RunStore) -> None:
    store.insert(make_run("syn00001"))
    assert store.get_sync_state("syn00001") == {}
    store.set_sync_state("syn00001", {"metrics/loss": 120, "params": True})
    assert store.get_sync_state("syn00001") == {"metrics/loss": 120, "params": True}
    store.set_sync_state("syn00001", {"metrics/loss": 240})
    assert store.get_sync_state("syn00001") == {"metrics/loss": 240}
    with pytest.raises(NotFound):
        store.set_sync_state("missing0", {})


# --------------------------------------------------------------------------- migrations


def test_reopen_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    s = RunStore(path)
    s.insert(make_run("keep0001"))
    s.transition("keep0001", S.RUNNING)
    s.close()
    again = RunStore(path)
    assert again.schema_version == len(MIGRATIONS)
    assert [c.state for c in again.get("keep0001").state_history] == [S.SUBMITTING, S.RUNNING]
    again.close()


def test_existing_v1_file_is_migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "runs.sqlite"
    v1 = RunStore(path)
    v1.insert(make_run("mig00001", mlflow_run_id="mlf-1"))
    v1.close()
    # A later release adds a derived column, backfilled from the record JSON.
    v2 = _sql(
        "ALTER TABLE runs ADD COLUMN mlflow_run_id TEXT",
        "UPDATE runs SET mlflow_run_id = json_extract(record, '$.mlflow_run_id')",
    )
    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, v2])
    s = RunStore(path)
    assert s.schema_version == len(MIGRATIONS) + 1
    assert s.get("mig00001").mlflow_run_id == "mlf-1"
    assert raw_rows(path, "SELECT mlflow_run_id FROM runs") == [("mlf-1",)]
    s.close()


def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "runs.sqlite"
    RunStore(path).insert(make_run("mig00002"))
    broken = _sql("CREATE TABLE extra (x INTEGER)", "THIS IS NOT SQL")
    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, broken])
    with pytest.raises(sqlite3.OperationalError):
        RunStore(path)
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    s = RunStore(path)
    assert s.schema_version == len(MIGRATIONS)
    assert raw_rows(path, "SELECT name FROM sqlite_master WHERE name = 'extra'") == []
    assert s.get("mig00002").id == "mig00002"
    s.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    RunStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(HpcmlError, match="newer"):
        RunStore(path)


def test_history_is_append_only(store: RunStore) -> None:
    store.insert(make_run("app00001"))
    conn = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE state_history SET state = 'FAILED'")
    conn.close()


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    s = RunStore(tmp_path / "runs.sqlite")
    s.close()
    with pytest.raises(HpcmlError, match="closed"):
        s.list()


# --------------------------------------------------------------------------- threads


def test_threads_share_one_store(store: RunStore) -> None:
    errors: list[str] = []
    wins: list[str] = []
    store.insert(make_run("shared00", state=S.RUNNING))
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        try:
            barrier.wait()
            if store.transition("shared00", S.FINISHED, expect={S.RUNNING}) is not None:
                wins.append(f"t{n}")
            for i in range(50):
                run_id = f"t{n}-{i:03d}"
                store.insert(make_run(run_id))
                store.transition(run_id, S.RUNNING)
                store.list(limit=10)
        except Exception:  # noqa: BLE001 - reported to the main thread
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(wins) == 1
    assert store.list(states=[S.RUNNING], limit=0)[1] == 400
    assert [c.state for c in store.get("shared00").state_history].count(S.FINISHED) == 1


# --------------------------------------------------------------------------- processes
# Workers live at module level so that spawned processes can import them.


def _insert_worker(path: str, worker: int, count: int, barrier: Any, out: Any) -> None:
    errors: list[str] = []
    try:
        barrier.wait()
        store = RunStore(Path(path))  # concurrent first opens of a fresh file
        for i in range(count):
            run_id = f"p{worker}-{i:04d}"
            store.insert(make_run(run_id, created_at=time.time()))
            store.transition(run_id, S.QUEUED, backend_job_id=str(i))
            store.transition(run_id, S.RUNNING)
            store.transition(run_id, S.FINISHED, exit_code=0)
        store.close()
    except Exception:  # noqa: BLE001 - reported to the parent
        errors.append(traceback.format_exc())
    out.put((worker, errors))


def _race_worker(path: str, worker: int, run_ids: list[str], barrier: Any, out: Any) -> None:
    won: list[str] = []
    errors: list[str] = []
    try:
        store = RunStore(Path(path))
        barrier.wait()
        for run_id in run_ids:
            if store.transition(run_id, S.FINISHED, expect={S.RUNNING}, message=f"w{worker}"):
                won.append(run_id)
        store.close()
    except Exception:  # noqa: BLE001 - reported to the parent
        errors.append(traceback.format_exc())
    out.put((won, errors))


def _collect(procs: list[Any], out: Any) -> list[Any]:
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return results


def test_processes_insert_and_transition_while_listing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    path = tmp_path / "runs.sqlite"
    workers, count = 4, 200
    barrier, out = ctx.Barrier(workers), ctx.Queue()
    procs = [
        ctx.Process(target=_insert_worker, args=(str(path), w, count, barrier, out))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    parent = RunStore(path)
    listings = 0
    while any(p.is_alive() for p in procs):
        page, total = parent.list(limit=50)
        assert len(page) == min(50, total)
        parent.active()
        listings += 1
    results = _collect(procs, out)
    assert [e for _, errors in results for e in errors] == []
    runs, total = parent.list(limit=10_000)
    assert total == workers * count and len(runs) == total
    assert all(r.state == S.FINISHED and r.exit_code == 0 for r in runs)
    assert all(len(r.state_history) == 4 for r in runs)
    assert parent.active() == []
    assert parent.schema_version == len(MIGRATIONS)
    print(f"\nparent listed {listings} times while {workers} processes wrote")
    parent.close()


def test_processes_racing_transition_one_wins(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    run_ids = [f"race{i:04d}" for i in range(100)]
    for run_id in run_ids:
        store.insert(make_run(run_id, state=S.RUNNING))
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_race_worker, args=(str(path), w, run_ids, barrier, out))
        for w in range(2)
    ]
    for p in procs:
        p.start()
    results = _collect(procs, out)
    assert [e for _, errors in results for e in errors] == []
    won = [run_id for w, _ in results for run_id in w]
    assert sorted(won) == run_ids  # every run won exactly once
    for run_id in run_ids:
        history = store.get(run_id).state_history
        assert [c.state for c in history] == [S.RUNNING, S.FINISHED]
    store.close()


@pytest.mark.parametrize("ref", ["abcd\U0010ffff", "t12\u00e9", "ab c"])
def test_id_prefixes_no_id_can_have_are_not_found(store: RunStore, ref: str) -> None:
    """A prefix ending in the last code point has no successor (it crashed the range)."""
    from jupyterlab_hpcml.engine.schedule_store import ScheduleStore

    store.insert(make_run("abcd12345678"))
    for get in (store.get, store.get_sweep, ScheduleStore(store).get):
        with pytest.raises(NotFound):
            get(ref)
