"""The run store: SQLite in WAL mode, shared by the server, the CLI and kernels.

- WAL lets readers go on while one process writes. Every write is a
  ``BEGIN IMMEDIATE`` transaction, so writers queue on the busy timeout instead
  of failing when a read transaction would have to be upgraded to a write.
- sqlite3 connections must not be used by two threads at once and the async
  engine calls in through ``asyncio.to_thread``, so each thread gets its own
  connection (created lazily, closed when the thread goes away or on ``close``).
- Filtered/sorted fields are columns, the record itself is JSON; both are
  derived from the record in one place (``_row``) so they never disagree. The
  state history lives in its own append-only table and is the only copy of it.
- Schema changes are numbered steps in ``MIGRATIONS``; ``PRAGMA user_version``
  says how many have been applied.
"""
from __future__ import annotations

import builtins
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11 on

from ..core.errors import Conflict, HpcmlError, NotFound
from ..core.states import RunState
from .models import CodeIdentity, RunRecord, StateChange, SweepRecord

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 10.0
MIN_PREFIX = 4  # shortest id prefix `get` resolves
ACTIVE_STATES: tuple[RunState, ...] = tuple(s for s in RunState if not s.terminal)
# Fields the store manages itself: the state moves only through `transition`,
# the timestamps and id identify/order the run.
_MANAGED_FIELDS = frozenset({"id", "state", "state_history", "created_at", "updated_at"})
_TEXT_COLUMNS = ("name", "id", "entry_point", "project_name", "backend_job_id")
_IN_BATCH = 500  # ids per `IN (...)`; well under SQLite's bound-parameter limit

# --------------------------------------------------------------------------- schema

Migration = Callable[[sqlite3.Connection], None]


def _sql(*statements: str) -> Migration:
    """A migration made of plain SQL statements (run one by one: executescript would commit)."""

    def apply(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement)

    return apply


_V1 = _sql(
    """CREATE TABLE runs (
        id             TEXT PRIMARY KEY,
        name           TEXT NOT NULL,
        project_name   TEXT NOT NULL,
        project_path   TEXT NOT NULL,
        entry_point    TEXT NOT NULL,
        backend        TEXT NOT NULL,
        backend_job_id TEXT,
        experiment_name TEXT,
        experiment_id  TEXT,
        state          TEXT NOT NULL,
        created_at     REAL NOT NULL,
        updated_at     REAL NOT NULL,
        record         TEXT NOT NULL
    )""",
    # Every list index ends in the list order, so a filtered page is an index range scan.
    "CREATE INDEX runs_by_created ON runs (created_at DESC, id)",
    "CREATE INDEX runs_by_state ON runs (state, created_at DESC, id)",
    "CREATE INDEX runs_by_project_name ON runs (project_name, created_at DESC, id)",
    "CREATE INDEX runs_by_project_path ON runs (project_path, created_at DESC, id)",
    "CREATE INDEX runs_by_experiment_name ON runs (experiment_name, created_at DESC, id)",
    "CREATE INDEX runs_by_experiment_id ON runs (experiment_id, created_at DESC, id)",
    "CREATE INDEX runs_by_updated ON runs (updated_at)",
    """CREATE TABLE state_history (
        run_id  TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        seq     INTEGER NOT NULL,
        state   TEXT NOT NULL,
        at      REAL NOT NULL,
        message TEXT,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID""",
    """CREATE TRIGGER state_history_append_only BEFORE UPDATE ON state_history
       BEGIN SELECT RAISE(ABORT, 'state_history is append-only'); END""",
    """CREATE TABLE sync_state (
        run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
        state  TEXT NOT NULL
    ) WITHOUT ROWID""",
)

# Archived runs are hidden from default listings; the index keeps that listing a range scan.
_V2_ARCHIVED = _sql(
    "ALTER TABLE runs ADD COLUMN archived INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX runs_by_archived ON runs (archived, created_at DESC, id)",
)

# Runs whose MLflow run may not show their state (an MLflow write failed): every poll pass
# tries again, also after a restart, until MLflow follows. `marked_at` tells a later failure
# from the one a retry started from.
_V3_MLFLOW_PENDING = _sql(
    """CREATE TABLE mlflow_pending (
        run_id    TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
        marked_at REAL NOT NULL,
        error     TEXT
    ) WITHOUT ROWID""",
)

# Sweeps: one row per sweep; its children are runs with `sweep_id` set (their counts by
# state are read with the index, never stored twice).
_V4_SWEEPS = _sql(
    """CREATE TABLE sweeps (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        project_name TEXT NOT NULL,
        project_path TEXT NOT NULL,
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL,
        record       TEXT NOT NULL
    )""",
    "CREATE INDEX sweeps_by_created ON sweeps (created_at DESC, id)",
    "ALTER TABLE runs ADD COLUMN sweep_id TEXT",
    "CREATE INDEX runs_by_sweep ON runs (sweep_id, state)",
)

