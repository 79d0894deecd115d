"""How the Jupyter server's settings reach the kernels it starts: environment variables.

The server exports its effective settings into its own environment when it starts
(``export``); every kernel the lab starts gets a copy of that environment, whatever the
kernel manager or provisioner (jupyter_server builds a kernel's environment from
``os.environ``: ``SessionManager.get_kernel_env`` and ``KernelManager.pre_start_kernel``,
also when a session is renamed and the kernel's environment is rebuilt). The kernel side
(``settings``) reads them when it makes its engine.

Chosen over the kernel asking the server (it would need the server's URL and token, which
a kernel does not have) and over passing ``env`` to each kernel start (a session rename or
a custom kernel manager would drop it). Nothing here imports the engine.
"""
from __future__ import annotations

import os
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from .settings import DATA_DIR_ENV, default_data_dir

#: Backend config used when a submission names none ("local" or a config path, relative
#: paths looked up in the project): the server's ``HpcmlApp.default_backend``.
DEFAULT_BACKEND_ENV = "HPCML_DEFAULT_BACKEND"
#: MLflow tracking store the engine uses (the server's effective one). Falls back to
#: ``MLFLOW_TRACKING_URI``, then to the embedded store in the data dir.
TRACKING_URI_ENV = "HPCML_MLFLOW_TRACKING_URI"


@dataclass(frozen=True)
class EngineSettings:
    """What a kernel's (or script's) engine is made with."""

    data_dir: Path
    tracking_uri: str  # "" for the default store of the data dir
    default_backend: str


def settings(data_dir: Path | str | None = None,
             environ: MutableMapping[str, str] | None = None) -> EngineSettings:
    """The settings for an engine in this process: ``data_dir`` if given, else those the
    server exported (or the user set), else the defaults."""
    env = os.environ if environ is None else environ
    given = data_dir or env.get(DATA_DIR_ENV)
    resolved = Path(given).expanduser().resolve() if given else default_data_dir()
    return EngineSettings(
        data_dir=resolved,
        tracking_uri=env.get(TRACKING_URI_ENV) or env.get("MLFLOW_TRACKING_URI", ""),
        default_backend=env.get(DEFAULT_BACKEND_ENV) or "local",
    )


def export(data_dir: Path, tracking_uri: str, default_backend: str, explicit_tracking: bool,
           environ: MutableMapping[str, str] | None = None) -> Callable[[], None]:
    """Put the server's effective settings into ``environ`` (default: this process's), for
    the kernels (and terminals) it starts; returns a function that puts back what was there
    (a stopped server leaves the process as it found it: tests run several in one)."""
    env = os.environ if environ is None else environ
    values = {DATA_DIR_ENV: str(data_dir), TRACKING_URI_ENV: tracking_uri,
              DEFAULT_BACKEND_ENV: default_backend}
    if explicit_tracking:  # the user's own MLflow calls in a kernel then log there too
        values["MLFLOW_TRACKING_URI"] = tracking_uri
    before = {name: env.get(name) for name in values}
    env.update(values)

    def restore() -> None:
        for name, old in before.items():
            if env.get(name) != values[name]:
                continue  # changed by someone else since: theirs now
            if old is None:
                env.pop(name, None)
            else:
                env[name] = old

    return restore
