"""The Python API: from a plain script, inside a kernel next to the REST API, and its pieces."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import TOY_PROJECT, wait_for_state
from .test_magics import Kernel, stored_runs


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "toy"
    shutil.copytree(TOY_PROJECT, dest)
    return dest


SCRIPT = """
import json, sys, time
from pathlib import Path
from jupyterlab_hpcml import submit, runs, get_run
from jupyterlab_hpcml.api import submit_cell
from jupyterlab_hpcml.core.errors import Conflict, UserInputError

project, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
report = {"mlflow_imported_early": "mlflow" in sys.modules}

run = submit(project, "main", {"steps": 3, "label": "script", "lr": 0.5}, run_name="api",
             experiment_name="api-exp").wait(timeout=120)
report["run"] = {"id": run.id, "state": run.state, "exit": run.exit_code, "job": run.job_id,
                 "params": run.parameters, "elapsed": run.elapsed is not None}
report["tail"] = run.logs(tail=2)
report["log"] = run.logs()
report["stderr"] = run.logs("stderr")
metrics = run.metrics()
report["metrics_type"] = type(metrics).__name__
report["metrics"] = metrics.to_dict("records") if hasattr(metrics, "to_dict") else metrics
report["latest"] = run.latest_metrics()
report["artifacts"] = [(a.path, a.is_dir, a.size) for a in run.artifacts()]
report["download"] = Path(run.download("result.txt", out_dir)).read_text()
report["by_prefix"] = get_run(run.id[:5]).id

again = run.rerun(steps=2, wait=True)
report["rerun"] = {"state": again.state, "of": again.record.rerun_of,
                   "params": again.parameters, "log": again.logs()}

sleeper = submit(project, "sleep", {"seconds": 600})
try:
    sleeper.wait(timeout=1)
    report["timeout"] = "no"
except TimeoutError as exc:
    report["timeout"] = str(exc)
report["listed_running"] = [r.id for r in runs(state="running")]
sleeper.cancel().wait(timeout=60)
report["cancelled"] = sleeper.state
try:
    sleeper.cancel()
except Conflict as exc:
    report["cancel_again"] = str(exc)

cell = submit_cell("print('cell', params)\\n", project, {"n": 2, "name": "x"}, wait=True)
report["cell"] = [cell.state, cell.entry_point, cell.logs()]
report["cell_ids"] = [cell.mlflow_run_id, cell.record.code.content_hash]

before = len(runs(limit=100))
errors = []
for kwargs in ({"entry_point": "trian"}, {"parameters": {"steps": "many"}},
               {"backend_config": "missing.yaml"}, {"overrides": ["Resources.Runtim=1h"]}):
    try:
        submit(project, **kwargs)
    except UserInputError as exc:
        errors.append(str(exc))
report["errors"] = errors
report["after_errors"] = len(runs(limit=100)) - before
listing = runs(limit=3)
report["listing"] = {"n": len(listing), "total": listing.total, "text": str(listing),
                     "html": listing._repr_html_()}
