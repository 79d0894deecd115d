"""Tracking against real MLflow stores: the engine's Tracker, real job processes, offline sync."""
from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from jupyterlab_hpcml.backends.base import Backend, Features
from jupyterlab_hpcml.core.files import OFFLINE_MLRUNS, Chunk, FileInfo
from jupyterlab_hpcml.core.job import JobContext, JobRef, PreparedJob, Submission
from jupyterlab_hpcml.core.snapshots import Snapshot
from jupyterlab_hpcml.core.states import JobStatus, RunState
from jupyterlab_hpcml.engine.downsample import downsample
from jupyterlab_hpcml.engine.models import RunRecord
from jupyterlab_hpcml.engine.offline_sync import OfflineSync
from jupyterlab_hpcml.engine.tracking import (
    SECRET_ENV_VARS,
    Tracker,
    default_tracking_uri,
    job_tracking_env,
    offline_artifact_uri,
    offline_store_files,
)

ENGINE_TAGS = {"hpcml.run_id": "r-1", "mlflow.source.git.commit": "abc123"}


# ---------------------------------------------------------------------- helpers


class LocalDirBackend(Backend):
    """Serves a run directory on the local disk: just what OfflineSync uses."""

    kind = "test"

    def __init__(self) -> None:
        super().__init__({}, Path("."))
        self.reads: list[tuple[str, int]] = []

    def _path(self, run: JobRef, relpath: str) -> Path:
        assert run.run_dir
        return Path(run.run_dir) / relpath

    async def read(self, run: JobRef, relpath: str, offset: int, max_bytes: int) -> Chunk:
        self.reads.append((relpath, offset))
        path = self._path(run, relpath)
        if not path.is_file():
            return Chunk(b"", offset, offset, None)
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read(max_bytes)
        return Chunk(data, offset, offset + len(data), path.stat().st_size)

    async def list_files(self, run: JobRef, relpath: str = "") -> list[FileInfo]:
        root = self._path(run, relpath)
        if not root.is_dir():
            return []
        out = []
        for p in sorted(root.rglob("*")):
            st = p.stat()
            out.append(
                FileInfo(p.relative_to(root).as_posix(), p.is_dir(), st.st_size, st.st_mtime)
            )
        return out

    async def fetch(self, run: JobRef, relpath: str, dest: Path) -> None:
        shutil.copyfile(self._path(run, relpath), dest)

    def supported_features(self) -> Features:
        return Features()

    async def prepare(
        self, ctx: JobContext, snapshot: Snapshot, extra_files: Any = None, progress: Any = None
    ) -> PreparedJob:
        raise NotImplementedError

    async def submit(self, prepared: PreparedJob) -> Submission:
        raise NotImplementedError

    async def find_submitted(self, ctx: JobContext) -> str | None:
        raise NotImplementedError

    async def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        raise NotImplementedError

    async def cancel(self, run: JobRef) -> None:
        raise NotImplementedError


