"""The Engine facade (engine/service.py): the only door the faces use.

- no REST handler reaches past it (store, tracking, MLflow, SQLAlchemy, backends);
- metric histories through it equal MLflow's own ``get_metric_history``, on the SQLite
  store (read directly, without importing MLflow) and on a file store (MLflow's API);
- the last N lines of a log: whole lines longer than a read, multi-byte UTF-8 split
  across reads, with and without a final newline.
"""
from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine import logs
from jupyterlab_hpcml.engine.models import RunRecord, StateChange
from jupyterlab_hpcml.engine.service import Engine

PACKAGE = Path(__file__).resolve().parents[1] / "jupyterlab_hpcml"

# What a handler may import of the package's lower layers: the facade and the request,
# record and limit types it speaks in; core/ (errors, states) is free.
HANDLER_ENGINE_MODULES = {"service", "requests", "models", "limits"}
FORBIDDEN_TOP = {"mlflow", "sqlalchemy"}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a module of handlers/."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against jupyterlab_hpcml.handlers
                base = ["jupyterlab_hpcml", "handlers"][: 2 - (node.level - 1)]
                module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            else:
                module = node.module or ""
            # `from ..engine import limits` imports the module engine.limits
            out += [(node.lineno, f"{module}.{a.name}") for a in node.names
                    if module in ("jupyterlab_hpcml", "jupyterlab_hpcml.engine")]
            out.append((node.lineno, module))
    return out


def test_handlers_talk_only_to_the_facade():
    problems = []
    for path in sorted((PACKAGE / "handlers").glob("*.py")):
        for line, module in _imports(path):
            parts = module.split(".")
            where = f"handlers/{path.name}:{line} imports {module}"
            if parts[0] in FORBIDDEN_TOP:
                problems.append(where)
            elif parts[:2] == ["jupyterlab_hpcml", "backends"]:
                problems.append(where)
            elif parts[:2] == ["jupyterlab_hpcml", "engine"] and len(parts) > 2 \
                    and parts[2] not in HANDLER_ENGINE_MODULES:
                problems.append(where)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------- metric history

def _log_metric(tracking_uri: str, n: int = 2500) -> tuple[str, str]:
    """An MLflow run with one metric of ``n`` points (NaN, inf, steps logged twice, time
    going backwards) and a short second one; (experiment id, run id)."""
    import os

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.create_experiment("facade")
    run = client.create_run(exp).info.run_id
    t0 = 1_700_000_000_000
    points = []
    for i in range(n):
        value = 1.0 / (1 + i)
        if i % 97 == 0:
            value = math.nan
        elif i % 301 == 0:
            value = math.inf
        step = i // 2 if i % 5 == 0 else i  # some steps twice
        ts = t0 + (n - i) * 7 if i % 11 == 0 else t0 + i * 10  # some timestamps out of order
        points.append(Metric("loss", value, ts, step))
    points.append(Metric("loss", 0.5, t0 + 10, 10))  # same step and time, another value
    points.append(Metric("loss", 0.25, t0 + 10, 10))
    for start in range(0, len(points), 1000):
        client.log_batch(run, metrics=points[start:start + 1000])
    client.log_batch(run, metrics=[Metric("acc", 0.1 * i, t0 + i, i) for i in range(5)])
    return exp, run


def _expected(tracking_uri: str, run: str, key: str, x: str, max_points: int) -> dict[str, Any]:
    """What MLflow's own get_metric_history gives, sorted by the chart's x and downsampled."""
    from mlflow.tracking import MlflowClient

    from jupyterlab_hpcml.engine.downsample import downsample

    history = list(MlflowClient(tracking_uri).get_metric_history(run, key))
    if x == "time":
        history.sort(key=lambda m: (m.timestamp, m.step))
        xs = [m.timestamp / 1000.0 for m in history]
    else:
        history.sort(key=lambda m: (m.step, m.timestamp))
        xs = [m.step for m in history]
    return {"key": key, "total": len(history),
            "points": downsample(xs, [m.value for m in history], max_points)}


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN included (JSON text compares NaN as NaN)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _engine_with_run(data: Path, tracking_uri: str, exp: str, mlflow_run: str) -> Engine:
    engine = Engine(data_dir=data, tracking_uri=tracking_uri)
    now = time.time()
    engine.store.insert(RunRecord(  # test set-up: a finished run that references the MLflow run
        id="facade1", name="facade", project_path="/p/toy", project_name="toy",
        entry_point="main", command="python train.py", backend="local",
        state=RunState.FINISHED, mlflow_experiment_id=exp, mlflow_experiment_name="facade",
        mlflow_run_id=mlflow_run, created_at=now, updated_at=now,
        state_history=[StateChange(state=RunState.SUBMITTING, at=now),
                       StateChange(state=RunState.FINISHED, at=now)],
    ))
    return engine


