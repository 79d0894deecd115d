"""The Jupyter server extension: settings as traitlets, one Engine, the REST handlers."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Float, Unicode, default

from . import kernel_env
from .engine.service import Engine
from .handlers import HANDLERS
from .handlers.base import ApiNotFoundHandler
from .heap import HeapSettler
from .settings import default_data_dir

API_PREFIX = "/hpcml/api"


class HpcmlApp(ExtensionApp):
    name = "jupyterlab_hpcml"
    description = "Train ML models on HPC clusters from JupyterLab"

    data_dir = Unicode(
        help="Run store, snapshots, local run directories and the embedded MLflow store "
        "(default: $HPCML_DATA_DIR or <jupyter data dir>/hpcml)."
    ).tag(config=True)
    default_backend = Unicode(
        "local",
        help="Used when a submission names no backend config: 'local', or the path of a "
        "backend config file (relative paths are looked up in the project).",
    ).tag(config=True)
    poll_interval = Float(2.0, help="Seconds between two polls of active runs.").tag(config=True)
    fire_schedules = Bool(
        True,
        help="Fire due schedules while the server runs (any number of servers and "
        "`hpcml scheduler` processes may share a data dir: each time fires once).",
    ).tag(config=True)
    gc_freeze = Bool(
        True,
        help="Keep the server's long-lived objects (modules, classes) out of full garbage "
        "collections (gc.freeze after start-up and after later imports): those walked "
        "~500,000 objects and stopped the event loop for 250 ms and more.",
    ).tag(config=True)
    mlflow_tracking_uri = Unicode(
        help="MLflow tracking store or server (default: $MLFLOW_TRACKING_URI, else an "
        "embedded SQLite store in the data dir)."
    ).tag(config=True)

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return str(default_data_dir())

    @default("mlflow_tracking_uri")
    def _default_tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI", "")

    heap = HeapSettler()  # replaced per instance in initialize_settings
    _restore_env: Callable[[], None] | None = None  # set by initialize_settings

    def initialize_settings(self) -> None:
        self.heap = HeapSettler()
        self.engine = Engine(
            data_dir=Path(self.data_dir),
            tracking_uri=self.mlflow_tracking_uri or None,
            poll_interval=self.poll_interval,
            default_backend=self.default_backend,
            fire_schedules=self.fire_schedules,
        )
        self.settings["hpcml_engine"] = self.engine
        # Kernels started by this server inherit its environment: the magics and the Python
        # API then use the same run store, tracking store and default backend, also when set
        # by traitlets (see kernel_env).
        self._restore_env = kernel_env.export(
            self.engine.data_dir, self.engine.tracking_uri, self.default_backend,
            explicit_tracking=bool(self.mlflow_tracking_uri))
        self.log.info("hpcml: data dir %s, tracking %s",
                      self.engine.data_dir, self.engine.tracking_uri)

    def initialize_handlers(self) -> None:
        self.handlers.extend((url_path_join(API_PREFIX, path), cls) for path, cls in HANDLERS)
        # Last: any other path under the API is a JSON 404, not jupyter_server's HTML page.
        self.handlers.append((url_path_join(API_PREFIX, ".*"), ApiNotFoundHandler))

    async def _start_jupyter_server_extension(self, serverapp: object) -> None:
        # Resume polling runs left in flight by an earlier server (or the CLI).
        self.engine.start()
        if self.gc_freeze:
            self.heap.start()

    async def stop_extension(self) -> None:
        self.heap.stop()
        if self._restore_env is not None:
            self._restore_env()
        await self.engine.close()
