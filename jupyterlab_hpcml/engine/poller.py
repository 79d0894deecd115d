"""The background loop that keeps run states fresh (one per server process)."""
from __future__ import annotations

import asyncio
import logging

from .runs import RunService

log = logging.getLogger(__name__)


class Poller:
    """Calls ``RunService.refresh`` every ``interval`` seconds, and at once when woken.

    Backs off (up to ``max_interval``) while nothing is active, so an idle lab costs nothing.
    """

    def __init__(self, runs: RunService, interval: float = 2.0, max_interval: float = 10.0):
        self.runs = runs
        self.interval = interval
        self.max_interval = max_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="hpcml-poller")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace: float = 10.0) -> None:
        """Let a poll pass in progress finish (its store calls run in threads that a
        cancel would not stop), then end the loop; cancel it if that takes too long."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
        except asyncio.TimeoutError:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._task = None
        self._stopping = False

    async def _loop(self) -> None:
        delay = self.interval
        while not self._stopping:
            try:
                updated = await self.runs.refresh()
                delay = self.interval if updated else min(delay * 2, self.max_interval)
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("polling runs failed")
                delay = min(delay * 2, self.max_interval)
            if self._stopping:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
                delay = self.interval
            except asyncio.TimeoutError:
                pass
