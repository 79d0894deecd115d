"""Jupyter server configuration for the Galata UI tests.

- Port: $HPCML_UI_PORT (default 8888), so two test suites can run side by side.
- Root: a throw-away folder holding a copy of examples/digits.
- Runs and MLflow: an isolated HPCML_DATA_DIR and MLFLOW_TRACKING_URI under that
  folder, so tests never touch the user's runs.
- No token, no XSRF (Galata's helper), --allow-root (CI machines run as root).
"""
import os
import shutil
from pathlib import Path
from tempfile import mkdtemp

from jupyterlab.galata import configure_jupyter_server

c = get_config()  # noqa: F821

REPO = Path(__file__).resolve().parent.parent
root = Path(mkdtemp(prefix="hpcml-ui-tests-"))
shutil.copytree(
    REPO / "examples" / "digits",
    root / "digits",
    ignore=shutil.ignore_patterns("__pycache__", "mlruns", "outputs"),
)
data_dir = root / ".hpcml-data"
# Set before the server extension starts: the engine, the poller and every job read them.
os.environ["HPCML_DATA_DIR"] = str(data_dir)
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{data_dir}/mlflow.db"
data_dir.mkdir(parents=True, exist_ok=True)

configure_jupyter_server(c)
c.ServerApp.port = int(os.environ.get("HPCML_UI_PORT", "8888"))
c.ServerApp.root_dir = str(root)
c.ServerApp.allow_root = True
c.HpcmlApp.poll_interval = 0.5
