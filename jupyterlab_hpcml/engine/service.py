"""The Engine: one object wiring store, backends, tracking and runs.

The server extension, the CLI and the Python API each build one over the same
data dir, so a run started anywhere is visible everywhere.
"""
from __future__ import annotations

from pathlib import Path

from ..backends.registry import BackendRegistry
from ..settings import default_data_dir
from .outputs import RunOutputs
from .poller import Poller
from .runs import RunService
from .store import RunStore
from .tracking import Tracker, default_tracking_uri


class Engine:
    def __init__(
        self,
        data_dir: Path | None = None,
        tracking_uri: str | None = None,
        poll_interval: float = 2.0,
        default_backend: str = "local",
    ):
        self.data_dir = (data_dir or default_data_dir()).expanduser().resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = tracking_uri or default_tracking_uri(self.data_dir)
        self.store = RunStore(self.data_dir / "runs.sqlite")
        self.registry = BackendRegistry(self.data_dir)
        self.tracker = Tracker(self.tracking_uri)
        self.runs = RunService(
            self.store, self.registry, self.tracker, self.data_dir, self.tracking_uri,
            default_backend_config=None if default_backend == "local" else default_backend,
        )
        self.outputs = RunOutputs(self.store, self.tracker)
        self.poller = Poller(self.runs, interval=poll_interval)

    def start(self) -> None:
        """Start polling (needs a running event loop); idempotent."""
        self.poller.start()

    async def close(self) -> None:
        await self.poller.stop()
        await self.registry.close()
        self.store.close()
