"""Schedules and their firings, in the run store's SQLite file (tables: store.py, step 5).

Exactly once rests on the database alone, no leader election:

- What is due is taken in ONE write transaction (``take_due``): the schedules whose cursor
  ``next_at`` has passed are read, their firings inserted (primary key: schedule and
  scheduled time) and their cursors moved on, together. A second process, a restart or the
  headless scheduler taking the same time finds the cursor moved (or the key taken).
- A firing names its run id when it is recorded, and runs are unique by id and by
  (schedule, scheduled time): however often a firing is tried, one run at most exists.
- A firing is *claimed* by the process submitting it (host, pid, time). A claim whose
  process is gone (dead pid here; silent for ``FOREIGN_CLAIM_TIMEOUT`` elsewhere) may be
  taken over, so a firing interrupted before its run was created is completed, not dropped.
"""
from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from ..core.errors import Conflict, NotFound
from ..core.states import RunState
from .locks import HOST, pid_alive
from .models import Firing, FiringState, ScheduleRecord
from .store import MIN_PREFIX, RunStore, next_updated_at, prefix_end

FOREIGN_CLAIM_TIMEOUT = 600.0  # a claim from another host is stale after this long
_FIRING_COLUMNS = ("schedule_id", "scheduled_at", "run_id", "state", "manual", "message",
                   "created_at", "updated_at")
_TERMINAL = tuple(s.value for s in RunState if s.terminal)

# What a schedule's due times come to: the firings to insert and the record's new fields.
Planner = Callable[[ScheduleRecord, float], tuple[list[Firing], dict[str, Any]]]



def claim_is_stale(host: str | None, pid: int | None, at: float | None, now: float) -> bool:
    """Whether a firing's claim may be taken over (no claim, or its process is gone)."""
    if at is None:
        return True
    if host == HOST:
        return pid is None or (pid != os.getpid() and not pid_alive(pid))
    return now - at > FOREIGN_CLAIM_TIMEOUT


def _firing(row: sqlite3.Row | tuple[Any, ...], run_state: str | None = None) -> Firing:
    data = dict(zip(_FIRING_COLUMNS, row, strict=True))
    data["manual"] = bool(data["manual"])
    return Firing(**data, run_state=RunState(run_state) if run_state else None)


def _json(sched: ScheduleRecord) -> str:
    return sched.model_dump_json()


