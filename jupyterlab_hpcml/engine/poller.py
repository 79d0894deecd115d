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

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="hpcml-poller")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _loop(self) -> None:
        delay = self.interval
        while True:
            try:
                updated = await self.runs.refresh()
                delay = self.interval if updated else min(delay * 2, self.max_interval)
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("polling runs failed")
                delay = min(delay * 2, self.max_interval)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
                delay = self.interval
            except asyncio.TimeoutError:
                pass