class CountingTracker(Tracker):
    """Counts the metric rows sent to the main store (which itself drops exact duplicates)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metric_rows: list[tuple[str, float, int, int]] = []

    def log_metrics(self, run_id: str, rows: Sequence[tuple[str, float, int, int]]) -> None:
        super().log_metrics(run_id, rows)
        self.metric_rows.extend(rows)


def write_extra_files(run_dir: Path, files: dict[str, bytes]) -> None:
    """What Backend.prepare does with extra_files: a key ending in '/' is a directory."""
    for rel, content in files.items():
        target = run_dir / rel
        if rel.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(extra)
    return env


def run_job(
    script: str, env: dict[str, str], cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=clean_env(env), cwd=cwd, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def record(run_dir: Path, exp_id: str, run_id: str) -> RunRecord:
    return RunRecord(
        id="r-1", name="run", project_path="/p", project_name="p", entry_point="main",
        command="python train.py", backend="test", tracking_mode="offline", run_dir=str(run_dir),
        mlflow_experiment_id=exp_id, mlflow_run_id=run_id,
    )


def offline_metric_lines(
    run_dir: Path, exp_id: str, run_id: str
) -> dict[str, list[tuple[int, float, int]]]:
    """What the job wrote, read straight from its metric files: key → [(timestamp, value, step)]."""
    root = run_dir / OFFLINE_MLRUNS / exp_id / run_id / "metrics"
    out = {}
    for p in root.rglob("*"):
        if p.is_file():
            rows = [line.split() for line in p.read_text().splitlines()]
            out[p.relative_to(root).as_posix()] = [(int(t), float(v), int(s)) for t, v, s in rows]
    return out


def main_history(tracker: Tracker, run_id: str, key: str) -> list[tuple[int, float, int]]:
    hist = tracker.client.get_metric_history(run_id, key)
    return sorted(((m.timestamp, m.value, m.step) for m in hist), key=lambda r: (r[2], r[0]))


@pytest.fixture(autouse=True)
def _no_ambient_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", *SECRET_ENV_VARS):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def tracker(data_dir: Path) -> CountingTracker:
    return CountingTracker(default_tracking_uri(data_dir))


# ---------------------------------------------------------------------- main store


def test_default_tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert default_tracking_uri(tmp_path) == "http://mlflow.example:5000"


def test_create_run(tracker: Tracker, data_dir: Path) -> None:
    exp_id, run_id = tracker.create_run("proj", "first", {"lr": "0.1", "epochs": "3"}, ENGINE_TAGS)
    run = tracker.client.get_run(run_id)
    assert run.info.experiment_id == exp_id
    assert tracker.client.get_experiment(exp_id).name == "proj"
    assert run.info.status == "SCHEDULED"
    assert run.info.run_name == "first"
    assert run.data.params == {"lr": "0.1", "epochs": "3"}
    assert run.data.tags["mlflow.runName"] == "first"
    assert run.data.tags["hpcml.run_id"] == "r-1"
    # Artifacts live next to the embedded db, not in the server's working directory.
    assert run.info.artifact_uri.startswith((data_dir / "mlartifacts").as_uri())
    exp_again, run2 = tracker.create_run("proj", "second", {}, {})
    assert exp_again == exp_id and run2 != run_id


def test_a_deleted_experiment_is_noticed_although_its_id_was_remembered(tracker: Tracker) -> None:
    from jupyterlab_hpcml.core.errors import Conflict

    exp_id, _ = tracker.create_run("sweep", "a", {}, {})
    other = Tracker(tracker.tracking_uri)  # e.g. the MLflow UI deletes it meanwhile
    other.client.delete_experiment(exp_id)
    with pytest.raises(Conflict, match="'sweep' is deleted"):
        tracker.create_run("sweep", "b", {}, {})
    other.client.restore_experiment(exp_id)
    assert tracker.create_run("sweep", "c", {}, {})[0] == exp_id


def test_logged_models_are_listed_and_downloaded_from_our_store_not_mlflows_default(
        tracker: Tracker, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow resolves `runs:/<id>/model` through the process's default tracking URI; in the lab
    # server that is not our embedded store (and would create ./mlflow.db in the cwd).
    exp_id, run_id = tracker.create_run("models", "m", {}, {})
    run_job("""
        import mlflow
        from sklearn.linear_model import LogisticRegression
        with mlflow.start_run():
            mlflow.log_text("notes", "notes/readme.txt")
            mlflow.sklearn.log_model(LogisticRegression().fit([[0], [1]], [0, 1]), name="model")
    """, {"MLFLOW_TRACKING_URI": tracker.tracking_uri, "MLFLOW_RUN_ID": run_id}, data_dir.parent)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    fresh = Tracker(tracker.tracking_uri)
    assert {(e.path, e.is_dir) for e in fresh.list_artifacts(run_id)} == {
        ("notes", True),
        ("model", True),
    }
    files = {e.path for e in fresh.list_artifacts(run_id, "model")}
    assert {"model/MLmodel", "model/model.skops"} <= files
    local = fresh.download_artifact(run_id, "model/MLmodel", tmp_path / "dl")
    assert "sklearn" in local.read_text()
    assert (
        fresh.download_artifact(run_id, "notes/readme.txt", tmp_path / "dl2").read_text() == "notes"
    )
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


def test_create_run_when_another_process_creates_the_experiment(data_dir: Path) -> None:
    uri = default_tracking_uri(data_dir)
    other, ours = Tracker(uri), Tracker(uri)
    real_get = ours.client.get_experiment_by_name
    calls = []

    def racy_get(name: str) -> Any:
        calls.append(name)
        if len(calls) == 1:  # we look: missing; meanwhile the other process creates it
            other.client.create_experiment(name)
            return None
        return real_get(name)

    ours.client.get_experiment_by_name = racy_get  # type: ignore[method-assign]
    exp_id, _ = ours.create_run("raced", "r", {}, {})
    assert exp_id == other.client.get_experiment_by_name("raced").experiment_id


def test_processes_opening_a_new_store_at_once(tmp_path: Path) -> None:
    # Server, CLI and kernels may all open a not-yet-created embedded store together;
    # MLflow's table creation and migrations fail when raced (seen in CI).
    uri = default_tracking_uri(tmp_path / "data")
    (tmp_path / "data").mkdir()
    code = (
        "import sys; from jupyterlab_hpcml.engine.tracking import Tracker; "
        "print(Tracker(sys.argv[1]).create_run('race', 'r', {'a': '1'}, {})[1])"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, uri],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err[-2000:] for _, err in results]
    run_ids = {out.strip() for out, _ in results}
    assert len(run_ids) == 6
    client = Tracker(uri).client
    exp = client.get_experiment_by_name("race")
    assert {r.info.run_id for r in client.search_runs([exp.experiment_id])} == run_ids


def test_set_status(tracker: Tracker) -> None:
    c = tracker.client

    def status_after(*states: RunState) -> tuple[str, int | None]:
        _, run_id = tracker.create_run("states", "r", {}, {})
        for s in states:
            tracker.set_status(run_id, s)
        info = c.get_run(run_id).info
        return info.status, info.end_time

    assert status_after(RunState.QUEUED) == ("SCHEDULED", None)
    assert status_after(RunState.RUNNING) == ("RUNNING", None)
    status, end = status_after(RunState.RUNNING, RunState.FINISHED)
    assert status == "FINISHED" and end is not None
    assert status_after(RunState.RUNNING, RunState.FAILED)[0] == "FAILED"
    assert status_after(RunState.RUNNING, RunState.TIMEOUT)[0] == "FAILED"
    assert status_after(RunState.RUNNING, RunState.CANCELLED)[0] == "KILLED"
    # UNKNOWN: backend unreachable, the job may still run: status untouched.
    assert status_after(RunState.RUNNING, RunState.UNKNOWN)[0] == "RUNNING"

    _, run_id = tracker.create_run("states", "deleted", {}, {})
    tracker.set_status(run_id, RunState.RUNNING)
    tracker.set_status(run_id, RunState.FINISHED, at=1_700_000_000.5)
    assert c.get_run(run_id).info.end_time == 1_700_000_000_500
    c.delete_run(run_id)
    tracker.set_status(run_id, RunState.CANCELLED)  # logged and ignored
    tracker.set_status(run_id, RunState.RUNNING)
    tracker.set_status("0" * 32, RunState.FINISHED)  # never existed


def test_direct_job_logs_into_our_run(
    tracker: Tracker, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp_id, run_id = tracker.create_run("direct", "job", {"lr": "0.1"}, ENGINE_TAGS)
    env = job_tracking_env("direct", tracker.tracking_uri, exp_id, run_id)
    script = """
        import os, mlflow
        expected = os.environ["MLFLOW_RUN_ID"]
        with mlflow.start_run() as run:
            assert run.info.run_id == expected, run.info.run_id
            for step in range(3):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.log_param("batch", "32")
            mlflow.log_text("hi", "notes/hello.txt")
    """
    run_job(script, env, data_dir.parent)
    run = tracker.client.get_run(run_id)
    assert run.info.experiment_id == exp_id
    assert [v for _, v, _ in main_history(tracker, run_id, "loss")] == [1.0, 0.5, 1.0 / 3]
    assert run.data.params == {"lr": "0.1", "batch": "32"}
    assert [a.path for a in tracker.list_artifacts(run_id, "notes")] == ["notes/hello.txt"]
    assert (data_dir / "mlartifacts").is_dir()
    assert not (data_dir.parent / "mlruns").exists()
    keys = tracker.metric_keys(run_id)
    assert (
        keys[0]["key"] == "loss"
        and keys[0]["step"] == 2
        and keys[0]["value"] == pytest.approx(1 / 3)
    )


def test_tracking_env_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRET_ENV_VARS:
        monkeypatch.setenv(name, f"secret-{name}")
    direct = job_tracking_env("direct", "https://mlflow.example", "1", "abc")
    assert direct["MLFLOW_TRACKING_URI"] == "https://mlflow.example"
    assert all(direct[name] == f"secret-{name}" for name in SECRET_ENV_VARS)
    assert "MLFLOW_ALLOW_FILE_STORE" not in direct
    offline = job_tracking_env(
        "offline", "https://mlflow.example", "1", "abc", "file:/scratch/r/.hpcml/mlruns"
    )
    assert offline == {
        "MLFLOW_TRACKING_URI": "file:/scratch/r/.hpcml/mlruns",
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "MLFLOW_EXPERIMENT_ID": "1",
        "MLFLOW_RUN_ID": "abc",
    }
    assert not any("secret" in v for v in offline.values())
    with pytest.raises(ValueError):
        job_tracking_env("offline", "https://mlflow.example", "1", "abc")


# ---------------------------------------------------------------------- offline


OFFLINE_JOB = """
    import os, sys, time, pathlib, mlflow
    ctl = pathlib.Path(sys.argv[1])
    expected = os.environ["MLFLOW_RUN_ID"]

    def wait_for(name):
        deadline = time.time() + 120
        while not (ctl / name).exists():
            assert time.time() < deadline, name
            time.sleep(0.02)

    with mlflow.start_run() as run:
        assert run.info.run_id == expected
        mlflow.log_param("batch", "32")
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.log_metric("eval/acc", step / 10, step=step)
        (ctl / "phase1").touch()
        wait_for("go")
        for step in range(5, 12):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metric("eval/acc", float("nan"), step=12)
        mlflow.set_tag("note", "hello")
        mlflow.set_tag("hpcml.run_id", "job-must-not-overwrite")
        mlflow.set_tag("mlflow.source.git.commit", "job-must-not-overwrite")
        model = pathlib.Path("model.txt")
        model.write_text("weights")
        mlflow.log_artifact(str(model))
        mlflow.log_artifact(str(model), artifact_path="ckpt/epoch1")