class ScheduleStore:
    """The schedule and firing tables of ``store``'s file."""

    def __init__(self, store: RunStore):
        self.store = store

    # -- schedules

    def insert(self, sched: ScheduleRecord) -> None:
        with self.store.write() as conn:
            try:
                conn.execute(
                    "INSERT INTO schedules (id, name, next_at, created_at, updated_at, record)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (sched.id, sched.name, sched.next_at, sched.created_at,
                     next_updated_at(conn), _json(sched)))
            except sqlite3.IntegrityError as e:
                raise Conflict(f"schedule {sched.id!r} already exists") from e

    def get(self, ref: str) -> ScheduleRecord:
        """By exact id, unique id prefix (at least MIN_PREFIX characters) or exact name."""
        with self.store.read() as conn:
            return self._resolve(conn, ref)

    @staticmethod
    def _resolve(conn: sqlite3.Connection, ref: str) -> ScheduleRecord:
        rows = conn.execute("SELECT record FROM schedules WHERE id = ?", (ref,)).fetchall()
        upper = prefix_end(ref)
        if not rows and len(ref) >= MIN_PREFIX and upper is not None:
            rows = conn.execute("SELECT record FROM schedules WHERE id >= ? AND id < ?"
                                " ORDER BY id LIMIT 2", (ref, upper)).fetchall()
        if not rows:
            rows = conn.execute("SELECT record FROM schedules WHERE name = ? LIMIT 2",
                                (ref,)).fetchall()
        if not rows:
            raise NotFound(f"no schedule {ref!r}")
        if len(rows) > 1:
            raise NotFound(f"schedule {ref!r} is ambiguous (use its id)")
        return ScheduleRecord.model_validate_json(rows[0][0])

    def all(self) -> list[ScheduleRecord]:
        with self.store.read() as conn:
            return [ScheduleRecord.model_validate_json(text) for (text,) in conn.execute(
                "SELECT record FROM schedules ORDER BY created_at DESC, id")]

    def update(self, sched_id: str, change: Callable[[ScheduleRecord], dict[str, Any]]
               ) -> ScheduleRecord:
        """Apply ``change(current)`` (the fields to set) in one write transaction."""
        with self.store.write() as conn:
            current = self._resolve(conn, sched_id)
            return self._save(conn, current, change(current))

    @staticmethod
    def _save(conn: sqlite3.Connection, current: ScheduleRecord,
              fields: dict[str, Any]) -> ScheduleRecord:
        new = ScheduleRecord.model_validate({**current.model_dump(), **fields})
        new.updated_at = next_updated_at(conn)
        conn.execute(
            "UPDATE schedules SET name = ?, next_at = ?, updated_at = ?, record = ? WHERE id = ?",
            (new.name, new.next_at, new.updated_at, _json(new), new.id))
        return new

    def delete(self, sched_id: str) -> None:
        """The schedule and its firings; the runs it created stay (with its id)."""
        with self.store.write() as conn:
            conn.execute("DELETE FROM firings WHERE schedule_id = ?", (sched_id,))
            conn.execute("DELETE FROM schedules WHERE id = ?", (sched_id,))

    def next_due(self) -> float | None:
        """The earliest cursor of an active schedule (None: nothing will fire)."""
        with self.store.read() as conn:
            (at,) = conn.execute("SELECT MIN(next_at) FROM schedules").fetchone()
            return float(at) if at is not None else None

    # -- firings

    def take_due(self, now: float, planner: Planner) -> list[Firing]:
        """Record the firings of every schedule due at ``now`` and move their cursors, in
        one write transaction (see the module's doc). The new firings, oldest first."""
        with self.store.write() as conn:
            rows = conn.execute(
                "SELECT record FROM schedules WHERE next_at IS NOT NULL AND next_at <= ?"
                " ORDER BY next_at", (now,)).fetchall()
            out: list[Firing] = []
            for (text,) in rows:
                sched = ScheduleRecord.model_validate_json(text)
                firings, fields = planner(sched, now)
                out += [f for f in firings if self._insert_firing(conn, f)]
                self._save(conn, sched, fields)
            return sorted(out, key=lambda f: f.scheduled_at)

    def add_firing(self, firing: Firing) -> bool:
        """Record one firing (a "run now"); False if its time is taken."""
        with self.store.write() as conn:
            return self._insert_firing(conn, firing)

    @staticmethod
    def _insert_firing(conn: sqlite3.Connection, f: Firing) -> bool:
        cur = conn.execute(
            f"INSERT OR IGNORE INTO firings ({', '.join(_FIRING_COLUMNS)})"
            f" VALUES ({', '.join('?' * len(_FIRING_COLUMNS))})",
            (f.schedule_id, f.scheduled_at, f.run_id, f.state, int(f.manual), f.message,
             f.created_at, f.created_at))
        return cur.rowcount == 1

    def pending(self) -> list[tuple[Firing, bool]]:
        """Firings not yet done, oldest first, each with whether it may be claimed now."""
        now = time.time()
        with self.store.read() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(_FIRING_COLUMNS)}, claimed_host, claimed_pid, claimed_at"
                " FROM firings WHERE state = 'pending' ORDER BY scheduled_at").fetchall()
        n = len(_FIRING_COLUMNS)
        return [(_firing(row[:n]), claim_is_stale(row[n], row[n + 1], row[n + 2], now))
                for row in rows]

    def claim(self, firing: Firing) -> bool:
        """Take ``firing`` for this process if it is pending and unclaimed or its claim is
        stale (checked and taken in one write transaction)."""
        with self.store.write() as conn:
            row = conn.execute(
                "SELECT claimed_host, claimed_pid, claimed_at FROM firings"
                " WHERE schedule_id = ? AND scheduled_at = ? AND state = 'pending'",
                (firing.schedule_id, firing.scheduled_at)).fetchone()
            now = time.time()
            if row is None or not claim_is_stale(row[0], row[1], row[2], now):
                return False
            conn.execute(
                "UPDATE firings SET claimed_host = ?, claimed_pid = ?, claimed_at = ?,"
                " updated_at = ? WHERE schedule_id = ? AND scheduled_at = ?",
                (HOST, os.getpid(), now, now, firing.schedule_id, firing.scheduled_at))
            return True

    def finish(self, firing: Firing, state: FiringState, message: str | None = None) -> Firing:
        with self.store.write() as conn:
            conn.execute(
                "UPDATE firings SET state = ?, message = ?, updated_at = ?"
                " WHERE schedule_id = ? AND scheduled_at = ?",
                (state, message, time.time(), firing.schedule_id, firing.scheduled_at))
        return firing.model_copy(update={"state": state, "message": message})

    def firings(self, sched_id: str, limit: int = 50) -> list[Firing]:
        """A schedule's firings, newest first, with the state of the run each created."""
        with self.store.read() as conn:
            rows = conn.execute(
                f"SELECT {', '.join('f.' + c for c in _FIRING_COLUMNS)}, r.state FROM firings f"
                " LEFT JOIN runs r ON r.id = f.run_id WHERE f.schedule_id = ?"
                " ORDER BY f.scheduled_at DESC LIMIT ?", (sched_id, limit)).fetchall()
        return [_firing(row[:-1], row[-1]) for row in rows]

    def runs_created(self, sched_id: str, *, manual: bool | None = None) -> int:
        """How many runs the schedule created (``manual``: only "run now" ones, or none)."""
        sql = "SELECT COUNT(*) FROM firings WHERE schedule_id = ? AND state = 'submitted'"
        params: list[Any] = [sched_id]
        if manual is not None:
            sql += " AND manual = ?"
            params.append(int(manual))
        with self.store.read() as conn:
            (n,) = conn.execute(sql, params).fetchone()
        return int(n)

    def active_runs(self, sched_id: str) -> list[str]:
        """Ids of the schedule's runs not yet ended."""
        with self.store.read() as conn:
            return [run_id for (run_id,) in conn.execute(
                f"SELECT id FROM runs WHERE schedule_id = ? AND state NOT IN"
                f" ({', '.join('?' * len(_TERMINAL))})", (sched_id, *_TERMINAL))]
