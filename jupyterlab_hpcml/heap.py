"""Keep the server's long-lived objects out of the garbage collector's way.

A full collection walks every object the collector tracks, with the event loop stopped.
With jupyter_server, MLflow, SQLAlchemy and a backend's client library loaded that is
about 500,000 objects: 250-380 ms per full collection on an idle machine, over a second
on a busy one, and under load every loop stall over 100 ms was one. Nearly all of those
objects (modules, classes, functions, caches) live as long as the process, so
``gc.freeze()`` moves them to a generation the collector never walks again.

The server freezes once it has started and again after each burst of imports: MLflow
and the backends' libraries are imported on first use, long after start-up. Each freeze
follows a full collection, so nothing that is garbage already is kept for good; a frozen
object that becomes garbage later is still freed by reference counting (only one in a
reference cycle would stay). Stopping unfreezes, for processes that run several servers
one after another (tests).
"""
from __future__ import annotations

import asyncio
import gc
import sys

CHECK_INTERVAL = 30.0  # seconds between two looks at sys.modules
NEW_MODULES = 20  # modules imported since the last freeze that make another one worth it


class HeapSettler:
    def __init__(self) -> None:
        self._modules = 0
        self._task: asyncio.Task[None] | None = None

    def settle(self) -> None:
        """Collect what is garbage now, then freeze everything that is left."""
        gc.collect()
        gc.freeze()
        self._modules = len(sys.modules)

    def start(self) -> None:
        """Freeze now and after later imports (needs the running loop); idempotent."""
        if self._task is not None:
            return
        self.settle()
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="hpcml-heap")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            if len(sys.modules) - self._modules >= NEW_MODULES:
                self.settle()

    def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        self._task = None
        gc.unfreeze()