"""


async def test_offline_job_and_sync(tracker: CountingTracker, tmp_path: Path) -> None:
    exp_id, run_id = tracker.create_run("offline", "job", {"lr": "0.1"}, ENGINE_TAGS)
    run_dir, ctl = tmp_path / "remote" / "run", tmp_path / "ctl"
    run_dir.mkdir(parents=True)
    ctl.mkdir()
    # As the engine does today: the run dir is not known yet, so the artifact URI is relative.
    write_extra_files(run_dir, offline_store_files(exp_id, "offline", run_id, "job"))
    env = job_tracking_env(
        "offline", tracker.tracking_uri, exp_id, run_id, f"file:{run_dir / OFFLINE_MLRUNS}"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(OFFLINE_JOB), str(ctl)],
        env=clean_env(env), cwd=run_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    backend, sync, run = LocalDirBackend(), OfflineSync(tracker), record(run_dir, exp_id, run_id)
    state: dict[str, Any] = {}
    try:
        deadline = time.time() + 120
        while not (ctl / "phase1").exists():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.time() < deadline
            await asyncio.sleep(0.05)

        state = await sync.sync(backend, run, state)  # mid-way: the job is waiting
        assert [v for _, v, _ in main_history(tracker, run_id, "loss")] == [
            1.0,
            1 / 2,
            1 / 3,
            1 / 4,
            1 / 5,
        ]
        assert len(main_history(tracker, run_id, "eval/acc")) == 5
        assert tracker.client.get_run(run_id).data.params == {"lr": "0.1", "batch": "32"}
        state = json.loads(json.dumps(state))  # the caller stores it as JSON

        (ctl / "go").touch()
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()

    state = await sync.sync(backend, run, state)
    assert tracker.list_artifacts(run_id) == []  # artifacts only at the end
    state = await sync.sync(backend, run, state, final=True)
    assert state["artifacts_done"] is True

    written = offline_metric_lines(run_dir, exp_id, run_id)
    assert set(written) == {"loss", "eval/acc"} and len(written["loss"]) == 12
    for key, rows in written.items():
        got = main_history(tracker, run_id, key)
        assert len(got) == len(rows)
        expected = sorted(rows, key=lambda r: (r[2], r[0]))
        for (ts, v, s), (ts2, v2, s2) in zip(expected, got, strict=True):
            assert (ts, s) == (ts2, s2) and (v == v2 or math.isnan(v) and math.isnan(v2))
    # Exactly once: every line went to the main store a single time.
    assert len(tracker.metric_rows) == sum(len(r) for r in written.values())

    data = tracker.client.get_run(run_id).data
    assert data.params == {"lr": "0.1", "batch": "32"}
    assert data.tags["note"] == "hello"
    assert data.tags["hpcml.run_id"] == "r-1"  # the engine's tags win
    assert data.tags["mlflow.source.git.commit"] == "abc123"
    assert data.tags["mlflow.runName"] == "job"
    assert {a.path for a in tracker.list_artifacts(run_id)} == {"model.txt", "ckpt"}
    assert [a.path for a in tracker.list_artifacts(run_id, "ckpt/epoch1")] == [
        "ckpt/epoch1/model.txt"
    ]
    local = tracker.download_artifact(run_id, "ckpt/epoch1/model.txt", tmp_path / "dl")
    assert local.read_text() == "weights"
    hist = tracker.metric_history(run_id, "eval/acc")
    assert hist["total"] == 6 and hist["points"][-1]["value"] is None  # NaN → None for JSON

    # Nothing new: no metric file is read again, nothing logged again.
    backend.reads.clear()
    n = len(tracker.metric_rows)
    await sync.sync(backend, run, state, final=True)
    assert not [r for r in backend.reads if "/metrics/" in r[0]]
    assert len(tracker.metric_rows) == n


async def test_offline_partial_line(tracker: CountingTracker, tmp_path: Path) -> None:
    exp_id, run_id = tracker.create_run("partial", "job", {}, {})
    run_dir = tmp_path / "run"
    write_extra_files(run_dir, offline_store_files(exp_id, "partial", run_id, "job"))
    metric = run_dir / OFFLINE_MLRUNS / exp_id / run_id / "metrics" / "loss"
    # A tiny read size forces several reads and chunk boundaries inside lines.
    backend, sync, run = (
        LocalDirBackend(),
        OfflineSync(tracker, read_bytes=7),
        record(run_dir, exp_id, run_id),
    )

    metric.write_text("1000 0.5 0\n1001 0.25 1\n1002 0.1")  # the job is mid-write
    state = await sync.sync(backend, run, {})
    assert main_history(tracker, run_id, "loss") == [(1000, 0.5, 0), (1001, 0.25, 1)]
    assert state["metrics"]["loss"] == len("1000 0.5 0\n1001 0.25 1\n")

    state = await sync.sync(backend, run, state)  # still partial: nothing new
    assert len(tracker.metric_rows) == 2

    with metric.open("a") as fh:
        fh.write("25 2\n1003 0.05 3\n")
    state = await sync.sync(backend, run, state)
    assert main_history(tracker, run_id, "loss") == [
        (1000, 0.5, 0), (1001, 0.25, 1), (1002, 0.125, 2), (1003, 0.05, 3)
    ]
    assert len(tracker.metric_rows) == 4
    assert state["metrics"]["loss"] == metric.stat().st_size


def test_offline_store_with_absolute_artifact_uri(tmp_path: Path) -> None:
    """The job may change directory: an absolute artifact URI still lands in the run's store."""
    run_dir = tmp_path / "run"
    exp_id, run_id = "123456789", "0123456789abcdef0123456789abcdef"
    files = offline_store_files(exp_id, "exp: with 'quotes'", run_id, "name #1",
                                offline_artifact_uri(str(run_dir), exp_id, run_id))
    write_extra_files(run_dir, files)
    env = job_tracking_env("offline", "", exp_id, run_id, str(run_dir / OFFLINE_MLRUNS))
    script = """
        import os, mlflow
        os.chdir("/")
        with mlflow.start_run() as run:
            assert run.info.run_name == "name #1", run.info.run_name
            mlflow.log_text("x", "a.txt")
            mlflow.log_metric("m", 1.0)
        exp = mlflow.get_experiment(run.info.experiment_id)
        assert exp.name == "exp: with 'quotes'", exp.name
    """
    run_job(script, env, tmp_path)
    assert (run_dir / OFFLINE_MLRUNS / exp_id / run_id / "artifacts" / "a.txt").read_text() == "x"
    assert (run_dir / OFFLINE_MLRUNS / exp_id / run_id / "metrics" / "m").is_file()


