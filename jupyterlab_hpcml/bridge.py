"""The sync bridge of the kernel-side faces: engine coroutines on a private event loop.

The Python API, the magics and the live view are synchronous (or run on a kernel's own
event loop), while the Engine facade is async. Every engine call therefore runs on one
private event loop in a daemon thread, never on the caller's loop and never with
``asyncio.run``: that works in plain scripts and inside a running Jupyter kernel alike.
One Engine is made per (data dir, tracking URI, default backend) on first use, with the
settings the Jupyter server exported (see ``kernel_env``).
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import kernel_env

if TYPE_CHECKING:
    from .engine.service import Engine

T = TypeVar("T")


class Bridge:
    """One event loop on a daemon thread; one Engine per (data dir, tracking URI, default)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._engines: dict[kernel_env.EngineSettings, Engine] = {}

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or not self._thread or \
                    not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="hpcml-engine", daemon=True)
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
                self._engines = {}  # a forked child must not reuse its parent's connections
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the private loop and wait for its result (from any other thread)."""
        loop = self.loop()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("the hpcml API's sync methods cannot be called from its own loop")
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError(f"no answer within {timeout}s") from None
        except BaseException:  # KeyboardInterrupt in a kernel: stop the work too
            fut.cancel()
            raise

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` run on the private loop, from another event loop (the kernel's)."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop()))

    def engine(self, data_dir: Path | str | None = None) -> Engine:
        """The Engine for ``data_dir`` (default: the server's, see ``kernel_env``)."""
        settings = kernel_env.settings(data_dir)
        self.loop()
        engine = self._engines.get(settings)
        if engine is None:
            engine = self.run(_make_engine(settings))
            self._engines[settings] = engine
        return engine

    def close(self) -> None:
        loop, engines = self._loop, list(self._engines.values())
        if loop is None or self._pid != os.getpid() or not loop.is_running():
            return
        for engine in engines:
            try:
                asyncio.run_coroutine_threadsafe(engine.close(), loop).result(5)
            except Exception:  # best effort at interpreter exit
                pass
        self._engines = {}
        loop.call_soon_threadsafe(loop.stop)


async def _make_engine(settings: kernel_env.EngineSettings) -> Engine:
    # Made on the private loop: the engine's asyncio parts belong to it.
    from .engine.service import Engine

    # MLflow announces at INFO when it creates its database; in a notebook that is noise.
    quiet = logging.getLogger("mlflow.store.db.utils")
    if quiet.level == logging.NOTSET:
        quiet.setLevel(logging.WARNING)
    return Engine(data_dir=settings.data_dir, tracking_uri=settings.tracking_uri or None,
                  default_backend=settings.default_backend)


#: The process's bridge (the API, the magics and the live views share it).
bridge = Bridge()
atexit.register(bridge.close)
