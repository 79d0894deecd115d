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


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyterlab_hpcml``: the ``%hpc_*`` magics (see docs/magics.md)."""
    from .magics import load_ipython_extension as load

    load(ipython)


_API = ("submit", "runs", "get_run", "Run", "submit_sweep", "get_sweep", "Sweep")
_MODELS_API = ("deploy", "deployment", "predict", "Deployment")


def __getattr__(name: str) -> Any:
    # Lazy: `import jupyterlab_hpcml` must not import the engine or MLflow.
    if name in _API:
        from . import api

        return getattr(api, name)
    if name in _MODELS_API:
        from . import api_models

        return getattr(api_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API, *_MODELS_API])