LOGGED_MODEL_JOB = """
    import sys, mlflow, numpy as np
    from sklearn.linear_model import LogisticRegression

    X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    with mlflow.start_run() as run:
        mlflow.log_param("lr", "0.1")  # as the engine logged it: fine
        clf = LogisticRegression().fit(X, y)
        info = mlflow.sklearn.log_model(
            clf, name="model", params={"C": "1.0"}, model_type="classifier", step=3,
            input_example=X[:2],
        )
        mlflow.log_metric("acc", 1.0, step=3, model_id=info.model_id)
        mlflow.set_logged_model_tags(info.model_id, {"stage": "test"})
    print(info.model_id)
"""


async def test_offline_logged_model_reaches_the_main_store(
    tracker: CountingTracker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow 3: log_model writes <mlruns>/<exp>/models/<id>/, outside the run; the final sync
    recreates the model in the main store, linked to the run, so runs:/<run>/model loads."""
    import mlflow
    import numpy as np
    from mlflow.entities import LoggedModelStatus

    exp_id, run_id = tracker.create_run("models", "job", {"lr": "0.1"}, ENGINE_TAGS)
    run_dir = tmp_path / "run"
    write_extra_files(
        run_dir,
        offline_store_files(
            exp_id,
            "models",
            run_id,
            "job",
            offline_artifact_uri(str(run_dir), exp_id, run_id),
            params={"lr": "0.1"},
        ),
    )
    env = job_tracking_env(
        "offline", tracker.tracking_uri, exp_id, run_id, str(run_dir / OFFLINE_MLRUNS)
    )
    offline_id = run_job(LOGGED_MODEL_JOB, env, tmp_path).stdout.split()[-1]
    assert (
        run_dir / OFFLINE_MLRUNS / exp_id / "models" / offline_id / "artifacts" / "MLmodel"
    ).is_file()

    backend, sync, run = LocalDirBackend(), OfflineSync(tracker), record(run_dir, exp_id, run_id)
    state = await sync.sync(backend, run, {})
    assert tracker.client.search_logged_models([exp_id]) == []  # models only at the end
    state = await sync.sync(backend, run, json.loads(json.dumps(state)), final=True)
    assert state["models_done"] is True and list(state["models"]) == [offline_id]

    client = tracker.client
    (model,) = client.search_logged_models([exp_id])
    assert model.model_id == state["models"][offline_id] != offline_id
    assert model.name == "model" and model.model_type == "classifier"
    assert model.source_run_id == run_id
    assert model.status == LoggedModelStatus.READY
    assert model.params == {"C": "1.0", "lr": "0.1"}
    assert model.tags["stage"] == "test" and model.tags["hpcml.offline_model_id"] == offline_id
    assert [(m.key, m.value, m.step) for m in model.metrics] == [("acc", 1.0, 3)]
    outputs = client.get_run(run_id).outputs.model_outputs
    assert [(o.model_id, o.step) for o in outputs] == [(model.model_id, 3)]
    assert len(main_history(tracker, run_id, "acc")) == 1  # the run's copy is not doubled

    # The run's `model` path resolves to it, as with direct tracking. (MLflow resolves it
    # through the process's default tracking URI, whatever the client's: the lab sets it.)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracker.tracking_uri)
    listed = {a.path for a in tracker.list_artifacts(run_id, "model")}
    assert {"model/MLmodel", "model/model.skops"} <= listed, listed
    mlmodel = tracker.download_artifact(run_id, "model/MLmodel", tmp_path / "dl").read_text()
    assert f"model_id: {model.model_id}" in mlmodel and offline_id not in mlmodel
    loaded = mlflow.sklearn.load_model(f"runs:/{run_id}/model")
    assert list(loaded.predict(np.array([[0.0], [3.0]]))) == [0, 1]
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    assert list(pyfunc.predict(np.array([[0.0], [3.0]]))) == [0, 1]

    # Idempotent: again with the same state, and with the state lost (found by its tag).
    await sync.sync(backend, run, state, final=True)
    await sync.sync(backend, run, {}, final=True)
    assert [m.model_id for m in client.search_logged_models([exp_id])] == [model.model_id]
    assert len(client.get_run(run_id).outputs.model_outputs) == 1
    (again,) = client.search_logged_models([exp_id])
    assert len(again.metrics) == 1


async def test_offline_logged_model_half_copied_is_completed(
    tracker: CountingTracker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync that died after creating the main model (PENDING, no files) finishes it next time."""
    from mlflow.entities import LoggedModelStatus

    exp_id, run_id = tracker.create_run("half", "job", {"lr": "0.1"}, {})
    run_dir = tmp_path / "run"
    write_extra_files(
        run_dir, offline_store_files(exp_id, "half", run_id, "job", params={"lr": "0.1"})
    )
    env = job_tracking_env(
        "offline", tracker.tracking_uri, exp_id, run_id, str(run_dir / OFFLINE_MLRUNS)
    )
    offline_id = run_job(LOGGED_MODEL_JOB, env, run_dir).stdout.split()[-1]
    # What the first step of an interrupted sync leaves behind.
    stub = tracker.client.create_logged_model(
        exp_id, name="model", source_run_id=run_id, tags={"hpcml.offline_model_id": offline_id}
    )
    state = await OfflineSync(tracker).sync(
        LocalDirBackend(), record(run_dir, exp_id, run_id), {}, final=True
    )
    assert state["models"] == {offline_id: stub.model_id}
    (model,) = tracker.client.search_logged_models([exp_id])
    assert model.model_id == stub.model_id and model.status == LoggedModelStatus.READY
    assert [(o.model_id, o.step) for o in tracker.client.get_run(run_id).outputs.model_outputs] == [
        (stub.model_id, 3)
    ]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracker.tracking_uri)
    assert {"model/MLmodel", "model/model.skops"} <= {
        a.path for a in tracker.list_artifacts(run_id, "model")
    }