@pytest.mark.parametrize("store", ["sqlite", "file"])
async def test_metric_history_equals_mlflows(tmp_path: Path, store: str):
    data = tmp_path / "data"
    data.mkdir()
    uri = f"sqlite:///{data}/mlflow.db" if store == "sqlite" else (tmp_path / "mlruns").as_uri()
    exp, mlflow_run = _log_metric(uri)
    engine = _engine_with_run(data, uri, exp, mlflow_run)
    try:
        for x in ("step", "time"):
            for max_points in (100_000, 1000, 7, 2):
                got = await engine.metric_history("facade1", "loss", max_points, x)
                want = _expected(uri, mlflow_run, "loss", x, max_points)
                assert _same(got, want), (x, max_points)
        (histories,) = await engine.metric_histories(["facade1"], 50, "time")
        assert histories["error"] is None
        assert _same(histories["metrics"], [_expected(uri, mlflow_run, k, "time", 50)
                                            for k in ("acc", "loss")])

        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        keys = await engine.metric_keys("facade1")
        assert [k["key"] for k in keys] == ["acc", "loss"]
        assert {k["key"]: k["value"] for k in keys} == client.get_run(mlflow_run).data.metrics

        values = await engine.metric_values("facade1")
        full = sorted(
            ((m.key, m.step, m.timestamp / 1000.0, m.value)
             for k in ("acc", "loss") for m in client.get_metric_history(mlflow_run, k)),
            key=lambda r: (r[0], r[1], r[2]))
        assert _same([(v["key"], v["step"], v["timestamp"], v["value"]) for v in values],
                     [list(r) for r in full])
    finally:
        await engine.close()


def test_sqlite_metric_path_imports_no_mlflow(tmp_path: Path):
    """The chart's path on the embedded store, in a fresh process: MLflow and SQLAlchemy
    (over a second to import and set up) stay out; the same answer as MLflow's."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    _, mlflow_run = _log_metric(uri, n=300)
    code = f"""
import json, sys
from jupyterlab_hpcml.engine.tracking import Tracker
t = Tracker({uri!r})
out = {{"keys": t.metric_keys({mlflow_run!r}),
        "hist": t.metric_history({mlflow_run!r}, "loss", 40, "step")}}
out["mods"] = sorted(m for m in sys.modules if m.split(".")[0] in ("mlflow", "sqlalchemy"))
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    out = json.loads(done.stdout)
    assert out["mods"] == []
    assert _same(out["hist"], _expected(uri, mlflow_run, "loss", "step", 40))
    assert [k["key"] for k in out["keys"]] == ["acc", "loss"]


def test_unknown_sqlite_schema_falls_back_to_mlflow(tmp_path: Path):
    """A database without MLflow's tables (or another schema) is never queried directly;
    one that MLflow creates (or migrates) later is, from then on."""
    import sqlite3

    from jupyterlab_hpcml.engine import mlflow_sqlite

    db = tmp_path / "other.db"
    reader = mlflow_sqlite.reader(f"sqlite:///{db}")
    assert reader is not None and reader.metric_series("r", "loss") is None  # no file yet
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE metrics (key TEXT, value REAL)")
    assert reader.metric_series("r", "loss") is None and reader.latest_metrics("r") is None
    db.unlink()
    _, run = _log_metric(f"sqlite:///{db}", n=10)  # MLflow creates its schema there now
    steps, _, values = reader.metric_series(run, "loss")
    assert len(values) == 12 and list(steps) == sorted(steps)
    assert reader.metric_series("no-such-run", "loss") is None  # MLflow's own error then
    assert mlflow_sqlite.reader((tmp_path / "mlruns").as_uri()) is None
    assert mlflow_sqlite.reader("http://127.0.0.1:5000") is None