# Schedules (engine/schedule_store.py): one row per schedule, its cursor `next_at` a column
# (what is due is an index range); one row per firing, keyed by (schedule, scheduled time)
# so that no time fires twice, its run id chosen with it and unique too. A schedule's runs
# carry its id and time, unique together: the run table itself refuses a second run.
_V5_SCHEDULES = _sql(
    """CREATE TABLE schedules (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        next_at    REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        record     TEXT NOT NULL
    )""",
    "CREATE INDEX schedules_by_next ON schedules (next_at)",
    """CREATE TABLE firings (
        schedule_id  TEXT NOT NULL,
        scheduled_at REAL NOT NULL,
        run_id       TEXT NOT NULL UNIQUE,
        state        TEXT NOT NULL,
        manual       INTEGER NOT NULL DEFAULT 0,
        message      TEXT,
        claimed_host TEXT,
        claimed_pid  INTEGER,
        claimed_at   REAL,
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL,
        PRIMARY KEY (schedule_id, scheduled_at)
    ) WITHOUT ROWID""",
    "CREATE INDEX firings_pending ON firings (state) WHERE state = 'pending'",
    "ALTER TABLE runs ADD COLUMN schedule_id TEXT",
    "ALTER TABLE runs ADD COLUMN scheduled_at REAL",
    "CREATE UNIQUE INDEX runs_by_firing ON runs (schedule_id, scheduled_at)"
    " WHERE schedule_id IS NOT NULL",
)

# Deployments (engine/deployment_store.py): one row per name; a name is reused only once
# its deployment has ended (the old row is replaced).
_V6_DEPLOYMENTS = _sql(
    """CREATE TABLE deployments (
        name       TEXT PRIMARY KEY,
        state      TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        record     TEXT NOT NULL
    )""",
)

# Append only; never edit a released step. Step i brings the schema to version i + 1.
MIGRATIONS: list[Migration] = [_V1, _V2_ARCHIVED, _V3_MLFLOW_PENDING, _V4_SWEEPS, _V5_SCHEDULES,
                               _V6_DEPLOYMENTS]


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> None:
    target = len(migrations)
    version = _user_version(conn)
    if version == target:
        return  # the common case: no write lock taken at open
    if version < target:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: a concurrent opener may have migrated meanwhile.
            version = _user_version(conn)
            for number in range(version, target):
                migrations[number](conn)
                conn.execute(f"PRAGMA user_version = {number + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    if version > target:
        raise HpcmlError(
            f"the run store has schema version {version}, newer than this version of "
            f"jupyterlab-hpcml knows ({target}); upgrade jupyterlab-hpcml"
        )


# --------------------------------------------------------------------------- rows


# Records are stored as the model's JSON, marked first with the shape of the model that
# wrote them (an extra key every reader ignores). A listing sends a record so marked as
# it is stored, without validating it again; one written by another shape of the model
# (e.g. before a field was added) goes through the model, which fills in the defaults.
_SHAPE = hashlib.sha256(
    repr([(m.__name__, m.model_fields) for m in (RunRecord, CodeIdentity)]).encode()
).hexdigest()[:16]
_SHAPE_PREFIX = f'{{"_shape":"{_SHAPE}",'


def _record_json(record: RunRecord) -> str:
    """The stored text of a record: its JSON without the history, with the shape mark."""
    return _SHAPE_PREFIX + record.model_dump_json(exclude={"state_history"})[1:]


def _row(record: RunRecord) -> dict[str, Any]:
    """The `runs` row for a record: the only place columns are derived from a record."""
    return {
        "id": record.id,
        "name": record.name,
        "project_name": record.project_name,
        "project_path": record.project_path,
        "entry_point": record.entry_point,
        "backend": record.backend,
        "backend_job_id": record.backend_job_id,
        "experiment_name": record.mlflow_experiment_name,
        "experiment_id": record.mlflow_experiment_id,
        "state": record.state.value,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        # The history table is the one copy of the history.
        "record": _record_json(record),
        "archived": int(record.archived),  # last ones: added by migrations (ALTER TABLE appends)
        "sweep_id": record.sweep_id,
        "schedule_id": record.schedule_id,
        "scheduled_at": record.scheduled_at,
    }


_COLUMNS = tuple(
    _row(RunRecord(id="", name="", project_path="", project_name="", entry_point="",
                   command="", backend="")).keys()
)
_TERMINAL_VALUES = tuple(s.value for s in RunState if s.terminal)
_STARTED = (
    "(SELECT MIN(h.at) FROM state_history h WHERE h.run_id = runs.id AND h.state = 'RUNNING')"
)
_ENDED = (
    "(SELECT MIN(h.at) FROM state_history h WHERE h.run_id = runs.id AND h.state IN "
    f"({', '.join(repr(s) for s in _TERMINAL_VALUES)}))"
)
# Sortable columns of the runs tab → SQL expression; `:now` in duration is "now".
ROW_SORTS: dict[str, str] = {
    "name": "name COLLATE NOCASE",
    "entry_point": "entry_point",
    "backend": "backend",
    "project": "project_name",
    "job_id": "backend_job_id",
    "state": "state",
    "submitted": "created_at",
    "updated": "updated_at",
    "duration": f"(COALESCE({_ENDED}, :now) - {_STARTED})",
}
_ROW_KEYS = ("id", "name", "project_name", "entry_point", "backend", "connection",
             "backend_job_id", "state", "created_at", "updated_at", "started_at", "ended_at",
             "exit_code", "mlflow_run_id", "mlflow_experiment_id", "mlflow_experiment_name",
             "archived", "schedule_id")


def _named(where: str, params: list[Any]) -> tuple[str, dict[str, Any]]:
    """The store's `?` WHERE clause with named parameters, so it mixes with `:now`."""
    named: dict[str, Any] = {}
    parts = where.split("?")
    out = parts[0]
    for i, part in enumerate(parts[1:]):
        named[f"p{i}"] = params[i]
        out += f":p{i}" + part
    return out, named


_INSERT_RUN = (
    f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})"
)
_UPDATE_RUN = (
    f"UPDATE runs SET {', '.join(f'{c} = :{c}' for c in _COLUMNS if c != 'id')} WHERE id = :id"
)
_INSERT_HISTORY = (
    "INSERT INTO state_history (run_id, seq, state, at, message) VALUES (?, ?, ?, ?, ?)"
)