def test_offline_store_holds_the_engine_params(tracker: Tracker, tmp_path: Path) -> None:
    """The job's log_param behaves as against the main store: same value fine, another refused."""
    exp_id, run_id = tracker.create_run("params", "job", {"alpha": "0", "dir/sub": "x"}, {})
    run_dir = tmp_path / "run"
    params = tracker.client.get_run(run_id).data.params
    write_extra_files(run_dir, offline_store_files(exp_id, "params", run_id, "job", params=params))
    env = job_tracking_env(
        "offline", tracker.tracking_uri, exp_id, run_id, str(run_dir / OFFLINE_MLRUNS)
    )
    script = """
        import mlflow
        from mlflow.exceptions import MlflowException
        with mlflow.start_run() as run:
            assert run.data.params == {"alpha": "0", "dir/sub": "x"}, run.data.params
            mlflow.log_param("alpha", "0")  # the same value: fine
            mlflow.log_params({"dir/sub": "x", "beta": "1"})
            try:
                mlflow.log_param("alpha", 0.0)  # "0.0" != "0": refused, as by the main store
            except MlflowException as exc:
                assert "alpha" in str(exc), exc
            else:
                raise AssertionError("a changed param was accepted")
    """
    run_job(script, env, tmp_path)
    root = run_dir / OFFLINE_MLRUNS / exp_id / run_id / "params"
    assert (root / "alpha").read_text() == "0" and (root / "dir" / "sub").read_text() == "x"
    files = offline_store_files(
        exp_id, "params", run_id, "job", params={"../evil": "1", "/abs": "2", "ok": "3"}
    )
    assert [
        k.rsplit("/params/", 1)[1] for k in files if "/params/" in k and not k.endswith("/")
    ] == ["ok"]


