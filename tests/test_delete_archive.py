"""Deleting and archiving runs, on every face: REST (real server), CLI (real subprocesses),
the Python API and the magics, over real local runs and the real MLflow store."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.models import RunRecord
from jupyterlab_hpcml.engine.store import MIGRATIONS, RunStore

from .conftest import TERMINAL, submit_run, wait_for_state
from .test_cli import hpcml
from .test_cli import project as project  # the CLI tests' fixture (the alias marks it used)

# `fail` with code=0 is a quick run that ends FINISHED (no MLflow import in the job).
QUICK = {"entry_point": "fail", "parameters": {"code": 0}}


async def ended_run(api, **body) -> dict:
    run = await submit_run(api, **{**QUICK, **body})
    # A generous bound: the suite shares two CPUs with other work.
    return await wait_for_state(api, run["id"], TERMINAL, timeout=300)


def history_rows(data: Path, run_id: str) -> int:
    conn = sqlite3.connect(data / "runs.sqlite")
    try:
        return conn.execute("SELECT COUNT(*) FROM state_history WHERE run_id = ?",
                            (run_id,)).fetchone()[0]
    finally:
        conn.close()


def age(path: Path, seconds: float = 7200) -> None:
    """Make a file look written ``seconds`` ago (past the snapshot manifests' grace)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


# --------------------------------------------------------------------------- REST: delete


async def test_delete_removes_record_history_and_run_dir_keeps_mlflow_run(api, toy_project,
                                                                         hpcml_data):
    run = await ended_run(api)
    assert run["state"] == "FINISHED"
    run_dir = Path(run["run_dir"])
    assert run_dir.is_dir() and history_rows(hpcml_data, run["id"]) >= 2

    status, result = await api("DELETE", f"runs/{run['id']}")
    assert status == 200, result
    assert result["id"] == run["id"] and result["run_dir_removed"] is True
    assert result["mlflow_run_deleted"] is False
    assert any(run["mlflow_run_id"] in note for note in result["kept"])

    status, body = await api("GET", f"runs/{run['id']}")
    assert status == 404 and "message" in body
    assert not run_dir.exists()
    assert history_rows(hpcml_data, run["id"]) == 0
    status, listing = await api("GET", "runs", archived="true")
    assert run["id"] not in [r["id"] for r in listing["runs"]]
    # MLflow is the user's record: kept unless asked.
    assert MlflowClient().get_run(run["mlflow_run_id"]).info.lifecycle_stage == "active"

    status, body = await api("DELETE", f"runs/{run['id']}")
    assert status == 404 and "message" in body


async def test_delete_mlflow_soft_deletes_the_mlflow_run(api, toy_project, hpcml_data):
    run = await ended_run(api)
    status, result = await api("DELETE", f"runs/{run['id'][:8]}", delete_mlflow="true")
    assert status == 200, result
    assert result["mlflow_run_deleted"] is True and result["id"] == run["id"]
    assert MlflowClient().get_run(run["mlflow_run_id"]).info.lifecycle_stage == "deleted"


async def test_active_run_is_refused_until_cancelled(api, toy_project, hpcml_data):
    run = await submit_run(api, entry_point="sleep", parameters={"seconds": 300})
    run = await wait_for_state(api, run["id"], {"RUNNING"})
    status, body = await api("DELETE", f"runs/{run['id']}", delete_mlflow="true")
    assert status == 409 and "cancel" in body["message"], body
    status, body = await api("POST", f"runs/{run['id']}/archive")
    assert status == 409 and "message" in body
    # Nothing was touched.
    assert Path(run["run_dir"]).is_dir()
    assert MlflowClient().get_run(run["mlflow_run_id"]).info.lifecycle_stage == "active"
    status, again = await api("GET", f"runs/{run['id']}")
    assert status == 200 and again["state"] == "RUNNING"

    status, _ = await api("POST", f"runs/{run['id']}/cancel")
    assert status == 200
    await wait_for_state(api, run["id"], {"CANCELLED"})
    status, result = await api("DELETE", f"runs/{run['id']}")
    assert status == 200 and result["run_dir_removed"] is True


async def test_bad_ids_and_arguments_are_json_errors(api, hpcml_data):
    for method, path in (("DELETE", "runs/nosuchrun"), ("POST", "runs/nosuchrun/archive"),
                         ("POST", "runs/nosuchrun/unarchive")):
        status, body = await api(method, path)
        assert status == 404 and "nosuchrun" in body["message"], (method, path, body)
    status, body = await api("DELETE", "runs/nosuchrun", delete_mlflow="maybe")
    assert status == 400 and body["problems"][0]["key"] == "delete_mlflow"
    for path in ("runs", "runs-view/rows"):
        status, body = await api("GET", path, archived="yes")
        assert status == 400 and body["problems"][0]["key"] == "archived", body


async def test_shared_snapshot_is_kept_and_the_other_run_reruns(api, toy_project, hpcml_data):
    first = await ended_run(api)
    status, second = await api("POST", f"runs/{first['id']}/rerun", {})
    assert status == 201
    second = await wait_for_state(api, second["id"], TERMINAL)
    assert second["snapshot_id"] == first["snapshot_id"]
    manifest = hpcml_data / "snapshots" / f"{first['snapshot_id']}.json"
    age(manifest)

    status, result = await api("DELETE", f"runs/{first['id']}")
    assert status == 200 and result["snapshot_removed"] is False
    assert manifest.is_file()
    status, third = await api("POST", f"runs/{second['id']}/rerun", {})
    assert status == 201, third
    third = await wait_for_state(api, third["id"], TERMINAL)
    assert third["state"] == "FINISHED" and third["snapshot_id"] == first["snapshot_id"]

    status, result = await api("DELETE", f"runs/{second['id']}")
    assert status == 200 and result["snapshot_removed"] is False
    # The last run made from it takes the manifest along (the file contents stay shared).
    status, result = await api("DELETE", f"runs/{third['id']}")
    assert status == 200 and result["snapshot_removed"] is True
    assert not manifest.exists()
    assert any((hpcml_data / "objects").rglob("*"))


async def test_recent_manifest_is_kept_for_submissions_in_flight(api, toy_project, hpcml_data):
    run = await ended_run(api)
    status, result = await api("DELETE", f"runs/{run['id']}")
    assert status == 200 and result["snapshot_removed"] is False
    assert (hpcml_data / "snapshots" / f"{run['snapshot_id']}.json").is_file()


async def test_only_the_runs_own_directory_is_removed(api, hpcml_data, tmp_path):
    """A cluster's run directory is kept and reported; a local record naming a folder that is
    not the backend's `<work dir>/<run id>` (an edited record) does not get it removed."""
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.txt").write_text("keep me")
    store = RunStore(hpcml_data / "runs.sqlite")
    for rid, backend, connection, run_dir in (
        ("remote01", "ssh", "ssh:alice@cluster", "/scratch/alice/hpcml/remote01"),
        ("local001", "local", None, str(outside)),
    ):
        store.insert(RunRecord(id=rid, name=rid, project_path="/p", project_name="p",
                               entry_point="main", command="true", backend=backend,
                               connection=connection, run_dir=run_dir,
                               state=RunState.FINISHED))
    store.close()

    status, result = await api("DELETE", "runs/remote01")
    assert status == 200 and result["run_dir_removed"] is False
    assert result["kept"] == ["run directory kept on ssh:alice@cluster: "
                              "/scratch/alice/hpcml/remote01"]
    status, result = await api("DELETE", "runs/local001")
    assert status == 200 and result["run_dir_removed"] is False
    assert (outside / "data.txt").read_text() == "keep me"
    status, listing = await api("GET", "runs", archived="true")
    assert listing["total"] == 0


# --------------------------------------------------------------------------- REST: archive


async def test_archive_hides_from_listings_and_unarchive_restores(api, toy_project, hpcml_data):
    kept = await ended_run(api, run_name="kept")
    hidden = await ended_run(api, run_name="hidden")

    async def listed(path: str, key: str, **params) -> list[str]:
        status, body = await api("GET", path, **params)
        assert status == 200, body
        return [r["id"] for r in body[key]]

    status, archived = await api("POST", f"runs/{hidden['id']}/archive")
    assert status == 200 and archived["archived"] is True
    assert archived["updated_at"] > hidden["updated_at"]  # live views hear of it

    assert await listed("runs", "runs") == [kept["id"]]
    assert await listed("runs", "runs", archived="true") == [hidden["id"], kept["id"]]
    assert await listed("runs", "runs", archived="only") == [hidden["id"]]
    assert await listed("runs-view/rows", "rows") == [kept["id"]]
    status, page = await api("GET", "runs-view/rows", archived="true")
    assert {r["id"]: r["archived"] for r in page["rows"]} == {hidden["id"]: True,
                                                              kept["id"]: False}
    assert page["total"] == 2
    # Still readable by id, and reported to `since` pollers with its flag.
    status, one = await api("GET", f"runs/{hidden['id']}")
    assert status == 200 and one["archived"] is True
    changed = await listed("runs", "runs", since=str(hidden["updated_at"]))
    assert changed == [hidden["id"]]

    status, restored = await api("POST", f"runs/{hidden['id']}/unarchive")
    assert status == 200 and restored["archived"] is False
    assert await listed("runs", "runs") == [hidden["id"], kept["id"]]
    assert await listed("runs-view/rows", "rows") == [hidden["id"], kept["id"]]


# --------------------------------------------------------------------------- store


def test_a_store_from_before_archiving_is_migrated(tmp_path):
    """A version-1 file, as the release before archiving wrote it, opens with its runs listed."""
    path = tmp_path / "runs.sqlite"
    record = RunRecord(id="old00001", name="old", project_path="/p", project_name="p",
                       entry_point="main", command="true", backend="local",
                       state=RunState.FINISHED)
    conn = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](conn)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO runs (id, name, project_name, project_path, entry_point, backend, state,"
        " created_at, updated_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (record.id, record.name, record.project_name, record.project_path, record.entry_point,
         record.backend, record.state.value, record.created_at, record.updated_at,
         record.model_dump_json(exclude={"state_history", "archived"})),
    )
    conn.close()
    store = RunStore(path)
    try:
        assert store.schema_version == len(MIGRATIONS)
        assert store.get("old00001").archived is False
        assert [r.id for r in store.list()[0]] == ["old00001"]
        store.update("old00001", archived=True)
        assert store.list() == ([], 0)
        assert [r.id for r in store.list(archived=True)[0]] == ["old00001"]
    finally:
        store.close()