print(json.dumps(report, default=str))
"""


def test_api_from_a_plain_script(project, hpcml_data, tmp_path):
    script = tmp_path / "use_api.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(project), str(tmp_path)],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout.strip().splitlines()[-1])

    assert rep["mlflow_imported_early"] is False
    run = rep["run"]
    assert run["state"] == "FINISHED" and run["exit"] == 0 and run["job"] and run["elapsed"]
    assert run["params"] == {"steps": "3", "lr": "0.5", "label": "script", "delay": "0"}
    assert rep["tail"] == "step 2 loss 0.333\nno token\n"
    assert rep["log"].startswith("step 0 loss 1.000\n") and rep["stderr"] == ""
    assert rep["metrics_type"] == "DataFrame"
    assert [(m["key"], m["step"]) for m in rep["metrics"]] == [("loss", s) for s in range(3)]
    assert rep["metrics"][1]["value"] == 0.5 and rep["metrics"][0]["timestamp"] > 1e9
    assert rep["latest"] == {"loss": pytest.approx(1 / 3)}
    assert rep["artifacts"] == [["result.txt", False, 13]]
    assert rep["download"] == "label=script\n" and rep["by_prefix"] == run["id"]

    assert rep["rerun"]["state"] == "FINISHED" and rep["rerun"]["of"] == run["id"]
    assert rep["rerun"]["params"]["steps"] == "2" and rep["rerun"]["params"]["label"] == "script"
    assert rep["rerun"]["log"].count("step ") == 2

    assert "still RUNNING after 1s" in rep["timeout"]
    assert len(rep["listed_running"]) == 1
    assert rep["cancelled"] == "CANCELLED" and "already ended" in rep["cancel_again"]
    assert rep["cell"] == ["FINISHED", "hpcml_cell", "cell {'n': 2, 'name': 'x'}\n"]
    # The engine tagged the cell run when it created it, with the code identity it recorded.
    from mlflow.tracking import MlflowClient

    mlflow_id, content_hash = rep["cell_ids"]
    tags = MlflowClient().get_run(mlflow_id).data.tags
    assert tags["hpcml.cell"] == "true" and tags["hpcml.code.content_hash"] == content_hash

    errors = rep["errors"]
    assert "unknown entry point 'trian'" in errors[0]
    assert "parameter 'steps' must be an int" in errors[1]
    assert "not found" in errors[2] and "Runtim" in errors[3]
    assert rep["after_errors"] == 0
    listing = rep["listing"]
    assert listing["n"] == 3 and listing["total"] == 4
    assert listing["text"].startswith("ID  ") and "(3 of 4 runs)" in listing["text"]
    assert listing["html"].count("<tr data-run-id=") == 3
    assert len(stored_runs(hpcml_data)) == 4


async def test_kernel_api_and_rest_api_share_runs(api, toy_project, hpcml_data):
    """In a kernel, the sync API works although the kernel's event loop is running; its runs
    are in the REST API, and runs submitted over REST are seen from the kernel."""
    k = Kernel(toy_project)
    try:
        k.ok("from jupyterlab_hpcml import submit, runs, get_run\n"
             "r = submit(parameters={'steps': 2}, run_name='from-kernel').wait(120)")
        ours = k.eval("{'id': r.id, 'state': r.state, 'metrics': type(r.metrics()).__name__}")
        assert ours["state"] == "FINISHED" and ours["metrics"] == "DataFrame"
        status, run = await api("GET", f"runs/{ours['id']}")
        assert status == 200 and run["state"] == "FINISHED" and run["name"] == "from-kernel"

        status, created = await api("POST", "runs", {"project": "toy",
                                                     "entry_point": "main",
                                                     "parameters": {"steps": 1},
                                                     "run_name": "from-rest"})
        assert status in (200, 201), created
        await wait_for_state(api, created["id"], {"FINISHED"})
        theirs = k.eval(f"[get_run({created['id']!r}).wait(60).state, "
                        f"[x.name for x in runs()]]")
        assert theirs == ["FINISHED", ["from-rest", "from-kernel"]]
        table = k.ok("%load_ext jupyterlab_hpcml\n%hpc_runs").displays[0]["text/plain"]
        assert "from-rest" in table and "from-kernel" in table
    finally:
        k.close()


# ---------------------------------------------------------------------------
# Pieces, without kernels


def test_import_is_light():
    code = ("import sys, jupyterlab_hpcml, jupyterlab_hpcml.magics, jupyterlab_hpcml.widget; "
            "print(sorted(m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.') "
            "or m in ('jupyterlab_hpcml.engine.service', 'jupyterlab_hpcml.api', 'pydantic', "
            "'ipywidgets')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


KERNEL_FACES = ("api.py", "bridge.py", "kernel_env.py", "magics.py", "widget.py",
                "widget_state.py", "run_text.py", "cli.py", "cli_args.py")
# What a kernel-side face may import of engine/: the facade and the types it speaks in
# (logs: LogChunk and the one last_lines).
FACE_ENGINE_MODULES = {"service", "requests", "models", "cells", "logs"}
ENGINE_PARTS = {"store", "runs", "tracker", "outputs", "registry", "poller"}


def test_kernel_faces_talk_only_to_the_facade():
    """The Python API, magics, widget and CLI import nothing of engine/ but the facade and
    its types, nothing of backends/ or MLflow, no private name of another module, and
    never reach into the Engine's parts (engine.store, engine.runs, ...)."""
    import ast

    package = Path(__file__).resolve().parents[1] / "jupyterlab_hpcml"
    problems = []
    for name in KERNEL_FACES:
        tree = ast.parse((package / name).read_text(), name)
        for node in ast.walk(tree):
            where = f"{name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                module = ("." * node.level) + (node.module or "")
                parts = module.lstrip(".").split(".")
                names = [a.name for a in node.names]
                if parts[0] in ("mlflow", "backends") or module.startswith("..") or \
                        (parts[0] == "engine" and len(parts) > 1
                         and parts[1] not in FACE_ENGINE_MODULES) or \
                        (module == ".engine" and set(names) - FACE_ENGINE_MODULES):
                    problems.append(f"{where} imports from {module}")
                problems += [f"{where} imports private {module}.{n}" for n in names
                             if n.startswith("_") and node.level]
            elif isinstance(node, ast.Import):
                problems += [f"{where} imports {a.name}" for a in node.names
                             if a.name.split(".")[0] == "mlflow"]
            elif isinstance(node, ast.Attribute) and node.attr in ENGINE_PARTS:
                owner = node.value
                owner_name = owner.id if isinstance(owner, ast.Name) else \
                    owner.attr if isinstance(owner, ast.Attribute) else ""
                if "engine" in owner_name:
                    problems.append(f"{where} reaches {owner_name}.{node.attr}")
    assert not problems, "\n".join(problems)


