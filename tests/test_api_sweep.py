"""Sweeps in the Python API and the magics, from a plain script (a real process, real local
children, the real MLflow store): submit_sweep → wait → best → to_pandas; %hpc_sweep with
the CLI's options; re-run of the failed children; cancel."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import TOY_PROJECT


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "toy"
    shutil.copytree(TOY_PROJECT, dest)
    return dest


SCRIPT = """
import json, sys
from pathlib import Path
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from jupyterlab_hpcml.api import get_sweep, submit_sweep
from jupyterlab_hpcml.core.errors import UserInputError

project = Path(sys.argv[1])
report = {}
sweep = submit_sweep(project, "main", {"steps": [2, 4], "lr": "0.1,0.5", "label": "api"},
                     max_parallel=2, run_name="api-grid")
report["submitted"] = {"id": sweep.id, "points": sweep.definition.points,
                       "children": len(sweep.record.children)}
sweep.wait(timeout=240)
report["state"] = sweep.state
report["counts"] = sweep.counts
report["children"] = [{"id": r.id, "state": r.state, "params": r.parameters,
                       "metrics": r.latest_metrics()} for r in sweep.children]
best = sweep.best("loss", mode="min")
report["best_min"] = {"id": best.id, "params": best.parameters, "type": type(best).__name__}
report["best_max"] = sweep.best("loss").parameters
try:
    sweep.best("accuracy")
except ValueError as exc:
    report["no_metric"] = str(exc)
df = sweep.to_pandas()
report["columns"] = list(df.columns)
report["dtypes"] = {c: str(t) for c, t in df.dtypes.items()}
report["frame"] = df.to_dict("records")
report["by_prefix"] = get_sweep(sweep.id[:6]).id
sys.modules["pandas"] = None  # as if pandas were not installed
try:
    sweep.to_pandas()
except ImportError as exc:
    report["no_pandas"] = str(exc)
report["rows"] = len(sweep.rows())
del sys.modules["pandas"]

try:
    submit_sweep(project, "main", {"steps": "1,x"})
except UserInputError as exc:
    report["bad"] = [p.key for p in exc.problems]

ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "jupyterlab_hpcml")
try:
    ip.run_line_magic("hpc_sweep", f"{project} -e fail -P code=0,3 --wait")
except UsageError as exc:
    report["magic_failed"] = str(exc)
magic = get_sweep(report["magic_failed"].split()[2].rstrip(":"))
report["magic_sweep"] = {"entry": magic.record.entry_point, "counts": magic.counts,
                         "failed": [r.id for r in magic.failed()]}
again = ip.run_line_magic("hpc_rerun", f"{magic.id} --failed -P code=0 --wait")
report["magic_rerun"] = {"type": type(again).__name__, "failed": len(again.failed()),
                         "latest": [r.record.state for r in again.latest()],
                         "rerun_of": [r.record.rerun_of for r in again.children
                                      if r.record.rerun_of]}

sleepy = submit_sweep(project, "sleep", {"seconds": [300, 301]}, max_parallel=1)
sleepy.cancel().wait(timeout=60)
report["cancelled"] = sleepy.counts
print(json.dumps(report))
"""


def test_python_api_and_magics(project, hpcml_data):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(project)], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["submitted"]["points"] == report["submitted"]["children"] == 4
    assert report["state"] == "FINISHED" and report["counts"] == {"FINISHED": 4}
    children = report["children"]
    assert [(c["params"]["steps"], c["params"]["lr"]) for c in children] == [
        ("2", "0.1"), ("2", "0.5"), ("4", "0.1"), ("4", "0.5")]
    # The toy logs loss 1/(step+1): the final loss is 1/steps, lowest for steps=4.
    assert [c["metrics"]["loss"] for c in children] == [0.5, 0.5, 0.25, 0.25]
    assert report["best_min"]["type"] == "Run" and report["best_min"]["params"]["steps"] == "4"
    assert report["best_min"]["id"] in {c["id"] for c in children[2:]}
    assert report["best_max"]["steps"] == "2"
    assert "no child" in report["no_metric"] and "'accuracy'" in report["no_metric"]
    assert "loss" in report["no_metric"]  # what was logged instead

    assert report["columns"] == ["index", "id", "state", "exit_code", "rerun_of", "params.steps",
                                 "params.lr", "params.label", "params.delay", "metrics.loss"]
    assert report["dtypes"]["params.steps"] == "int64"
    assert report["dtypes"]["params.lr"] == "float64"
    assert report["dtypes"]["metrics.loss"] == "float64"
    assert [r["metrics.loss"] for r in report["frame"]] == [0.5, 0.5, 0.25, 0.25]
    assert {r["state"] for r in report["frame"]} == {"FINISHED"}
    assert report["by_prefix"] == report["submitted"]["id"]
    assert "needs pandas" in report["no_pandas"] and report["rows"] == 4
    assert report["bad"] == ["parameters.steps"]

    assert "1 of 2 children did not finish" in report["magic_failed"]
    assert report["magic_sweep"]["entry"] == "fail"
    assert report["magic_sweep"]["counts"] == {"FINISHED": 1, "FAILED": 1}
    assert len(report["magic_sweep"]["failed"]) == 1
    rerun = report["magic_rerun"]
    assert rerun["type"] == "Sweep" and rerun["failed"] == 0
    assert rerun["latest"] == ["FINISHED", "FINISHED"]
    assert rerun["rerun_of"] == report["magic_sweep"]["failed"]
    assert report["cancelled"] == {"CANCELLED": 2}
