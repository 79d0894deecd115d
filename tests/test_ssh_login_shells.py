"""A cluster account whose login shell is tcsh (still the default at some sites): the
commands we send are POSIX shell, so they must reach /bin/sh intact. Needs the test
cluster's tcsh user (HPCML_TEST_CSH_USER); skips without it."""
from __future__ import annotations

from pathlib import Path

import pytest

from jupyterlab_hpcml.backends.ssh.connection import SSHConnection
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine

from .slurm_cluster import make_project, slurm, ssh_section  # noqa: F401 - fixture
from .test_slurm_engine import wait_terminal


@pytest.fixture
def csh_user(slurm) -> str:  # noqa: F811
    user = slurm.get("HPCML_TEST_CSH_USER")
    if not user:
        pytest.skip("the test cluster has no tcsh user (HPCML_TEST_CSH_USER)")
    return user


async def test_posix_commands_and_stdin_reach_sh_under_a_tcsh_login(slurm, csh_user):  # noqa: F811
    conn = SSHConnection({**ssh_section(slurm), "User": csh_user})
    try:
        res = await conn.run(
            'if [ "$(printf \'x\\n\')" = x ]; then\n  echo "posix:$(whoami)"\nfi\n'
            'read -r line; echo "stdin:$line"',
            input=b'it\'s "quoted" $HOME\n',
        )
        assert conn.login_env["SHELL"].endswith("tcsh")
        assert res.exit_status == 0, res.err
        assert res.out.splitlines() == [f"posix:{csh_user}", "stdin:it's \"quoted\" $HOME"]
        assert (await conn.run("exit 7")).exit_status == 7
    finally:
        await conn.close()


async def test_a_run_of_a_tcsh_user_finishes_and_fails_like_any_other(
    hpcml_data: Path, tmp_path: Path, slurm, csh_user  # noqa: F811
):
    engine = Engine(data_dir=hpcml_data)
    try:
        project = make_project(tmp_path / "toy", slurm, SSH={"User": csh_user})
        ok = await engine.runs.submit(
            SubmitRequest(
                project=str(project),
                backend_config="slurm.yaml",
                entry_point="fail",
                parameters={"code": 0},
            )
        )
        bad = await engine.runs.submit(
            SubmitRequest(
                project=str(project),
                backend_config="slurm.yaml",
                entry_point="fail",
                parameters={"code": 3},
            )
        )
        assert ok.backend_job_id and bad.backend_job_id, (ok.state_message, bad.state_message)
        assert f"/home/{csh_user}/" in (ok.run_dir or "")
        ok, bad = await wait_terminal(engine, ok.id), await wait_terminal(engine, bad.id)
        assert (ok.state, ok.exit_code) == (RunState.FINISHED, 0)
        assert (bad.state, bad.exit_code) == (RunState.FAILED, 3)
    finally:
        await engine.close()
