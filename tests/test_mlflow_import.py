"""MLflow is imported once, under a lock: a poll pass and a request may be its first users
at the same moment (after a server restart) without breaking the process for good."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import jupyterlab_hpcml

from .conftest import TOY_PROJECT

PACKAGE = Path(jupyterlab_hpcml.__file__).parent

# Two threads of a fresh interpreter, as after a restart: the poller records a state in
# MLflow while a submission loads the project through MLflow. The finder below only orders
# the two threads' steps through MLflow's own package import (it changes nothing imported):
# the request arrives while the poller is inside `import mlflow` and, unless something
# makes it wait, imports `mlflow.projects` before the poller gets there: the interleaving
# in which the kill -9 test saw "cannot import name 'run' from partially initialized module
# 'mlflow.projects'" and "module 'mlflow' has no attribute 'store'" ever after.
RACE = r"""
import importlib.abc, json, sys, threading, time
from pathlib import Path

times = {}
threads = {}
handler_done = threading.Event()


def handler_waits() -> bool:
    # The request is blocked on a lock: one of Python's module locks (it needs a module
    # the poller is initialising) or the engine's own MLflow import lock.
    frame = sys._current_frames().get(threads["handler"].ident)
    return frame is not None and frame.f_code.co_name in ("acquire", "load_mlflow")


class Interleave(importlib.abc.MetaPathFinder):
    # Holds the poller at one step of MLflow's package import until the request either
    # waits for it or is done (5 s at most); changes nothing that is imported.
    def find_spec(self, name, path, target=None):
        me = threading.current_thread().name
        if me == "poller" and name == "mlflow.tracking" and "slow_start" not in times:
            times["slow_start"] = time.monotonic()  # the poller is inside `import mlflow`
            deadline = time.monotonic() + 5
            while not handler_done.is_set() and time.monotonic() < deadline:
                if handler_waits():
                    times["handler_waited"] = True
                    break
                time.sleep(0.001)
            times["slow_end"] = time.monotonic()
        return None


sys.meta_path.insert(0, Interleave())

from jupyterlab_hpcml.engine import project
from jupyterlab_hpcml.engine.models import RunState
from jupyterlab_hpcml.engine.tracking import Tracker

tracker = Tracker(sys.argv[1])
errors = []


def poller():
    try:
        exp, run = tracker.create_run("race", "r", {"a": "1"}, {})
        tracker.set_status(run, RunState.FAILED)
    except Exception as exc:
        errors.append(f"poller: {exc!r}")


def handler():
    while "slow_start" not in times:
        time.sleep(0.001)
    times["handler_start"] = time.monotonic()
    try:
        spec = project.load_project(Path(sys.argv[2]))
        project.resolve_command(spec, "main", {"steps": "2"}, Path.cwd())
    except Exception as exc:
        errors.append(f"handler: {exc!r}")
    handler_done.set()


for f in (poller, handler):
    threads[f.__name__] = threading.Thread(target=f, name=f.__name__)
for t in threads.values():
    t.start()
for t in threads.values():
    t.join()
# Later users in the same process must work too (before the fix they never did again).
try:
    project.load_project(Path(sys.argv[2]))
    tracker.create_run("race", "again", {}, {})
except Exception as exc:
    errors.append(f"afterwards: {exc!r}")
print(json.dumps({"errors": errors, "times": times}))
"""


def test_first_mlflow_imports_on_two_threads_at_once(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    out = subprocess.run(
        [sys.executable, "-c", RACE, f"sqlite:///{tmp_path}/mlflow.db", str(TOY_PROJECT)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    times = result["times"]
    # The request really came while the poller was inside MLflow's import.
    assert times["slow_start"] <= times["handler_start"] <= times["slow_end"], times
    assert result["errors"] == []


def _mlflow_imports(tree: ast.AST) -> list[tuple[ast.AST, ast.stmt]]:
    """(enclosing function, import statement) for every `import mlflow…` inside a function."""
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(n == "mlflow" or n.startswith("mlflow.") for n in names):
                found.append((func, node))
    return found


JOB_PROGRAMS = PACKAGE / "engine" / "model_job_files"


def test_every_lazy_mlflow_import_goes_through_the_lock() -> None:
    """A new `from mlflow … import` elsewhere would reopen the race: each must follow a
    `load_mlflow()` call in the same function."""
    unguarded = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if JOB_PROGRAMS in path.parents:
            continue  # programs a job runs, each alone in its own process
        tree = ast.parse(path.read_text(), str(path))
        for func, node in _mlflow_imports(tree):
            calls = [
                n.lineno for n in ast.walk(func)
                if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "load_mlflow"
            ]
            if not any(line < node.lineno for line in calls):
                unguarded.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert unguarded == []


def test_module_level_mlflow_imports_only_for_typing() -> None:
    """Importing the package must not import MLflow (start-up budget; and the lock above)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                    node.module or ""]
                assert not any(n.split(".")[0] == "mlflow" for n in names), (
                    f"{path.relative_to(PACKAGE)}:{node.lineno} imports MLflow at module level")
