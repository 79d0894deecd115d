"""Where things live: one rule for the server, the CLI and kernels."""
from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "HPCML_DATA_DIR"


def default_data_dir() -> Path:
    """``$HPCML_DATA_DIR``, else ``<jupyter data dir>/hpcml``."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser().resolve()
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "hpcml"
