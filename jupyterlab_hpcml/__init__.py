"""jupyterlab-hpcml: train ML models on HPC clusters from JupyterLab."""
from __future__ import annotations

from typing import Any

try:
    from ._version import __version__
except ImportError:  # running from a source tree that was never built
    __version__ = "0.0.0.dev0"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyterlab-hpcml"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import HpcmlApp

    return [{"module": "jupyterlab_hpcml", "app": HpcmlApp}]
