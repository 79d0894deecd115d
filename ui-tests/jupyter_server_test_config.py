"""Jupyter server configuration for the Galata UI tests.

Starts JupyterLab on localhost:8888 without token, with a throw-away root and
the HPC ML data directory under it, so tests never touch the user's runs.
"""
import os
from tempfile import mkdtemp

from jupyterlab.galata import configure_jupyter_server

c = get_config()  # noqa: F821

root = mkdtemp(prefix="hpcml-ui-tests-")
os.environ.setdefault("HPCML_DATA_DIR", os.path.join(root, ".hpcml-data"))
configure_jupyter_server(c)
c.ServerApp.root_dir = root
c.ServerApp.allow_root = True  # CI and the dev machines run as root
