"""The background loops that keep run states fresh (one set per server process).

One task per connection with active runs, each on its own schedule and backoff, so a
cluster whose API hangs (a FirecREST timeout: 30 s × 3 attempts) delays only its own runs.
A dispatcher task starts a connection's task when runs appear on it (or when woken for a
run), and retries MLflow writes that failed; a connection's task ends once it has nothing
left to poll. Every state change still goes through ``RunService`` (compare-and-set in the
store, one pass per connection at a time).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from .models import RunRecord
from .runs import RunService, poll_key

log = logging.getLogger(__name__)


class _Connection:
    """The polling task of one connection and what wakes it."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()


class Poller:
    """Polls each connection with active runs every ``interval`` seconds, and at once when
    woken. A connection that cannot be asked backs off (up to ``max_interval``) on its own;
    the dispatcher backs off (up to ``max_interval``) while nothing is active, so an idle
    lab costs nothing."""

    def __init__(self, runs: RunService, interval: float = 2.0, max_interval: float = 10.0):
        self.runs = runs
        self.interval = interval
        self.max_interval = max_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connections: dict[str, _Connection] = {}
        self._stopping = False

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._dispatch(),
                                                                name="hpcml-poller")

    def wake(self, run: RunRecord | None = None) -> None:
        """Poll ``run``'s connection now (a run was submitted or cancelled); without a run,
        look for new runs and poll every connection now."""
        if run is not None:
            if self._task is not None and not self._stopping:
                self._connection(poll_key(run)).wake.set()
            return
        self._wake.set()
        for conn in self._connections.values():
            conn.wake.set()

    async def stop(self, grace: float = 10.0) -> None:
        """Let poll passes in progress finish (their store calls run in threads that a
        cancel would not stop), then end the loops; cancel those that take too long."""
        if self._task is None:
            return
        self._stopping = True
        self.wake()
        tasks = [self._task, *(c.task for c in self._connections.values() if c.task)]
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        self._connections.clear()
        self._stopping = False

    def _connection(self, key: str) -> _Connection:
        """The connection's polling state, its task started if none is running."""
        conn = self._connections.get(key)
        if conn is None:
            conn = self._connections[key] = _Connection()
        if not conn.alive and not self._stopping:
            conn.task = asyncio.get_running_loop().create_task(
                self._poll(key, conn), name=f"hpcml-poller:{key}")
        return conn

    async def _dispatch(self) -> None:
        delay = self.interval
        while not self._stopping:
            try:
                active = await asyncio.to_thread(self.runs.store.active)
                for key in dict.fromkeys(map(poll_key, active)):
                    self._connection(key)
                await self.runs.retry_mlflow()
                delay = self.interval if active else min(delay * 2, self.max_interval)
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("looking for runs to poll failed")
                delay = min(delay * 2, self.max_interval)
            if await self._sleep(self._wake, delay):
                delay = self.interval

    async def _poll(self, key: str, conn: _Connection) -> None:
        delay = self.interval
        try:
            while not self._stopping:
                conn.wake.clear()
                try:
                    result = await self.runs.poll_connection(key)
                    if not result.active and not conn.wake.is_set():
                        return  # nothing left here; the dispatcher starts it again if needed
                    # Answered: the normal pace. Not answered: back off, this connection only.
                    delay = self.interval if result.answered else min(delay * 2, self.max_interval)
                except Exception:  # noqa: BLE001 - the loop must survive anything
                    log.exception("polling runs of connection %s failed", key)
                    delay = min(delay * 2, self.max_interval)
                if self._stopping:
                    return
                await self._sleep(conn.wake, delay)
        finally:
            if self._connections.get(key) is conn and conn.task is asyncio.current_task():
                del self._connections[key]

    @staticmethod
    async def _sleep(event: asyncio.Event, delay: float) -> bool:
        """Wait ``delay`` seconds or until ``event`` is set (then True, and it is cleared)."""
        try:
            await asyncio.wait_for(event.wait(), timeout=delay)
        except asyncio.TimeoutError:
            return False
        event.clear()
        return True