# A sweep's child that no later attempt repeats: the one its counts and state go by.
_LATEST = "json_extract(record, '$.superseded_by') IS NULL"


def _sweep_json(sweep: SweepRecord) -> str:
    return sweep.model_dump_json(exclude={"counts", "state"})


def sweep_state(counts: dict[str, int]) -> RunState | None:
    """A sweep's state from its children's counts: RUNNING while any is active, then
    FINISHED when all finished, FAILED when any failed or timed out, else CANCELLED."""
    if not counts:
        return None
    if any(not RunState(s).terminal for s in counts):
        return RunState.RUNNING
    if set(counts) == {RunState.FINISHED.value}:
        return RunState.FINISHED
    if counts.get(RunState.FAILED.value) or counts.get(RunState.TIMEOUT.value):
        return RunState.FAILED
    return RunState.CANCELLED


def _record(json_text: str) -> RunRecord:
    return RunRecord.model_validate_json(json_text)


class RunJson(NamedTuple):
    """A run as the JSON text of ``RunRecord.model_dump_json()`` (history included), and
    what a listing adds to it, read without building the model."""

    id: str
    project_path: str
    started_at: float | None
    ended_at: float | None
    json: str


class ListFilters(TypedDict, total=False):
    """The keywords of ``RunStore.list`` and ``list_json`` (defaults in ``RunStore._page``)."""

    states: Collection[RunState] | None
    project: str | None
    experiment: str | None
    text: str | None
    archived: bool | None
    schedule: str | None
    limit: int
    offset: int


_History = builtins.list[tuple[str, float, "str | None"]]


def _run_json(run_id: str, project_path: str, text: str, history: _History) -> RunJson:
    if text.startswith(_SHAPE_PREFIX):
        body = "{" + text[len(_SHAPE_PREFIX):]  # the fields as the model dumps them
    else:
        body = _record(text).model_dump_json(exclude={"state_history"})
    changes = json.dumps([{"state": s, "at": at, "message": m} for s, at, m in history])
    # As RunRecord.started_at / ended_at, from the rows.
    started = next((at for s, at, _ in history if s == RunState.RUNNING.value), None)
    ended = next((at for s, at, _ in history if s in _TERMINAL_VALUES), None)
    return RunJson(run_id, project_path, started, ended,
                   f'{body[:-1]},"state_history":{changes}}}')


def _check_fields(fields: dict[str, Any]) -> None:
    managed = sorted(set(fields) & _MANAGED_FIELDS)
    if managed:
        raise ValueError(f"the store manages {', '.join(managed)}; use transition() for the state")
    unknown = sorted(set(fields) - set(RunRecord.model_fields))
    if unknown:
        raise ValueError(f"RunRecord has no field {', '.join(unknown)}")


def _changed(record: RunRecord, fields: dict[str, Any], state: RunState | None = None) -> RunRecord:
    """A validated copy of ``record`` with ``fields`` (and ``state``) set."""
    data = record.model_dump()
    data.update(fields)
    if state is not None:
        data["state"] = state
    return RunRecord.model_validate(data)


def next_updated_at(conn: sqlite3.Connection) -> float:
    """Strictly after every stored ``updated_at``, across all runs (callers hold the write
    lock), so ``changed_since(last seen)`` never misses a write made in the same clock tick."""
    (latest,) = conn.execute("SELECT MAX(updated_at) FROM runs").fetchone()
    now = time.time()
    return now if latest is None else max(now, latest + 1e-6)


