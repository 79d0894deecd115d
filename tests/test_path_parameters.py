"""A relative ``path`` parameter names a file of the project: the job finds it in its own
copy of the project (the run directory), wherever it runs — not in this server's project
folder, which does not exist on a cluster. The local backend and Slurm over SSH (the real
test cluster; skips without it)."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import yaml

from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.models import RunRecord
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine

from .slurm_cluster import backend_config, slurm  # noqa: F401 - fixture

READER = """import os, sys
print("REAL", os.path.realpath(sys.argv[1]))
print("TEXT", open(sys.argv[1]).read().strip())
"""


def make_project(dest: Path) -> Path:
    (dest / "data").mkdir(parents=True)
    (dest / "data" / "x.txt").write_text("from the snapshot\n")
    (dest / "read.py").write_text(READER)
    (dest / "MLproject").write_text(
        "name: paths\nentry_points:\n  main:\n"
        "    parameters:\n      data: {type: path, default: data/x.txt}\n"
        "    command: python read.py {data}\n"
    )
    return dest


async def finished(engine: Engine, run: RunRecord, timeout: float = 120) -> RunRecord:
    deadline = time.monotonic() + timeout
    while not run.state.terminal:
        assert time.monotonic() < deadline, run.state_history
        await asyncio.sleep(0.3)
        await engine.runs.refresh()
        run = await engine.runs.get(run.id)
    return run


async def read_in_run_dir(engine: Engine, req: SubmitRequest, project: Path) -> None:
    run = await engine.runs.submit(req)
    # Changed after the submission: the job must read the run's copy, not this file.
    (project / "data" / "x.txt").write_text("changed in the project folder\n")
    run = await finished(engine, run)
    log = (await engine.read_log(run.id, "stdout")).data
    assert run.state == RunState.FINISHED, (run.state_history, log)
    assert "data/x.txt" in run.command and str(project) not in run.command, run.command
    lines = dict(line.split(" ", 1) for line in log.splitlines() if " " in line)
    assert lines.get("TEXT") == "from the snapshot", log
    assert run.run_dir and lines["REAL"].startswith(run.run_dir.rstrip("/") + "/"), (
        lines, run.run_dir)


async def test_local_run_reads_a_relative_path_in_its_run_directory(hpcml_data, tmp_path):
    project = make_project(tmp_path / "proj")
    engine = Engine(data_dir=hpcml_data)
    try:
        await read_in_run_dir(engine, SubmitRequest(project=str(project)), project)
    finally:
        await engine.close()


async def test_slurm_run_reads_a_relative_path_on_the_cluster(hpcml_data, tmp_path, slurm):  # noqa: F811
    project = make_project(tmp_path / "proj")
    (project / "slurm.yaml").write_text(yaml.safe_dump(backend_config(slurm)))
    engine = Engine(data_dir=hpcml_data)
    try:
        req = SubmitRequest(project=str(project), backend_config="slurm.yaml",
                            parameters={"data": "data/x.txt"})
        await read_in_run_dir(engine, req, project)
    finally:
        await engine.close()


@pytest.mark.parametrize("value", ["../elsewhere.txt", "data/../../elsewhere.txt"])
async def test_a_relative_path_leaving_the_project_is_refused(hpcml_data, tmp_path, value):
    project = make_project(tmp_path / "proj")
    (tmp_path / "elsewhere.txt").write_text("not in the run's copy")
    engine = Engine(data_dir=hpcml_data)
    try:
        with pytest.raises(Exception, match="leaves the project"):
            await engine.runs.submit(SubmitRequest(project=str(project),
                                                   parameters={"data": value}))
        assert (await engine.list_runs())[1] == 0  # nothing was created
    finally:
        await engine.close()