# ---------------------------------------------------------------------- history and downsampling


def test_metric_history_keeps_a_spike(tracker: Tracker) -> None:
    _, run_id = tracker.create_run("hist", "r", {}, {})
    rows = [("loss", 1.0 / (1 + s), 1_700_000_000_000 + s, s) for s in range(5000)]
    rows[2345] = ("loss", 99.0, rows[2345][2], 2345)
    tracker.log_metrics(run_id, rows)
    hist = tracker.metric_history(run_id, "loss", max_points=100)
    assert hist["key"] == "loss" and hist["total"] == 5000 and len(hist["points"]) == 100
    assert max(p["max"] for p in hist["points"]) == 99.0
    assert hist["points"][0]["x"] == 0
    by_time = tracker.metric_history(run_id, "loss", max_points=10_000, x="time")
    assert len(by_time["points"]) == 5000
    assert by_time["points"][1]["x"] == pytest.approx(1_700_000_000.001)
    json.dumps(hist, allow_nan=False)


def test_downsample_passthrough_and_non_finite() -> None:
    pts = downsample([0, 1, 2], [1.0, float("nan"), float("inf")], 10)
    assert pts == [
        {"x": 0, "value": 1.0, "min": 1.0, "max": 1.0},
        {"x": 1, "value": None, "min": None, "max": None},
        {"x": 2, "value": None, "min": None, "max": None},
    ]
    ys = [float("nan")] * 10 + [1.0, 3.0, float("-inf"), 5.0] + [2.0] * 6
    pts = downsample(list(range(20)), ys, 4)
    assert [p["x"] for p in pts] == [0, 5, 10, 15]
    assert pts[0] == {"x": 0, "value": None, "min": None, "max": None}
    assert pts[2] == {"x": 10, "value": 2.75, "min": 1.0, "max": 5.0}  # [1, 3, -inf, 5, 2]
    json.dumps(pts, allow_nan=False)
    assert downsample([], [], 5) == []


def test_downsample_100k_points_fast() -> None:
    n = 100_000
    xs = list(range(n))
    ys = [math.sin(i / 1000) for i in xs]
    ys[77_777] = 1e6
    ys[100] = float("nan")
    t = time.perf_counter()
    pts = downsample(xs, ys, 1000)
    ms = (time.perf_counter() - t) * 1000
    print(f"\ndownsample: {n} points -> {len(pts)} in {ms:.1f} ms")
    assert len(pts) == 1000
    assert max(p["max"] for p in pts) == 1e6
    assert pts[-1]["x"] == n - n // 1000
