"""A backend outside this package, installed with pip, is usable from every face with no
change here: the example plug-in (examples/backend-plugin, kind ``tinyqueue``) in the lab's
backend list and runs of a real jupyter server, in the CLI, in the magics and the Python
API (each a real process with the plug-in on its PYTHONPATH), and its config section judged
by its own typed model."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jupyterlab_hpcml.core.errors import UserInputError
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine import config as config_mod
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine

from .plugin_fixtures import install_plugin, plugin_on_path
from .test_restart import Server

CONTRACT_PROJECT = Path(__file__).parent / "projects" / "contract"
TQ_CONFIG = "Backend: tinyqueue\nTinyQueue:\n  MaxParallel: 2\nResources:\n  Runtime: 10m\n"


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugin(tmp_path_factory.mktemp("plugin-site"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory,
          plugin_dir: Path) -> tuple[Path, dict[str, str]]:
    """A server root with the project (its config selects the plug-in), and the environment
    of a user who pip-installed the plug-in (here: into a folder on PYTHONPATH). One data
    dir for the faces below, as for a user (and one MLflow store to create, not three)."""
    tmp_path = tmp_path_factory.mktemp("plugin-world")
    root = tmp_path / "root"
    project = root / "contract"
    shutil.copytree(CONTRACT_PROJECT, project)
    (project / "tq.yaml").write_text(TQ_CONFIG)
    data = tmp_path / "data"
    path = os.pathsep.join(filter(None, [str(plugin_dir), os.environ.get("PYTHONPATH")]))
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "HPCML_DATA_DIR": str(data),
        "MLFLOW_TRACKING_URI": f"sqlite:///{data}/mlflow.db",
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
    }
    return root, env


def test_lab_lists_the_plugin_and_runs_it(world, tmp_path):
    root, env = world
    server = Server(root, env, tmp_path / "server.log")
    try:
        status, features = server.call("GET", "features")
        assert status == 200
        assert {"local", "ssh", "firecrest", "unicore", "tinyqueue"} <= set(features["backends"])
        assert features["backends"]["tinyqueue"]["resources"] == ["Runtime"]

        status, run = server.call("POST", "runs", {"project": "contract",
                                                    "backend_config": "tq.yaml"})
        assert status == 201, run
        assert run["backend"] == "tinyqueue" and run["backend_job_id"] == "1"
        done = server.wait_state(run["id"], {"FINISHED", "FAILED", "CANCELLED"})
        assert done["state"] == "FINISHED" and done["exit_code"] == 0, done

        # A typo in the plug-in's own section: a clear 400 naming the key, nothing created.
        (root / "contract" / "bad.yaml").write_text(TQ_CONFIG.replace("MaxParallel", "MaxParalel"))
        before = server.call("GET", "runs")[1]["total"]
        status, body = server.call("POST", "runs", {"project": "contract",
                                                     "backend_config": "bad.yaml"})
        assert status == 400, body
        assert [p["key"] for p in body["problems"]] == ["TinyQueue.MaxParalel"], body
        assert server.call("GET", "runs")[1]["total"] == before
    finally:
        server.stop()


def test_cli_submits_to_the_plugin(world):
    root, env = world
    res = subprocess.run(
        [sys.executable, "-m", "jupyterlab_hpcml.cli", "submit", str(root / "contract"),
         "-c", "tq.yaml", "--wait", "--json"],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert res.returncode == 0, res.stderr
    run = json.loads(res.stdout)
    assert (run["backend"], run["state"], run["exit_code"]) == ("tinyqueue", "FINISHED", 0)


def test_magics_and_python_api_submit_to_the_plugin(world, tmp_path):
    root, env = world
    script = tmp_path / "kernel.py"
    script.write_text(
        textwrap.dedent(f"""
        import json
        from IPython.core.interactiveshell import InteractiveShell
        from jupyterlab_hpcml import api

        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "jupyterlab_hpcml")
        line = {str(root / "contract")!r} + " -c tq.yaml --wait"
        magic = shell.run_line_magic("hpc_submit", line)
        run = api.submit({str(root / "contract")!r}, backend_config="tq.yaml", wait=True,
                         timeout=120)
        print(json.dumps([[r.record.backend, r.state.value] for r in (magic, run)]))
    """)
    )
    res = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                         text=True, timeout=240, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == [["tinyqueue", "FINISHED"]] * 2


def test_a_kind_that_is_not_installed_is_a_clear_error():
    with pytest.raises(UserInputError) as err:
        config_mod.parse_backend_config({"Backend": "tinyqueue"})
    (problem,) = err.value.problems
    assert problem.key == "Backend"
    assert "no backend 'tinyqueue' is installed" in problem.message
    assert "local" in problem.message  # the installed kinds are listed


def test_plugin_section_judged_by_its_model_with_lines(plugin_dir, tmp_path):
    path = tmp_path / "tq.yaml"
    path.write_text("Backend: tinyqueue\nTinyQueue:\n  MaxParallel: 0\n  Rooot: /tmp\n")
    with plugin_on_path(plugin_dir):
        with pytest.raises(UserInputError) as err:
            config_mod.load_backend_config(path)
        found = {(p.key, p.line) for p in err.value.problems}
        assert found == {("TinyQueue.MaxParallel", 3), ("TinyQueue.Rooot", 4)}, err.value.problems

        ok = config_mod.parse_backend_config(TQ_CONFIG)
        assert ok.kind == "tinyqueue" and ok.tracking_mode == "offline"
        # Its section is the plug-in's: the common schema does not call it unknown.
        with pytest.raises(UserInputError) as err:
            config_mod.parse_backend_config({"Backend": "ssh", "Local": {}})
        assert "the config has a Local section" in err.value.problems[0].message
        with pytest.raises(UserInputError) as err:
            config_mod.parse_backend_config({"Backend": "firecrest"})
        assert "needs its Firecrest section" in err.value.problems[0].message
        assert config_mod.parse_backend_config({"Backend": "ssh", "SSH": {
            "Hostname": "h"}, "Resources": {"Queue": "q"}}).kind == "ssh"


async def test_plugin_runtime_limit_gives_timeout(plugin_dir, hpcml_data, tmp_path):
    """The plug-in honours what its Features declare (Resources.Runtime): a job still running
    then is stopped (SIGTERM: exit 143) and ends TIMEOUT."""
    project = tmp_path / "contract"
    shutil.copytree(CONTRACT_PROJECT, project)
    (project / "tq.yaml").write_text(TQ_CONFIG.replace("Runtime: 10m", "Runtime: 2s"))
    with plugin_on_path(plugin_dir):
        engine = Engine(data_dir=hpcml_data)
        try:
            run = await engine.submit(SubmitRequest(
                project=str(project), backend_config="tq.yaml", entry_point="sleep",
                parameters={"seconds": 60}))
            deadline = time.monotonic() + 60
            while not run.state.terminal and time.monotonic() < deadline:
                await asyncio.sleep(0.3)
                run = await engine.current(run.id)
        finally:
            await engine.close()
    assert (run.state, run.exit_code) == (RunState.TIMEOUT, 128 + 15), run.state_history