# --------------------------------------------------------------------------- CLI


def test_cli_delete_archive_unarchive(project, hpcml_data):
    def submit() -> dict:
        out = hpcml("submit", str(project), "-e", "fail", "-P", "code=0", "--wait", "--json")
        return json.loads(out.stdout)

    def listed(*flags: str) -> list[str]:
        return [r["id"] for r in json.loads(hpcml("runs", "--json", *flags).stdout)["runs"]]

    one, two = submit(), submit()
    proc = hpcml("archive", one["id"][:6])
    assert f"run {one['id']} archived" in proc.stderr
    assert listed() == [two["id"]]
    assert listed("--archived") == [two["id"], one["id"]]
    assert "(archived)" in hpcml("runs", "--archived").stdout
    hpcml("unarchive", one["id"])
    assert listed() == [two["id"], one["id"]]

    # Asks first; anything but yes (or no answer at all) deletes nothing.
    for answer in ("n\n", ""):
        proc = subprocess.run([sys.executable, "-m", "jupyterlab_hpcml.cli", "delete", one["id"]],
                              input=answer, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and "not deleted" in proc.stderr
        assert "Delete run" in proc.stderr
    assert Path(one["run_dir"]).is_dir() and one["id"] in listed()
    proc = subprocess.run([sys.executable, "-m", "jupyterlab_hpcml.cli", "delete", one["id"]],
                          input="y\n", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"deleted run {one['id']}" in proc.stderr and "MLflow run kept" in proc.stderr
    assert not Path(one["run_dir"]).exists() and listed() == [two["id"]]

    hpcml("delete", two["id"], "--mlflow", "--yes")
    assert listed("--archived") == []
    assert MlflowClient().get_run(two["mlflow_run_id"]).info.lifecycle_stage == "deleted"
    assert MlflowClient().get_run(one["mlflow_run_id"]).info.lifecycle_stage == "active"

    proc = hpcml("delete", two["id"], "--yes", check=False)
    assert proc.returncode == 1 and "no run" in proc.stderr


def test_cli_refuses_an_active_run_without_asking(project, hpcml_data):
    run_id = hpcml("submit", str(project), "-e", "sleep", "-P", "seconds=300").stdout.strip()
    try:
        proc = subprocess.run([sys.executable, "-m", "jupyterlab_hpcml.cli", "delete", run_id],
                              input="y\n", capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and "cancel it first" in proc.stderr
        assert "Delete run" not in proc.stderr
        proc = hpcml("archive", run_id, check=False)
        assert proc.returncode == 1 and "only ended runs" in proc.stderr
        assert json.loads(hpcml("show", run_id, "--json").stdout)["run_dir"]
    finally:
        hpcml("cancel", run_id)


# --------------------------------------------------------------------------- Python API, magics

SCRIPT = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
from jupyterlab_hpcml import get_run, runs, submit
from jupyterlab_hpcml.core.errors import Conflict

project = sys.argv[1]
report = {}
a = submit(project, "fail", {"code": 0}, wait=True, timeout=120)
b = submit(project, "fail", {"code": 0}, wait=True, timeout=120)
report["archived"] = a.archive().archived
report["default"] = [r.id for r in runs()]
report["with_archived"] = [r.id for r in runs(archived=True)]
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "jupyterlab_hpcml")
report["magic_default"] = [r.id for r in ip.run_line_magic("hpc_runs", "")]
report["magic_archived"] = [r.id for r in ip.run_line_magic("hpc_runs", "--archived")]
report["magic_text"] = str(ip.run_line_magic("hpc_runs", "--archived"))
report["unarchived"] = get_run(a.id).unarchive().archived
sleeper = submit(project, "sleep", {"seconds": 300})
try:
    sleeper.delete()
except Conflict as exc:
    report["active"] = str(exc)
sleeper.cancel().wait(timeout=60)
result = b.delete(delete_mlflow=True)
report["deleted"] = result.model_dump()
report["after"] = sorted(r.id for r in runs(archived=True))
report["ids"] = {"a": a.id, "b": b.id, "sleeper": sleeper.id, "b_mlflow": b.mlflow_run_id}
print(json.dumps(report))
"""


def test_python_api_and_magics(project, hpcml_data):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(project)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    ids = report["ids"]
    assert report["archived"] is True
    assert report["default"] == report["magic_default"] == [ids["b"]]
    assert report["with_archived"] == report["magic_archived"] == [ids["b"], ids["a"]]
    assert "(archived)" in report["magic_text"]
    assert report["unarchived"] is False
    assert "cancel it first" in report["active"]
    assert report["deleted"]["id"] == ids["b"] and report["deleted"]["mlflow_run_deleted"]
    assert report["after"] == sorted([ids["a"], ids["sleeper"]])
    assert MlflowClient().get_run(ids["b_mlflow"]).info.lifecycle_stage == "deleted"

