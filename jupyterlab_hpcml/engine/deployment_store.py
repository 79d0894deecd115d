"""Deployments in the run store's SQLite file (table: store.py, step 6), one row per name."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.errors import Conflict, NotFound
from .models import ACTIVE_DEPLOYMENT, DeploymentRecord
from .store import RunStore, next_updated_at


class DeploymentStore:
    def __init__(self, store: RunStore):
        self.store = store

    def insert(self, dep: DeploymentRecord) -> None:
        """A new deployment; a name is taken while its deployment is active (Conflict), and
        an ended one of that name is replaced."""
        with self.store.write() as conn:
            row = conn.execute("SELECT state FROM deployments WHERE name = ?",
                               (dep.name,)).fetchone()
            if row is not None and row[0] in ACTIVE_DEPLOYMENT:
                raise Conflict(f"deployment {dep.name!r} is {row[0]}: stop it first or "
                               "choose another name")
            dep.updated_at = next_updated_at(conn)
            conn.execute(
                "INSERT OR REPLACE INTO deployments (name, state, created_at, updated_at, record)"
                " VALUES (?, ?, ?, ?, ?)",
                (dep.name, dep.state, dep.created_at, dep.updated_at, dep.model_dump_json()))

    def get(self, name: str) -> DeploymentRecord:
        with self.store.read() as conn:
            row = conn.execute("SELECT record FROM deployments WHERE name = ?",
                               (name,)).fetchone()
        if row is None:
            raise NotFound(f"no deployment {name!r}")
        return DeploymentRecord.model_validate_json(row[0])

    def all(self, *, active: bool = False) -> list[DeploymentRecord]:
        sql = "SELECT record FROM deployments"
        params: tuple[str, ...] = ()
        if active:
            sql += f" WHERE state IN ({', '.join('?' * len(ACTIVE_DEPLOYMENT))})"
            params = ACTIVE_DEPLOYMENT
        with self.store.read() as conn:
            rows = conn.execute(sql + " ORDER BY created_at DESC, name", params).fetchall()
        return [DeploymentRecord.model_validate_json(text) for (text,) in rows]

    def update(self, name: str, change: Callable[[DeploymentRecord], dict[str, Any]]
               ) -> DeploymentRecord:
        """Apply ``change(current)`` (the fields to set) in one write transaction."""
        with self.store.write() as conn:
            row = conn.execute("SELECT record FROM deployments WHERE name = ?",
                               (name,)).fetchone()
            if row is None:
                raise NotFound(f"no deployment {name!r}")
            current = DeploymentRecord.model_validate_json(row[0])
            fields = change(current)
            if not fields:
                return current
            new = DeploymentRecord.model_validate({**current.model_dump(), **fields})
            new.updated_at = next_updated_at(conn)
            conn.execute("UPDATE deployments SET state = ?, updated_at = ?, record = ?"
                         " WHERE name = ?", (new.state, new.updated_at, new.model_dump_json(),
                                             name))
            return new

    def delete(self, name: str) -> None:
        with self.store.write() as conn:
            conn.execute("DELETE FROM deployments WHERE name = ?", (name,))
