"""MLflow imported lazily, but once and under one lock.

Importing ``mlflow`` costs about a second, so the engine imports it on first use,
inside functions. Those functions run on worker threads (``asyncio.to_thread``):
a poll pass and a request handler can be the first users at the same moment. MLflow's
package imports are circular (``mlflow`` imports ``mlflow.projects``, which imports
``mlflow`` back), and two threads importing parts of it at once make Python hand one
of them a partially initialised module: ``cannot import name 'run' from partially
initialized module 'mlflow.projects'``. The failure then sticks for the life of the
process (``module 'mlflow' has no attribute 'store'``).

So every lazy ``import mlflow…`` in the package is preceded by ``load_mlflow()``,
which imports every MLflow module the package uses, on one thread at a time, once.
Afterwards the call is a flag check and the ``import`` statements find the modules
in ``sys.modules``.
"""
from __future__ import annotations

import importlib
import threading

# Every MLflow module the package imports (see `grep -rn "from mlflow" jupyterlab_hpcml`).
MODULES = (
    "mlflow",
    "mlflow.exceptions",
    "mlflow.entities",
    "mlflow.tracking",
    "mlflow.projects",
    "mlflow.projects._project_spec",
    "mlflow.artifacts",
    "mlflow.store.artifact.artifact_repository_registry",
    "mlflow.utils.file_utils",
    "mlflow.utils.data_utils",
)

_lock = threading.Lock()
_loaded = False


def load_mlflow() -> None:
    """Import MLflow's modules unless done; other threads wait until it is complete.

    A failed import raises here and is tried again by the next caller (Python drops
    the modules that failed to initialise from ``sys.modules``)."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        for name in MODULES:
            importlib.import_module(name)
        _loaded = True
