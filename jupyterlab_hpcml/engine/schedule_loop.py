"""The loop that fires schedules: in the server while it runs, and in ``hpcml scheduler``.

It sleeps until the earliest schedule is due, at most ``max_sleep`` seconds (schedules
added or resumed by another process are seen within that), and wakes at once when this
process adds, resumes or changes one. Several loops over one data dir are safe: the store
decides who fires what (see schedule_store.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from .schedules import ScheduleService

log = logging.getLogger(__name__)

MAX_SLEEP = 10.0
MIN_SLEEP = 0.05


class ScheduleLoop:
    def __init__(self, schedules: ScheduleService, max_sleep: float = MAX_SLEEP):
        self.schedules = schedules
        self.max_sleep = max_sleep
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="hpcml-schedules")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            delay = self.max_sleep
            try:
                await self.schedules.tick()
                due = await self.schedules.next_due()
                if due is not None:
                    delay = min(max(due - self.schedules.clock(), MIN_SLEEP), self.max_sleep)
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("firing schedules failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
