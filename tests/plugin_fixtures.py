"""The example backend plug-in (examples/backend-plugin) installed as a user would: with
pip, into a folder of its own that tests put on the path (never into the venv itself)."""
from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from jupyterlab_hpcml.backends import registry

PLUGIN_SOURCE = Path(__file__).parents[1] / "examples" / "backend-plugin"
PLUGIN_MODULE = "hpcml_tinyqueue"


def install_plugin(target: Path) -> Path:
    """``pip install --target`` the example plug-in (its wheel built by pip, as for users)."""
    if not (target / PLUGIN_MODULE).is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
             "--disable-pip-version-check", "--target", str(target), str(PLUGIN_SOURCE)],
            check=True, capture_output=True, timeout=300,
        )
    return target


@contextlib.contextmanager
def plugin_on_path(target: Path) -> Iterator[None]:
    """The installed plug-in importable in this process and its entry point found, as if
    pip had put it next to this package; both undone afterwards."""
    sys.path.insert(0, str(target))
    registry.available.cache_clear()
    try:
        yield
    finally:
        sys.path.remove(str(target))
        for name in [m for m in sys.modules if m.split(".")[0] == PLUGIN_MODULE]:
            del sys.modules[name]
        registry.available.cache_clear()
        registry._load.cache_clear()
