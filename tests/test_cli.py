"""The `hpcml` CLI as a user runs it: real subprocesses over one data dir."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import TOY_PROJECT


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "toy"
    shutil.copytree(TOY_PROJECT, dest)
    return dest


def hpcml(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "jupyterlab_hpcml.cli", *args],
        capture_output=True, text=True, env=os.environ.copy(), timeout=180,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"hpcml {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def test_submit_wait_json_then_show_logs_runs_artifacts(project, hpcml_data, tmp_path):
    out = hpcml("submit", str(project), "-e", "main", "-P", "steps=3", "-P", "label=cli",
                "--run-name", "from-cli", "--experiment-name", "cli-exp", "--wait", "--json")
    run = json.loads(out.stdout)
    for key in ("id", "state", "exit_code", "backend_job_id", "mlflow_run_id",
                "mlflow_experiment_id", "parameters", "code"):
        assert key in run
    assert run["state"] == "FINISHED" and run["exit_code"] == 0
    assert run["parameters"]["label"] == "cli" and run["mlflow_experiment_name"] == "cli-exp"

    shown = json.loads(hpcml("show", run["id"][:6], "--json").stdout)
    assert shown["id"] == run["id"]
    text = hpcml("show", run["id"]).stdout
    assert "FINISHED" in text and "from-cli" in text

    listing = json.loads(hpcml("runs", "--json").stdout)
    assert [r["id"] for r in listing["runs"]] == [run["id"]]
    assert "from-cli" in hpcml("runs").stdout

    logs = hpcml("logs", run["id"]).stdout
    assert logs.startswith("step 0 loss 1.000\n") and "step 2" in logs
    assert hpcml("logs", run["id"], "--tail", "2").stdout == "step 2 loss 0.333\nno token\n"

    assert "result.txt" in hpcml("artifacts", run["id"]).stdout
    dest = tmp_path / "dl"
    hpcml("artifacts", run["id"], "--download", "result.txt", "--to", str(dest))
    assert (dest / "result.txt").read_text() == "label=cli\n"


def test_wait_exits_nonzero_unless_finished(project, hpcml_data):
    proc = hpcml(
        "submit", str(project), "-e", "fail", "-P", "code=5", "--wait", "--json", check=False
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["exit_code"] == 5
    assert "failing now" in hpcml("logs", json.loads(proc.stdout)["id"]).stdout


def test_cancel_and_rerun(project, hpcml_data):
    run_id = hpcml("submit", str(project), "-e", "sleep").stdout.strip()
    hpcml("cancel", run_id)
    deadline = time.monotonic() + 30
    while json.loads(hpcml("show", run_id, "--json").stdout)["state"] != "CANCELLED":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    proc = hpcml("cancel", run_id, check=False)
    assert proc.returncode != 0 and "already ended" in proc.stderr

    rerun = json.loads(hpcml("rerun", run_id, "-P", "seconds=0", "--wait", "--json").stdout)
    assert rerun["rerun_of"] == run_id and rerun["state"] == "FINISHED"
    assert rerun["parameters"]["seconds"] == "0"


def test_validate(project, hpcml_data):
    ok = hpcml("validate", str(project))
    assert ok.stdout.startswith("OK")
    (project / "bad.yaml").write_text("Resources:\n  Runtime: forever\n")
    proc = hpcml("validate", str(project), "-c", str(project / "bad.yaml"), check=False)
    assert proc.returncode == 1 and "bad.yaml:2" in proc.stdout and "Runtime" in proc.stdout
    proc = hpcml("validate", str(project), "-P", "stpes=3", check=False)
    assert proc.returncode == 1 and "steps" in proc.stdout
    (project / "MLproject").write_text(
        "name: toy\nentry_points:\n  main:\n"
        "    parameters: {x: {type: tensor}}\n    command: echo\n"
    )
    proc = hpcml("validate", str(project), check=False)
    assert proc.returncode == 1 and "MLproject" in proc.stdout and "tensor" in proc.stdout


def test_bad_input_prints_one_line_and_submits_nothing(project, hpcml_data):
    for args in (["-P", "steps=lots"], ["-e", "nope"], ["-P", "novalue"], ["--set", "Resources"],
                 ["-c", "missing.yaml"]):
        proc = hpcml("submit", str(project), *args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("hpcml: ") and "Traceback" not in proc.stderr
    assert json.loads(hpcml("runs", "--json").stdout)["total"] == 0