def test_cell_files_types_line_numbers_and_params(tmp_path):
    from jupyterlab_hpcml.engine.cells import Cell, cell_files, values

    params = {"lr": "0.5", "n": "3", "tag": "a b", "e": "1e-3", "flag": True}
    files = cell_files(Cell("x = lr * 2\nprint(x)", "-P lr=0.5 --wait"), params,
                       {"name": "toy", "entry_points": {"main": {"command": "true"}}})
    script = files["hpcml_cell.py"].decode().splitlines()
    assert script[0].startswith("from hpcml_params import params; globals().update(params)")
    assert script[1:] == ["x = lr * 2", "print(x)"]  # line N of the file is line N of the cell
    import yaml

    mlproject = yaml.safe_load(files["MLproject"])
    ep = mlproject["entry_points"]["hpcml_cell"]
    assert mlproject["entry_points"]["main"] == {"command": "true"}
    assert {k: v["type"] for k, v in ep["parameters"].items()} == {
        "lr": "float", "n": "int", "tag": "string", "e": "float", "flag": "string"}
    assert ep["command"] == ("python hpcml_cell.py --lr {lr} --n {n} --tag {tag} --e {e} "
                             "--flag {flag}")
    assert values(params) == {"lr": "0.5", "n": "3", "tag": "a b", "e": "1e-3", "flag": "True"}

    (tmp_path / "hpcml_params.py").write_bytes(files["hpcml_params.py"])
    out = subprocess.run(
        [sys.executable, "-c", "import hpcml_params; print(repr(hpcml_params.params))",
         "--lr", "0.25", "--n", "4", "--tag", "x y", "--e", "1e-3", "--flag", "True"],
        capture_output=True, text=True, cwd=tmp_path, check=True)
    assert out.stdout.strip() == "{'lr': 0.25, 'n': 4, 'tag': 'x y', 'e': 0.001, 'flag': 'True'}"


def test_magic_parsers_share_the_cli_options():
    from jupyterlab_hpcml import cli_args
    from jupyterlab_hpcml.magics import parser

    args = parser("submit").parse_args(["proj", "-e", "train", "-P", "a=1", "-P", "b=x=y",
                                        "-c", "cfg.yaml", "--set", "Resources.Nodes=2",
                                        "--run-name", "n", "--experiment-name", "x", "--wait"])
    req = cli_args.submit_request(args, cwd=Path("/somewhere"))
    assert req.project == "/somewhere/proj" and req.entry_point == "train"
    assert req.parameters == {"a": "1", "b": "x=y"} and req.backend_config == "cfg.yaml"
    assert req.overrides == ["Resources.Nodes=2"] and req.run_name == "n" and args.wait
    cell = parser("submit_cell").parse_args(["-P", "a=1"])
    assert not hasattr(cell, "entry_point") and cli_args.submit_request(cell).entry_point == "main"
    rerun = cli_args.rerun_request(parser("rerun").parse_args(["abc", "-P", "a=2", "--fresh-code"]))
    assert rerun.parameters == {"a": "2"} and rerun.fresh_code
    assert cli_args.states(parser("runs").parse_args(["--state", "running"]).state) == ["RUNNING"]


def test_static_summaries_escape_and_draw():
    from jupyterlab_hpcml.core.states import RunState
    from jupyterlab_hpcml.engine.models import RunRecord, StateChange
    from jupyterlab_hpcml.widget import RunDetails, sparkline_svg, summary_html, summary_text

    assert sparkline_svg([]) == "" and sparkline_svg([None, float("nan")]) == ""
    svg = sparkline_svg([3, 1, 2])
    assert svg.startswith("<svg") and 'points="2.0,2.0 60.0,20.0 118.0,11.0"' in svg
    record = RunRecord(id="abc123", name="<b>n</b>", project_path="/p", project_name="p",
                       entry_point="main", command="python x.py", backend="local",
                       state=RunState.FAILED, exit_code=2, backend_job_id="42",
                       state_history=[StateChange(state=RunState.RUNNING, at=100.0),
                                      StateChange(state=RunState.FAILED, at=165.0)])
    html = summary_html(record, "out <1>\n", "Traceback\n", {"loss": {"value": 0.5, "step": 3,
                                                                     "history": [1, 0.5]}})
    assert "&lt;b&gt;n&lt;/b&gt;" in html and "out &lt;1&gt;" in html and "<b>n</b>" not in html
    assert 'data-state="FAILED"' in html and "0:01:05" in html and "exit code 2" in html
    assert "<svg" in html and "Traceback" in html
    text = summary_text(record, "out\n", "", {"loss": {"value": 0.5, "step": 3}})
    assert text.splitlines()[0] == ("run abc123 '<b>n</b>': FAILED (local job 42, elapsed 0:01:05, "
                                    "exit code 2)")
    assert "loss = 0.5 (step 3)" in text
    details = RunDetails(record)
    assert "state: FAILED" in str(details) and "hpcml-badge" in details._repr_html_()
