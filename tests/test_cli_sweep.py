"""`hpcml sweep` and the sweep forms of runs/show/cancel/rerun, as a user runs them: real
`hpcml` subprocesses over one data dir, real local processes, the real MLflow store."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from .conftest import TOY_PROJECT
from .test_cli import hpcml


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "toy"
    shutil.copytree(TOY_PROJECT, dest)
    return dest


def test_grid_wait_json_then_runs_and_show(project, hpcml_data):
    proc = hpcml("sweep", str(project), "-e", "main", "-P", "steps=2,3", "-P", "lr=0.1,0.5",
                 "-P", "label=cli", "--max-parallel", "2", "--run-name", "grid",
                 "--wait", "--json")
    sweep = json.loads(proc.stdout)
    assert sweep["id"].startswith("s") and sweep["name"] == "grid"
    assert sweep["state"] == "FINISHED" and sweep["counts"] == {"FINISHED": 4}
    assert sweep["max_parallel"] == 2
    assert sweep["definition"]["mode"] == "grid" and sweep["definition"]["points"] == 4
    assert sweep["definition"]["parameters"] == {"steps": "2,3", "lr": "0.1,0.5", "label": "cli"}
    children = sweep["children"]
    assert [c["sweep_index"] for c in children] == [0, 1, 2, 3]
    assert [(c["parameters"]["steps"], c["parameters"]["lr"]) for c in children] == [
        ("2", "0.1"), ("2", "0.5"), ("3", "0.1"), ("3", "0.5")]
    assert all(c["sweep_id"] == sweep["id"] and c["exit_code"] == 0 for c in children)
    # Full run records: the very fields `hpcml show RUN --json` gives.
    shown = json.loads(hpcml("show", children[0]["id"], "--json").stdout)
    assert set(children[0]) == set(shown)
    assert children[0]["started_at"] and children[0]["ended_at"]

    # MLflow: the children nest under the sweep's parent run.
    client = MlflowClient()
    kids = client.search_runs([sweep["mlflow_experiment_id"]],
                              f"tags.`mlflow.parentRunId` = '{sweep['mlflow_run_id']}'")
    assert sorted(r.info.run_id for r in kids) == sorted(c["mlflow_run_id"] for c in children)

    single = hpcml("submit", str(project), "-P", "steps=1", "--run-name", "alone").stdout.strip()
    listing = hpcml("runs").stdout.splitlines()
    sweep_lines = [line for line in listing if line.startswith(sweep["id"])]
    assert len(sweep_lines) == 1 and "FINISHED (4 FINISHED)" in sweep_lines[0]
    assert "[sweep of 4]" in sweep_lines[0]
    assert not any(c["id"] in line for c in children for line in listing)  # one line only
    assert any(line.startswith(single) for line in listing)
    assert len(listing) == 3  # header, the sweep, the single run
    as_json = json.loads(hpcml("runs", "--json").stdout)
    assert [s["id"] for s in as_json["sweeps"]] == [sweep["id"]]
    assert as_json["sweeps"][0]["counts"] == {"FINISHED": 4}
    assert len(hpcml("runs", "-q", "grid").stdout.splitlines()) == 2  # header + the sweep
    assert sweep["id"] not in hpcml("runs", "--state", "running").stdout

    text = hpcml("show", sweep["id"][:6]).stdout
    assert f"sweep {sweep['id']} (grid): 4 runs, grid, max-parallel 2" in text
    assert all(c["id"] in text for c in children)
    assert "steps=2 lr=0.1" in text  # the varying parameters, not the fixed label
    again = json.loads(hpcml("show", sweep["id"], "--json").stdout)
    assert [c["id"] for c in again["children"]] == [c["id"] for c in children]


def test_failing_child_wait_exits_nonzero_then_rerun_failed(project, hpcml_data):
    proc = hpcml("sweep", str(project), "-e", "fail", "-P", "code=0,3", "--wait", "--json",
                 check=False)
    assert proc.returncode == 1, proc.stderr
    sweep = json.loads(proc.stdout)
    failed = [c for c in sweep["children"] if c["state"] == "FAILED"]
    assert len(failed) == 1 and failed[0]["exit_code"] == 3
    assert sweep["state"] == "FAILED" and sweep["counts"] == {"FINISHED": 1, "FAILED": 1}
    # The failing child is named, with its exit code.
    assert f"{failed[0]['id']} FAILED (exit code 3)" in proc.stderr
    assert "1 of 2 children did not finish" in proc.stderr

    proc = hpcml("rerun", sweep["id"], "--failed", "-P", "code=0", "--wait", "--json")
    after = json.loads(proc.stdout)
    assert after["id"] == sweep["id"] and len(after["children"]) == 3
    new = [c for c in after["children"] if c["id"] not in {c["id"] for c in sweep["children"]}]
    assert len(new) == 1 and new[0]["rerun_of"] == failed[0]["id"]
    assert new[0]["sweep_index"] == failed[0]["sweep_index"]
    assert new[0]["state"] == "FINISHED" and new[0]["parameters"]["code"] == "0"
    assert new[0]["snapshot_id"] == failed[0]["snapshot_id"]
    assert "last attempts: 2 FINISHED (of 2 points)" in hpcml("show", sweep["id"]).stdout

    proc = hpcml("rerun", sweep["id"], "--failed", check=False)  # nothing failed any more
    assert proc.returncode == 1 and "no failed child" in proc.stderr
    for args in (["--fresh-code"], ["--run-name", "x"]):  # only a run takes these
        proc = hpcml("rerun", sweep["id"], "--failed", *args, check=False)
        assert proc.returncode == 2 and args[0] in proc.stderr
    proc = hpcml("rerun", failed[0]["id"], "--failed", check=False)  # a run, not a sweep
    assert proc.returncode == 2 and "--failed" in proc.stderr
    assert len(json.loads(hpcml("show", sweep["id"], "--json").stdout)["children"]) == 3


def test_cancel_sweep_cancels_every_active_child(project, hpcml_data):
    proc = hpcml("sweep", str(project), "-e", "sleep", "-P", "seconds=300,301,302",
                 "--max-parallel", "1")
    assert "max-parallel 1" in proc.stdout
    assert "submitted sweep s" in proc.stderr
    sweep_id = proc.stdout.split()[1]
    proc = hpcml("cancel", sweep_id)
    assert f"cancel requested for 3 children of sweep {sweep_id}" in proc.stderr
    deadline = time.monotonic() + 60
    while (view := json.loads(hpcml("show", sweep_id, "--json").stdout))["state"] != "CANCELLED":
        assert time.monotonic() < deadline, view["counts"]
        time.sleep(0.5)
    assert view["counts"] == {"CANCELLED": 3}
    proc = hpcml("cancel", sweep_id, check=False)
    assert proc.returncode == 1 and "no active child" in proc.stderr


def test_bad_input_exit_2_and_nothing_created(project, hpcml_data, tmp_path):
    proc = hpcml("sweep", str(project), "-P", "steps=1,x", "-P", "lr=0.1", check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("hpcml: parameters.steps:") and "'x'" in proc.stderr
    assert "Traceback" not in proc.stderr
    (tmp_path / "rows.txt").write_text("steps\n1\n")
    for args in (["-P", "steps=range(0,3)", "--seed", "1"],  # a seed without --random
                 ["-e", "nope", "-P", "steps=1,2"],
                 ["--from", str(tmp_path / "missing.csv")],
                 ["--from", str(tmp_path / "rows.txt")],
                 ["--random", "0", "-P", "lr=interval(0,1)"],
                 ["--random", "lots"]):
        proc = hpcml("sweep", str(project), *args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.count("hpcml") >= 1 and "Traceback" not in proc.stderr, args
    listing = json.loads(hpcml("runs", "--json").stdout)
    assert listing["total"] == 0 and listing["sweeps"] == []


def test_rows_from_csv(project, hpcml_data, tmp_path):
    rows = tmp_path / "points.csv"
    rows.write_text("steps,label\n1,first\n2,\"a,b\"\n")
    sweep = json.loads(hpcml("sweep", str(project), "--from", str(rows), "-P", "lr=0.25",
                             "--wait", "--json").stdout)
    assert sweep["definition"]["mode"] == "rows" and sweep["definition"]["points"] == 2
    assert sweep["definition"]["rows_source"] == str(rows)
    assert [{k: c["parameters"][k] for k in ("steps", "label", "lr")}
            for c in sweep["children"]] == [
        {"steps": "1", "label": "first", "lr": "0.25"},
        {"steps": "2", "label": "a,b", "lr": "0.25"}]
    assert sweep["state"] == "FINISHED"
    hpcml("artifacts", sweep["children"][1]["id"], "--download", "result.txt",
          "--to", str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "result.txt").read_text() == "label=a,b\n"  # one value


def test_magic_sweep_parser_shares_the_cli_options(tmp_path):
    from jupyterlab_hpcml import cli_args
    from jupyterlab_hpcml.magics import parser

    (tmp_path / "rows.json").write_text('[{"steps": 2, "label": null}, {"steps": 3}]')
    args = parser("sweep").parse_args(["proj", "-e", "train", "-P", "lr=interval(0.1,1)",
                                       "--random", "5", "--seed", "7", "--max-parallel", "3",
                                       "--set", "Resources.Nodes=2", "--wait"])
    req = cli_args.sweep_request(args, cwd=tmp_path)
    assert req.project == str(tmp_path / "proj") and req.entry_point == "train"
    assert req.parameters == {"lr": "interval(0.1,1)"}
    assert (req.random, req.seed, req.max_parallel) == (5, 7, 3) and args.wait
    assert req.overrides == ["Resources.Nodes=2"] and req.rows is None
    req = cli_args.sweep_request(parser("sweep").parse_args(["--from", "rows.json"]),
                                 cwd=tmp_path)
    # null in a JSON row: the parameter's default, so left out
    assert req.rows == [{"steps": 2}, {"steps": 3}] and req.rows_source == "rows.json"
