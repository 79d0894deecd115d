"""The loop that fires schedules: in the server while it runs, and in ``hpcml scheduler``.

It sleeps until the earliest schedule is due, at most ``max_sleep`` seconds (schedules
added or resumed by another process are seen within that), and wakes at once when this
process adds, resumes or changes one. Each pass runs as a task of its own, so a slow
submission (an upload to a cluster, a first MLflow store) never delays a firing due
after it. Several loops over one data dir are safe: the store decides who fires what
(see schedule_store.py), also between two passes of one process.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from .models import Firing
from .schedules import ScheduleService

log = logging.getLogger(__name__)

MAX_SLEEP = 10.0
MIN_SLEEP = 0.05
STOP_GRACE = 10.0  # seconds a firing in progress may take to finish when the loop stops


class ScheduleLoop:
    def __init__(self, schedules: ScheduleService, max_sleep: float = MAX_SLEEP):
        self.schedules = schedules
        self.max_sleep = max_sleep
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._passes: set[asyncio.Task[list[Firing]]] = set()

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
        """Stop looking for due times; let firings in progress finish (a bounded while)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._passes:
            _, pending = await asyncio.wait(self._passes, timeout=STOP_GRACE)
            for task in pending:  # their firings are completed by the next process
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            delay = self.max_sleep
            try:
                task = asyncio.get_running_loop().create_task(self.schedules.tick())
                self._passes.add(task)
                task.add_done_callback(self._pass_done)
                due = await self.schedules.next_due()
                if due is not None:
                    delay = min(max(due - self.schedules.clock(), MIN_SLEEP), self.max_sleep)
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("firing schedules failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    def _pass_done(self, task: asyncio.Task[list[Firing]]) -> None:
        self._passes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a pass over the schedules failed", exc_info=task.exception())