def prefix_end(prefix: str) -> str | None:
    """The first text after every id starting with ``prefix`` (for ``id >= ? AND id < ?``,
    a range on the primary key); None when no id can start so (ids are ASCII letters and
    digits: anything else matches nothing, and U+10FFFF has no successor)."""
    if not (prefix.isascii() and prefix.isalnum()):
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _filters(
    states: Collection[RunState] | None,
    project: str | None,
    experiment: str | None,
    text: str | None,
    archived: bool | None = False,
    schedule: str | None = None,
) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) shared by the page and the count.

    ``archived``: False hides archived runs (the default listing), True shows only them,
    None shows both."""
    clauses: list[str] = []
    params: list[Any] = []
    # Both values spelled out when both are wanted: the archived index then serves the runs
    # tab's sorted page (about 15 ms at 10,000 runs instead of 250 ms for a table scan).
    clauses.append("archived IN (0, 1)" if archived is None else "archived = ?")
    params += [] if archived is None else [int(archived)]
    if states is not None:
        values = sorted({RunState(s).value for s in states})
        clauses.append(f"state IN ({_placeholders(len(values))})" if values else "0")
        params += values
    if project is not None:
        clauses.append("(project_name = ? OR project_path = ?)")
        params += [project, project]
    if experiment is not None:
        clauses.append("(experiment_name = ? OR experiment_id = ?)")
        params += [experiment, experiment]
    if schedule is not None:
        clauses.append("schedule_id = ?")
        params.append(schedule)
    if text:
        # LIKE is case-insensitive (ASCII); substring search cannot use an index anyway.
        clauses.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in _TEXT_COLUMNS) + ")")
        params += [_like_pattern(text)] * len(_TEXT_COLUMNS)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


# --------------------------------------------------------------------------- store


class _Connection(sqlite3.Connection):
    """A subclass only so that the store can hold weak references to its connections."""


class RunStore:
    """Runs, their state history and offline-sync offsets, in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.Lock()
        # Weak: a thread's connection is closed when the thread (and its local) goes away.
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._closed = False
        # run id → (updated_at, record) of the last `active()` answer
        self._active_cache: dict[str, tuple[float, RunRecord]] = {}
        try:
            conn = self._conn()
            _enable_wal(conn, self.path)
            _migrate(conn, MIGRATIONS)
        except BaseException:
            self.close()
            raise

    # -- connections and transactions

    def _connect(self) -> _Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            factory=_Connection,
        )
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")  # durable across app crashes; safe in WAL
        return conn

    def _conn(self) -> _Connection:
        local = self._local
        conn: _Connection | None = getattr(local, "conn", None)
        if conn is not None and local.pid == os.getpid():
            if not self._closed:
                return conn
            conn.close()
            local.conn = None
            raise HpcmlError(f"the run store {self.path} is closed")
        if conn is not None:
            # Forked child: the parent's connection must not be used (or closed) here.
            _FORK_LEFTOVERS.append(conn)
        with self._lock:
            if self._closed:
                raise HpcmlError(f"the run store {self.path} is closed")
            conn = self._connect()
            self._connections.add(conn)
        local.conn, local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute(begin)
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._transaction("BEGIN IMMEDIATE")

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        # A read transaction, so that e.g. a page and its count see the same snapshot.
        return self._transaction("BEGIN")

    # The same, for the modules that keep their own tables in this file (schedule_store).
    write = _write
    read = _read

    def close(self) -> None:
        """Close this thread's connection now; other threads' ones when they next touch the
        store or end. Closing a connection another thread is using crashes SQLite."""
        with self._lock:
            self._closed = True
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
            self._local.conn = None

    @property
    def schema_version(self) -> int:
        return _user_version(self._conn())

    # -- reading

    def _load(self, conn: sqlite3.Connection, run_id: str) -> RunRecord:
        """The stored record without its history; NotFound if ``run_id`` is not an exact id."""
        row = conn.execute("SELECT record FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFound(f"no run {run_id!r}")
        return _record(row[0])

    def _resolve(self, conn: sqlite3.Connection, run_id: str) -> RunRecord:
        """Exact id, else a unique prefix of at least MIN_PREFIX characters."""
        row = conn.execute("SELECT record FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is not None:
            return _record(row[0])
        if len(run_id) < MIN_PREFIX:
            raise NotFound(
                f"no run {run_id!r} (an id prefix needs at least {MIN_PREFIX} characters)"
            )
        # A range on the primary key rather than LIKE, which is case-insensitive and unindexed.
        upper = prefix_end(run_id)
        rows = [] if upper is None else conn.execute(
            "SELECT id, record FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 3",
            (run_id, upper),
        ).fetchall()
        if not rows:
            raise NotFound(f"no run {run_id!r}")
        if len(rows) > 1:
            examples = ", ".join(r[0] for r in rows[:2])
            raise NotFound(f"run id prefix {run_id!r} is ambiguous (matches {examples}, ...)")
        return _record(rows[0][1])

    def _with_history(
        self, conn: sqlite3.Connection, records: builtins.list[RunRecord]
    ) -> builtins.list[RunRecord]:
        by_id = {r.id: r for r in records}
        for batch in _batches(builtins.list(by_id), _IN_BATCH):
            rows = conn.execute(
                "SELECT run_id, state, at, message FROM state_history"
                f" WHERE run_id IN ({_placeholders(len(batch))}) ORDER BY run_id, seq",
                batch,
            )
            for run_id, state, at, message in rows:
                # model_construct: the rows were validated when written.
                change = StateChange.model_construct(state=RunState(state), at=at, message=message)
                by_id[run_id].state_history.append(change)
        return records

    def _query(
        self, conn: sqlite3.Connection, sql: str, params: Iterable[Any]
    ) -> builtins.list[RunRecord]:
        records = [_record(text) for (text,) in conn.execute(sql, builtins.list(params))]
        return self._with_history(conn, records)

    def _query_json(
        self, conn: sqlite3.Connection, sql: str, params: Iterable[Any]
    ) -> builtins.list[RunJson]:
        """``_query`` for ``SELECT id, project_path, record``: the runs as JSON text."""
        rows = conn.execute(sql, builtins.list(params)).fetchall()
        history: dict[str, _History] = {run_id: [] for run_id, _, _ in rows}
        for batch in _batches(builtins.list(history), _IN_BATCH):
            for run_id, state, at, message in conn.execute(
                "SELECT run_id, state, at, message FROM state_history"
                f" WHERE run_id IN ({_placeholders(len(batch))}) ORDER BY run_id, seq",
                batch,
            ):
                history[run_id].append((state, at, message))
        return [_run_json(run_id, path, text, history[run_id]) for run_id, path, text in rows]

    def get(self, run_id: str) -> RunRecord:
        with self._read() as conn:
            return self._with_history(conn, [self._resolve(conn, run_id)])[0]

    def list(self, **filters: Unpack[ListFilters]) -> tuple[builtins.list[RunRecord], int]:
        """A page of runs, newest first, and how many runs match in all.

        ``states`` empty matches nothing (None means any state); ``archived`` as in
        ``_filters`` (default: archived runs left out); 50 runs a page by default.
        """
        return self._page(self._query, "record", **filters)

    def list_json(self, **filters: Unpack[ListFilters]) -> tuple[builtins.list[RunJson], int]:
        """``list`` as JSON text: what a REST listing sends, without building the models."""
        return self._page(self._query_json, "id, project_path, record", **filters)

    def _page(self, query: Callable[..., builtins.list[Any]], columns: str, *,
              states: Collection[RunState] | None = None, project: str | None = None,
              experiment: str | None = None, text: str | None = None,
              archived: bool | None = False, schedule: str | None = None,
              limit: int = 50, offset: int = 0) -> tuple[builtins.list[Any], int]:
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        where, params = _filters(states, project, experiment, text, archived, schedule)
        with self._read() as conn:
            page = query(
                conn,
                f"SELECT {columns} FROM runs{where} ORDER BY created_at DESC, id"
                " LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
            (total,) = conn.execute(f"SELECT COUNT(*) FROM runs{where}", params).fetchone()
        return page, int(total)

    def rows(self, *, sort: str = "submitted", descending: bool = True,
             states: Collection[RunState] | None = None, text: str | None = None,
             archived: bool | None = False, schedule: str | None = None,
             limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """A page of compact rows for the runs tab, sorted by any ``ROW_SORTS`` column,
        with the total and the change cursor (for ``changed_since``), read together.

        Top-level items only: single runs (``kind`` "run") and one row per sweep (``kind``
        "sweep", its children's ``counts`` by state and the state they make), merged in one
        order; a sweep's children are listed by ``sweep_children``."""
        where, params = _named(*_filters(states, None, None, text, archived, schedule))
        order = "DESC" if descending else "ASC"
        expr = ROW_SORTS[sort]
        # A sweep's columns, as named in the runs table so that the same filters and sort
        # keys apply; no job id but its first array job, no duration, never archived.
        active = ", ".join(repr(s.value) for s in ACTIVE_STATES)
        sweep_items = f"""SELECT s.id, s.name, s.project_name,
            json_extract(s.record, '$.entry_point') AS entry_point,
            json_extract(s.record, '$.backend') AS backend,
            json_extract(s.record, '$.connection') AS connection,
            json_extract(s.record, '$.array_jobs[0]') AS backend_job_id,
            CASE WHEN c.total IS NULL THEN 'SUBMITTING' WHEN c.active > 0 THEN 'RUNNING'
                 WHEN c.finished = c.total THEN 'FINISHED' WHEN c.failed > 0 THEN 'FAILED'
                 ELSE 'CANCELLED' END AS state,
            s.created_at, MAX(s.updated_at, COALESCE(c.updated, 0)) AS updated_at,
            NULL AS started_at, NULL AS ended_at, NULL AS exit_code,
            json_extract(s.record, '$.mlflow_run_id') AS mlflow_run_id,
            json_extract(s.record, '$.mlflow_experiment_id') AS mlflow_experiment_id,
            json_extract(s.record, '$.mlflow_experiment_name') AS mlflow_experiment_name,
            0 AS archived, NULL AS schedule_id, c.counts AS counts
            FROM sweeps s LEFT JOIN (
                SELECT sweep_id, json_group_object(state, n) AS counts, SUM(n) AS total,
                    SUM(CASE WHEN state IN ({active}) THEN n ELSE 0 END) AS active,
                    SUM(CASE WHEN state = 'FINISHED' THEN n ELSE 0 END) AS finished,
                    SUM(CASE WHEN state IN ('FAILED', 'TIMEOUT') THEN n ELSE 0 END) AS failed,
                    MAX(updated) AS updated
                FROM (SELECT sweep_id, state, COUNT(*) AS n, MAX(updated_at) AS updated
                      FROM runs WHERE sweep_id IS NOT NULL AND {_LATEST}
                      GROUP BY sweep_id, state)
                GROUP BY sweep_id) c ON c.sweep_id = s.id"""
        # Sorts a sweep has no value for (duration) put them last, as runs without one.
        sweep_key = "NULL" if sort == "duration" else expr
        # NULLs (no job id, never started) last in either direction; id breaks ties stably.
        # A compound ORDER BY names result columns: each arm computes its key and NULL flag.
        run_items = f"""SELECT 'run' AS kind, ({expr}) IS NULL AS key_null, ({expr}) AS key,
            id, name, project_name, entry_point, backend,
            json_extract(record, '$.connection'), backend_job_id, state, created_at, updated_at,
            {_STARTED}, {_ENDED}, json_extract(record, '$.exit_code'),
            json_extract(record, '$.mlflow_run_id'), json_extract(record, '$.mlflow_experiment_id'),
            experiment_name, archived = 1, schedule_id, NULL AS counts
            FROM runs{where} AND sweep_id IS NULL"""
        sql = (f"{run_items} UNION ALL SELECT 'sweep', ({sweep_key}) IS NULL, ({sweep_key}),"
               f" {', '.join(_ROW_KEYS)}, counts FROM ({sweep_items}){where}"
               f" ORDER BY key_null, key {order}, created_at DESC, id LIMIT :limit OFFSET :offset")
        args = {**params, "now": time.time(), "limit": limit, "offset": offset}
        with self._read() as conn:
            rows = []
            for kind, _null, _key, *values in conn.execute(sql, args):
                row = dict(zip((*_ROW_KEYS, "counts"), values, strict=True))
                row["kind"] = kind
                row["archived"] = bool(row["archived"])  # SQLite answers 0/1
                row["counts"] = json.loads(row["counts"]) if row["counts"] else None
                if kind == "run":
                    del row["counts"]
                rows.append(row)
            (runs,) = conn.execute(
                f"SELECT COUNT(*) FROM runs{where} AND sweep_id IS NULL", params).fetchone()
            (sweeps,) = conn.execute(
                f"SELECT COUNT(*) FROM ({sweep_items}){where}", params).fetchone()
            (cursor,) = conn.execute("SELECT MAX(updated_at) FROM runs").fetchone()
        return {"rows": rows, "total": int(runs) + int(sweeps), "cursor": cursor or 0.0}

    def dataset_digests(self, connection: str) -> set[str]:
        """The dataset versions the stored runs of ``connection`` read (for the data GC:
        a version no kept run read may go)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT DISTINCT json_extract(d.value, '$.digest') FROM runs, "
                "json_each(runs.record, '$.datasets') AS d "
                "WHERE json_extract(runs.record, '$.connection') = ?", (connection,)).fetchall()
        return {r[0] for r in rows if r[0]}

    def active(self) -> builtins.list[RunRecord]:
        """Every run not in a terminal state (SUBMITTING and UNKNOWN included), newest first.

        The poller asks every few seconds, mostly for runs nobody changed: a record whose
        ``updated_at`` (bumped by every write, with its history) is what the last call
        read is that same object again, not parsed anew. So callers must not modify
        the records (the engine never does: changes go through the store)."""
        states = [s.value for s in ACTIVE_STATES]
        with self._read() as conn:
            current = conn.execute(
                f"SELECT id, updated_at FROM runs WHERE state IN ({_placeholders(len(states))})"
                " ORDER BY created_at DESC, id",
                states,
            ).fetchall()
            known = self._active_cache
            stale = [run_id for run_id, at in current
                     if run_id not in known or known[run_id][0] != at]
            fresh: dict[str, RunRecord] = {}
            for batch in _batches(stale, _IN_BATCH):
                fresh.update((r.id, r) for r in self._query(
                    conn, f"SELECT record FROM runs WHERE id IN ({_placeholders(len(batch))})",
                    batch))
        # Replaced whole (never changed in place): concurrent callers each see a consistent one.
        self._active_cache = {
            run_id: (at, fresh[run_id] if run_id in fresh else known[run_id][1])
            for run_id, at in current
        }
        return [record for _, record in self._active_cache.values()]

    def changed_since_json(self, ts: float, limit: int = 500) -> builtins.list[RunJson]:
        """``changed_since`` as JSON text (see ``list_json``)."""
        with self._read() as conn:
            return self._query_json(
                conn,
                "SELECT id, project_path, record FROM runs WHERE updated_at > ?"
                " ORDER BY updated_at, id LIMIT ?",
                [ts, limit],
            )

    def changed_since(self, ts: float, limit: int = 500) -> builtins.list[RunRecord]:
        """Runs with ``updated_at > ts``, oldest change first: pass the last record's
        ``updated_at`` as the next ``ts`` to page on without missing any."""
        with self._read() as conn:
            return self._query(
                conn,
                "SELECT record FROM runs WHERE updated_at > ? ORDER BY updated_at, id LIMIT ?",
                [ts, limit],
            )

    # -- writing

    def insert(self, record: RunRecord) -> None:
        """Store a new run. ``updated_at`` is set by the store; Conflict if the id exists."""
        history = builtins.list(record.state_history) or [
            StateChange(state=record.state, at=record.created_at)
        ]
        if history[-1].state != record.state:
            history.append(StateChange(state=record.state))  # the history must end in the state
        with self._write() as conn:
            stored = record.model_copy(update={"updated_at": next_updated_at(conn)})
            try:
                conn.execute(_INSERT_RUN, _row(stored))
            except sqlite3.IntegrityError as e:
                raise Conflict(f"run {record.id!r} already exists") from e
            conn.executemany(
                _INSERT_HISTORY,
                [(record.id, seq, c.state.value, c.at, c.message) for seq, c in enumerate(history)],
            )

    def insert_many(self, records: Sequence[RunRecord]) -> None:
        """Store new runs in one transaction (a sweep's children): all or none."""
        with self._write() as conn:
            for record in records:
                history = builtins.list(record.state_history) or [
                    StateChange(state=record.state, at=record.created_at)]
                stored = record.model_copy(update={"updated_at": next_updated_at(conn)})
                try:
                    conn.execute(_INSERT_RUN, _row(stored))
                except sqlite3.IntegrityError as e:
                    raise Conflict(f"run {record.id!r} already exists") from e
                conn.executemany(_INSERT_HISTORY, [
                    (record.id, seq, c.state.value, c.at, c.message)
                    for seq, c in enumerate(history)])

    # -- sweeps

    def insert_sweep(self, sweep: SweepRecord) -> None:
        with self._write() as conn:
            try:
                conn.execute(
                    "INSERT INTO sweeps (id, name, project_name, project_path, created_at,"
                    " updated_at, record) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (sweep.id, sweep.name, sweep.project_name, sweep.project_path,
                     sweep.created_at, next_updated_at(conn), _sweep_json(sweep)))
            except sqlite3.IntegrityError as e:
                raise Conflict(f"sweep {sweep.id!r} already exists") from e

    def get_sweep(self, sweep_id: str) -> SweepRecord:
        """Exact id, else a unique prefix of at least MIN_PREFIX characters; with counts."""
        with self._read() as conn:
            rows = conn.execute("SELECT record FROM sweeps WHERE id = ?", (sweep_id,)).fetchall()
            upper = prefix_end(sweep_id)
            if not rows and len(sweep_id) >= MIN_PREFIX and upper is not None:
                rows = conn.execute("SELECT record FROM sweeps WHERE id >= ? AND id < ?"
                                    " ORDER BY id LIMIT 2", (sweep_id, upper)).fetchall()
            if not rows:
                raise NotFound(f"no sweep {sweep_id!r}")
            if len(rows) > 1:
                raise NotFound(f"sweep id prefix {sweep_id!r} is ambiguous")
            return self._with_counts(conn, [SweepRecord.model_validate_json(rows[0][0])])[0]

    def update_sweep(self, sweep_id: str, **fields: Any) -> SweepRecord:
        with self._write() as conn:
            row = conn.execute("SELECT record FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            if row is None:
                raise NotFound(f"no sweep {sweep_id!r}")
            new = SweepRecord.model_validate_json(row[0]).model_copy(update=fields)
            new = SweepRecord.model_validate(new.model_dump())
            now = next_updated_at(conn)
            new.updated_at = now
            conn.execute("UPDATE sweeps SET name = ?, updated_at = ?, record = ? WHERE id = ?",
                         (new.name, now, _sweep_json(new), sweep_id))
            return self._with_counts(conn, [new])[0]

    def delete_sweep(self, sweep_id: str) -> None:
        """Delete a sweep that has no children left (delete them first)."""
        with self._write() as conn:
            (n,) = conn.execute("SELECT COUNT(*) FROM runs WHERE sweep_id = ?",
                                (sweep_id,)).fetchone()
            if n:
                raise Conflict(f"sweep {sweep_id} still has {n} runs")
            conn.execute("DELETE FROM sweeps WHERE id = ?", (sweep_id,))

    def list_sweeps(self, *, limit: int = 100, offset: int = 0) -> builtins.list[SweepRecord]:
        """Sweeps, newest first, with their children's counts by state."""
        with self._read() as conn:
            sweeps = [SweepRecord.model_validate_json(text) for (text,) in conn.execute(
                "SELECT record FROM sweeps ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                (limit, offset))]
            return self._with_counts(conn, sweeps)

    def sweep_children(self, sweep_id: str) -> builtins.list[RunRecord]:
        """A sweep's children, by point (re-runs of a point after the first)."""
        with self._read() as conn:
            runs = self._query(conn, "SELECT record FROM runs WHERE sweep_id = ?", [sweep_id])
        return sorted(runs, key=lambda r: (r.sweep_index or 0, r.created_at))

    def held_children(self, sweep_id: str) -> builtins.list[RunRecord]:
        """A sweep's children held back by its cap (QUEUED, no job yet), by point."""
        with self._read() as conn:
            runs = self._query(conn, "SELECT record FROM runs WHERE sweep_id = ? AND state = ?"
                               " AND json_extract(record, '$.held')",
                               [sweep_id, RunState.QUEUED.value])
        return sorted(runs, key=lambda r: (r.sweep_index or 0, r.created_at))

    def _with_counts(self, conn: sqlite3.Connection,
                     sweeps: builtins.list[SweepRecord]) -> builtins.list[SweepRecord]:
        for sweep in sweeps:
            counts = dict(conn.execute(
                f"SELECT state, COUNT(*) FROM runs WHERE sweep_id = ? AND {_LATEST}"
                " GROUP BY state",
                (sweep.id,)))
            sweep.counts = counts
            sweep.state = sweep_state(counts)
        return sweeps

    def _save(self, conn: sqlite3.Connection, record: RunRecord, now: float) -> RunRecord:
        record = record.model_copy(update={"updated_at": now, "state_history": []})
        conn.execute(_UPDATE_RUN, _row(record))
        return self._with_history(conn, [record])[0]

    def update(self, run_id: str, **fields: Any) -> RunRecord:
        """Set non-state fields of the run with exactly this id; returns the new record."""
        _check_fields(fields)
        with self._write() as conn:
            current = self._load(conn, run_id)
            new = _changed(current, fields)
            if new.model_dump() == current.model_dump():
                return self._with_history(conn, [current])[0]  # nothing changed: no bump
            return self._save(conn, new, next_updated_at(conn))

    def transition(
        self,
        run_id: str,
        state: RunState,
        *,
        message: str | None = None,
        expect: Collection[RunState] | None = None,
        where: Mapping[str, Any] | None = None,
        log_message: bool = False,
        **fields: Any,
    ) -> RunRecord | None:
        """Compare-and-set the state (and ``fields``) in one write transaction.

        Applies only when the current state is in ``expect`` (default: any
        non-terminal state) and something changes; a new state is appended to
        the history with ``message`` (also without a new state: ``log_message``).
        ``where``: fields that must have these values too. Returns the new record, or
        None when not applied, so of two processes recording the same change only one wins.
        """
        state = RunState(state)
        allowed = frozenset(ACTIVE_STATES if expect is None else (RunState(s) for s in expect))
        _check_fields(fields)
        with self._write() as conn:
            current = self._load(conn, run_id)
            if current.state not in allowed:
                return None
            if where and any(getattr(current, k) != v for k, v in where.items()):
                return None
            new = _changed(current, fields, state)
            if new.model_dump() == current.model_dump():
                return None
            now = next_updated_at(conn)
            if state != current.state or (log_message and message):
                (seq,) = conn.execute(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM state_history WHERE run_id = ?",
                    (run_id,),
                ).fetchone()
                conn.execute(_INSERT_HISTORY, (run_id, seq, state.value, now, message))
            return self._save(conn, new, now)

    def delete(self, run_id: str, *, expect: Collection[RunState]) -> RunRecord:
        """Delete the run with exactly this id, its state history and sync offsets, if its
        state is in ``expect`` (checked in the same write transaction: Conflict otherwise).
        Returns the deleted record."""
        allowed = frozenset(RunState(s) for s in expect)
        with self._write() as conn:
            current = self._with_history(conn, [self._load(conn, run_id)])[0]
            if current.state not in allowed:
                raise Conflict(f"run {run_id} is {current.state.value}")
            # Explicit, not only ON DELETE CASCADE: that needs foreign keys on in every opener.
            conn.execute("DELETE FROM state_history WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM sync_state WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM mlflow_pending WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        return current

    def snapshot_in_use(self, snapshot_id: str) -> bool:
        """Whether any stored run was made from this snapshot (re-runs share them), or a
        schedule pins it (its later firings run it)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT 1 FROM runs WHERE json_extract(record, '$.snapshot_id') = ? UNION ALL"
                " SELECT 1 FROM schedules WHERE json_extract(record, '$.snapshot_id') = ?"
                " LIMIT 1",
                (snapshot_id, snapshot_id),
            ).fetchone()
        return row is not None

    # -- MLflow writes to retry

    def mark_mlflow_pending(self, run_id: str, error: str) -> None:
        """Remember that the run's MLflow run may not show its state (see ``_V3``)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO mlflow_pending (run_id, marked_at, error) VALUES (?, ?, ?)"
                " ON CONFLICT (run_id) DO UPDATE SET marked_at = excluded.marked_at,"
                " error = excluded.error",
                (run_id, time.time(), error[:2000]),
            )

    def mlflow_pending(self) -> builtins.list[tuple[str, float]]:
        """(run id, marked_at) of every run waiting for an MLflow write."""
        with self._read() as conn:
            return [(r, float(t)) for r, t in conn.execute(
                "SELECT run_id, marked_at FROM mlflow_pending ORDER BY marked_at")]

    def clear_mlflow_pending(self, run_id: str, marked_at: float) -> None:
        """Done, unless a newer failure was marked since ``marked_at`` was read."""
        with self._write() as conn:
            conn.execute("DELETE FROM mlflow_pending WHERE run_id = ? AND marked_at = ?",
                         (run_id, marked_at))

    # -- offline tracking sync offsets

    def get_sync_state(self, run_id: str) -> dict[str, Any]:
        row = self._conn().execute(
            "SELECT state FROM sync_state WHERE run_id = ?", (run_id,)
        ).fetchone()
        return {} if row is None else dict(json.loads(row[0]))

    def set_sync_state(self, run_id: str, state: dict[str, Any]) -> None:
        with self._write() as conn:
            self._load(conn, run_id)  # NotFound rather than a foreign-key error
            conn.execute(
                "INSERT INTO sync_state (run_id, state) VALUES (?, ?)"
                " ON CONFLICT (run_id) DO UPDATE SET state = excluded.state",
                (run_id, json.dumps(state)),
            )


# Connections inherited across fork(): kept referenced so that garbage collection
# never closes them in the child (closing could checkpoint/unlink the parent's WAL).
_FORK_LEFTOVERS: builtins.list[sqlite3.Connection] = []


def _enable_wal(conn: sqlite3.Connection, path: Path) -> None:
    """Switch the file to WAL (persistent: later opens find it already set)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            break
        except sqlite3.OperationalError as e:
            # Concurrent first opens of a new file can report "locked" without waiting.
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    if str(mode).lower() != "wal":
        log.warning("run store %s: WAL mode unavailable (journal mode %s)", path, mode)
