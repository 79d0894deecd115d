"""Metric reads straight from MLflow's SQLite store, read-only, with the stdlib's sqlite3.

A chart of 100,000 points through MLflow's API builds an ORM object per point (about
2 s), and the first call in a process also imports MLflow and SQLAlchemy and creates
their engine (over a second more). The same rows come from one SQL query in tens of
milliseconds. So for a ``sqlite:///`` tracking URI, ``Tracker`` reads metrics here
first; anything this module does not recognise (another store, a schema without the
tables and columns below, an SQL error) answers None, and the caller uses MLflow's
public API instead. Nothing here imports MLflow, and nothing is ever written.

The answers equal MLflow's (``get_metric_history``, ``get_run().data.metrics``): NaN is
stored as ``is_nan`` and comes back as NaN; rows are ordered as MLflow orders them.
"""
from __future__ import annotations

import logging
import math
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

log = logging.getLogger(__name__)

# Tables and columns the queries use, as MLflow's SQL store defines them (since 1.x).
SCHEMA = {
    "runs": {"run_uuid"},
    "metrics": {"key", "value", "timestamp", "step", "is_nan", "run_uuid"},
    "latest_metrics": {"key", "value", "timestamp", "step", "is_nan", "run_uuid"},
    "alembic_version": {"version_num"},
}

def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for other stores and in-memory ones."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = tracking_uri[len("sqlite:///"):].split("?", 1)[0]
    if not db or db == ":memory:":
        return None
    return Path(db).resolve()


class MetricsReader:
    """Read-only metric queries on one MLflow SQLite database."""

    def __init__(self, db: Path):
        self.db = db
        self._uri = f"file:{quote(str(db))}?mode=ro"
        # Known once it matched; a mismatch is checked again next time (cheap), since a
        # database being created or migrated by MLflow matches a moment later.
        self._schema_ok = False

    def _connect(self) -> sqlite3.Connection | None:
        if not self.db.is_file():
            return None  # MLflow creates it on first use; until then MLflow's API answers
        conn = sqlite3.connect(self._uri, uri=True, timeout=10.0, check_same_thread=False)
        if not self._schema_ok:
            self._schema_ok = _schema_matches(conn)
            if not self._schema_ok:
                log.debug("MLflow database %s: schema not (yet) known, read through MLflow",
                          self.db)
                conn.close()
                return None
        return conn

    def _query(self, sql: str, args: tuple[str, ...]) -> list[tuple[Any, ...]] | None:
        """Rows of ``sql`` when the run exists; None when this reader cannot answer."""
        try:
            conn = self._connect()
            if conn is None:
                return None
            try:
                known = conn.execute("SELECT 1 FROM runs WHERE run_uuid = ?", args[:1]).fetchone()
                if known is None:
                    return None  # no such run: MLflow's API raises its own error
                return conn.execute(sql, args).fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            log.debug("MLflow database %s not read directly: %s", self.db, exc)
            return None

    def metric_series(self, run_id: str, key: str, x: Literal["step", "time"] = "step"
                      ) -> tuple[Sequence[int], Sequence[int], list[float]] | None:
        """(steps, timestamps in ms, values with NaN as NaN) of one metric, sorted by step
        then time (``x="time"``: time then step), then value, as MLflow orders ties;
        None: ask MLflow."""
        first = "step, timestamp" if x == "step" else "timestamp, step"
        rows = self._query(f"SELECT {first}, value, is_nan FROM metrics"
                           f" WHERE run_uuid = ? AND key = ? ORDER BY {first}, value",
                           (run_id, key))
        if rows is None:
            return None
        if not rows:
            return [], [], []
        a, b, values, nans = zip(*rows, strict=True)
        steps, times = (a, b) if x == "step" else (b, a)
        if any(nans):
            return steps, times, [math.nan if nan else v
                                  for v, nan in zip(values, nans, strict=True)]
        return steps, times, list(values)

    def latest_metrics(self, run_id: str) -> list[tuple[str, float, int, int]] | None:
        """``[(key, value, timestamp ms, step)]``: each metric's latest value (what
        ``get_run().data.metrics`` holds); None: ask MLflow."""
        rows = self._query(
            "SELECT key, value, timestamp, step, is_nan FROM latest_metrics WHERE run_uuid = ?",
            (run_id,))
        if rows is None:
            return None
        return [(k, math.nan if nan else v, t, s) for k, v, t, s, nan in rows]


def _schema_matches(conn: sqlite3.Connection) -> bool:
    try:
        for table, columns in SCHEMA.items():
            have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if not columns <= have:
                return False
        return True
    except sqlite3.Error:
        return False


_readers: dict[str, MetricsReader] = {}
_lock = threading.Lock()


def reader(tracking_uri: str) -> MetricsReader | None:
    """The reader for a ``sqlite:///`` tracking URI (one per database), else None."""
    db = sqlite_path(tracking_uri)
    if db is None:
        return None
    with _lock:
        found = _readers.get(str(db))
        if found is None:
            found = _readers[str(db)] = MetricsReader(db)
        return found