def test_downsample_buckets():
    """Equal-count buckets (first x, mean/min/max of the finite values); NaN and ±inf
    ignored, None where nothing finite is left or the mean overflows."""
    from jupyterlab_hpcml.engine.downsample import downsample

    # n=10, m=4: buckets [0:2] [2:5] [5:7] [7:10]
    ys = [1.0, math.nan, 3.0, math.inf, math.nan, -math.inf, math.nan, 1e308, 1e308, 2.0]
    assert downsample(list(range(10, 20)), ys, 4) == [
        {"x": 10, "value": 1.0, "min": 1.0, "max": 1.0},
        {"x": 12, "value": 3.0, "min": 3.0, "max": 3.0},
        {"x": 15, "value": None, "min": None, "max": None},
        {"x": 17, "value": None, "min": 2.0, "max": 1e308},  # the sum overflowed
    ]
    n, m = 100_003, 1500
    points = downsample(list(range(n)), [float(i % 7) for i in range(n)], m)
    starts = [p["x"] for p in points]
    assert len(points) == m and starts == [(b * n) // m for b in range(m)]
    assert downsample([1, 2], [math.nan, 5], 10) == [
        {"x": 1, "value": None, "min": None, "max": None},
        {"x": 2, "value": 5.0, "min": 5.0, "max": 5.0}]


# ---------------------------------------------------------------------- log tails

def _file_reader(path: Path, calls: list[tuple[int, int]] | None = None) -> logs.Reader:
    async def read(offset: int, max_bytes: int) -> tuple[bytes, int | None]:
        if calls is not None:
            calls.append((offset, max_bytes))
        try:
            with path.open("rb") as f:
                size = path.stat().st_size
                f.seek(offset)
                return f.read(min(max_bytes, 5)), size  # a backend that caps its reads
        except FileNotFoundError:
            return b"", None
    return read


LOG_TEXT = ("first line\n"
            + "ä€😀" * 50 + " long line of multi-byte characters\n"  # far longer than a read
            + "x" * 300 + "\n"
            + "third: naïve café 😀\n"
            + "progress 10%\rprogress 100%\n"  # a carriage return ends no line
            + "last 😀 without newline")


@pytest.mark.parametrize("final_newline", [False, True])
async def test_tail_lines_longer_than_a_read_and_multibyte(tmp_path: Path, final_newline: bool):
    text = LOG_TEXT + ("\n" if final_newline else "")
    path = tmp_path / "stdout.log"
    path.write_bytes(text.encode())
    lines = text.splitlines(keepends=True)
    lines = [*lines[:4], lines[4] + lines[5], *lines[6:]]  # "\r" joined back: \n lines only
    assert len(lines) == 6
    for n in range(9):
        for step in (3, 8, 64 * 1024):
            start, data, size = await logs.read_tail(_file_reader(path), n, step=step)
            want = "".join(lines[-n:]) if n else ""
            assert data.decode() == want, (n, step)
            assert size == len(text.encode()) and start + len(data) == size
            assert logs.last_lines(text, n) == want


async def test_tail_of_missing_empty_and_cut_logs(tmp_path: Path):
    path = tmp_path / "stdout.log"
    assert await logs.read_tail(_file_reader(path), 5) == (0, b"", None)
    path.write_bytes(b"")
    assert await logs.read_tail(_file_reader(path), 5) == (0, b"", 0)
    # A single line over the limit: cut at the limit, on a character boundary.
    path.write_bytes(("€" * 100).encode())  # 3 bytes each
    start, data, _ = await logs.read_tail(_file_reader(path), 1, step=4, limit=50)
    assert data.decode() == "€" * 16 and start == 300 - 48
    # A short tail of a long log reads only near the end.
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(100_000)))
    calls: list[tuple[int, int]] = []
    start, data, size = await logs.read_tail(_file_reader(path, calls), 2, step=64)
    assert data == b"line 99998\nline 99999\n"
    assert min(offset for offset, _ in calls[1:]) >= size - 64


async def test_log_tail_through_the_facade(tmp_path: Path):
    """A finished local run's stdout, tailed through Engine.log_tail; following on from
    ``next_offset`` reads nothing more."""
    data = tmp_path / "data"
    run_dir = tmp_path / "run"
    (run_dir / ".hpcml").mkdir(parents=True)
    (run_dir / ".hpcml" / "stdout.log").write_bytes(LOG_TEXT.encode())
    engine = Engine(data_dir=data, tracking_uri=f"sqlite:///{data}/mlflow.db")
    now = time.time()
    engine.store.insert(RunRecord(
        id="tail1", name="tail", project_path="/p/toy", project_name="toy", entry_point="main",
        command="python train.py", backend="local", state=RunState.FINISHED,
        run_dir=str(run_dir), backend_job_id="1", created_at=now, updated_at=now,
        state_history=[StateChange(state=RunState.FINISHED, at=now)],
    ))
    try:
        chunk = await engine.log_tail("tail1", "stdout", 2)
        assert chunk.data == "progress 10%\rprogress 100%\nlast 😀 without newline"
        assert chunk.next_offset == chunk.size == len(LOG_TEXT.encode())
        assert not chunk.running
        assert (await engine.read_log("tail1", "stdout", chunk.next_offset)).data == ""
        assert (await engine.log_tail("tail1", "stdout", 0)).data == ""
        assert (await engine.log_tail("tail1", "stderr", 3)).data == ""
    finally:
        await engine.close()

