"""A sweep's array script and the requeue policy in the batch script, run by bash directly
(its #SBATCH lines are comments; Slurm's variables set by the test, ``scontrol`` a stub
that records its arguments). The real cluster runs them in test_slurm_array/requeue."""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from jupyterlab_hpcml.backends.base import JobSpec
from jupyterlab_hpcml.backends.batchscript import (
    render_batch_script,
    secrets_file_content,
    task_files,
)
from jupyterlab_hpcml.backends.exitrecord import exit_file, parse_exit_record
from jupyterlab_hpcml.core.config_models import BackendConfigModel
from jupyterlab_hpcml.core.job import ArrayTask, JobContext, RequeuePolicy

HOSTILE = "$(touch pwned) `touch pwned2` 'q' \"dq\" \\ ; ${HOME} && exit 9\nnext line"


def ctx(run_id: str, command: str, env: dict[str, str]) -> JobContext[BackendConfigModel]:
    return JobContext(run_id=run_id, run_name=f"name\t{run_id}", project_name="p",
                      entry_point="main", job_name="j", command=command,
                      config=BackendConfigModel.model_validate({}), env=env)


def write(run_dir: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = run_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def lead(**kw) -> JobSpec:
    base = {"run_id": "s1", "command": "echo lead-must-not-run", "job_name": "sweep",
            "env": {"MLFLOW_TRACKING_URI": "http://x", "MLFLOW_RUN_ID": "parent",
                    "MLFLOW_TRACKING_TOKEN": "tok-canary"}}
    base.update(kw)
    return JobSpec(**base)


def test_task_files_quote_every_value_and_keep_secrets_out(tmp_path):
    tasks = [ArrayTask(i, ctx(f"r{i}", f"echo {i}", {"MLFLOW_RUN_ID": f"m{i}", "P": HOSTILE,
                                                      "MLFLOW_TRACKING_TOKEN": "tok-canary"}))
             for i in range(3)]
    files = task_files(tasks)
    assert set(files) == {*(f".hpcml/tasks/{i}.{e}" for i in range(3) for e in ("env", "cmd")),
                          ".hpcml/tasks/params.tsv"}
    assert all(b"tok-canary" not in data for data in files.values())
    assert files[".hpcml/tasks/1.cmd"] == b"echo 1"
    table = files[".hpcml/tasks/params.tsv"].decode().splitlines()
    assert table[0] == "index\trun_id\trun_name\tcommand"
    assert table[2] == "1\tr1\tname r1\techo 1"  # a tab in a value does not shift the columns
    # Sourcing an env file sets the value as it was, and runs nothing.
    write(tmp_path, files)
    out = subprocess.run(["bash", "-c", '. .hpcml/tasks/2.env; printf %s "$P"'],
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out == HOSTILE and not list(tmp_path.glob("pwned*"))
    with pytest.raises(ValueError):
        task_files([tasks[0], tasks[0]])


def run_task(run_dir: Path, script: str, task_id: int, extra_env: dict[str, str] | None = None,
             ) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(run_dir.parent),
           "SLURM_ARRAY_TASK_ID": str(task_id), "SLURM_ARRAY_JOB_ID": "77",
           "SLURM_JOB_ID": str(100 + task_id), **(extra_env or {})}
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                          env=env)


def test_an_array_element_runs_its_task_with_the_offset(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".hpcml").mkdir(parents=True)
    secrets = tmp_path / "secret.env"
    secrets.write_bytes(secrets_file_content({"MLFLOW_TRACKING_TOKEN": "tok-canary"}))
    cmd = ('printf "%s|%s|%s|%s\\n" "$MLFLOW_RUN_ID" "$P" "$MLFLOW_TRACKING_TOKEN" '
           '"$HPCML_TASK_INDEX"; exit "$CODE"')
    tasks = [ArrayTask(i, ctx(f"r{i}", cmd, {"MLFLOW_RUN_ID": f"m{i}", "P": f"{HOSTILE}{i}",
                                             "CODE": str(3 if i == 4 else 0)}))
             for i in range(6)]
    write(run_dir, task_files(tasks))
    # The second array of a sweep split in two: elements 0-2 are tasks 3-5.
    script = render_batch_script(lead(), str(run_dir), secrets_file=str(secrets),
                                 array="0-2%2", array_offset=3)
    assert "#SBATCH --array=0-2%2\n" in script
    assert f"#SBATCH --output={run_dir}/.hpcml/array.%A_%a.log\n" in script
    assert HOSTILE not in script and "tok-canary" not in script
    for element in range(3):
        run_task(run_dir, script, element)
    meta = run_dir / ".hpcml"
    for task in (3, 4, 5):
        out = (meta / f"stdout.{task}.log").read_text()
        assert out == f"m{task}|{HOSTILE}{task}|tok-canary|{task}\n"
        record = parse_exit_record((run_dir / exit_file(task)).read_bytes())
        assert record is not None and record.exit_code == (3 if task == 4 else 0)
        assert (meta / f"started.{task}").is_file()
    assert not list(run_dir.rglob("pwned*")) and not (meta / "exit_code").exists()
    assert not (meta / "stdout.0.log").exists()
    assert "lead-must-not-run" not in "".join(p.read_text() for p in meta.glob("*.log"))
    # The secrets file is shared: it stays until the last task has ended.
    assert secrets.exists()
    for element in range(3):
        run_task(run_dir, render_batch_script(lead(), str(run_dir), secrets_file=str(secrets),
                                              array="0-2", array_offset=0), element)
    assert not secrets.exists()


def test_an_array_task_in_apptainer_reads_its_command_from_its_file(tmp_path):
    # A stub "srun" and "apptainer" that run what they are given, as the real ones would.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/bash\nexec "$@"\n')
    (bin_dir / "apptainer").write_text('#!/bin/bash\nshift; shift\nexec "$@"\n')  # run IMG cmd..
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    run_dir = tmp_path / "run"
    (run_dir / ".hpcml").mkdir(parents=True)
    write(run_dir, task_files([ArrayTask(0, ctx("r0", f"printf %s {shlex.quote(HOSTILE)}", {}))]))
    spec = lead(env={}, environment={"Apptainer": {"Path": "/img.sif"}})
    script = render_batch_script(spec, str(run_dir), array="0", array_offset=0)
    run_task(run_dir, script, 0, {"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert (run_dir / ".hpcml/stdout.0.log").read_text() == HOSTILE
    assert not list(run_dir.rglob("pwned*"))


def test_single_run_scripts_are_unchanged_by_the_array_options(tmp_path):
    spec = lead()
    plain = render_batch_script(spec, "/r", secrets_file="/s")
    assert "__hpcml_task=" not in plain and "USR2" not in plain and "--requeue" not in plain
    assert "#SBATCH --output=/r/.hpcml/stdout.log\n" in plain
    with pytest.raises(ValueError):
        render_batch_script(spec, "/r", array_offset=0)


# ---------------------------------------------------------------------- requeue

CHECKPOINTING = r"""
import os, signal, sys, time
ck = os.path.join(os.environ["HPCML_CHECKPOINT_DIR"], "step")
step = int(open(ck).read()) if os.path.exists(ck) else 0
print("start", step, "restart", os.environ["HPCML_RESTART_COUNT"], flush=True)
stop = []
signal.signal(signal.SIGUSR2, lambda *a: stop.append(1))
open(os.path.join(os.environ["HPCML_RUN_DIR"], "ready"), "w").close()
while step < int(os.environ["STEPS"]):
    if stop:
        time.sleep(0.5)  # a checkpoint takes time: the script must wait for it
        open(ck, "w").write(str(step))
        print("checkpointed at", step, flush=True)
        sys.exit(0)
    step += 1
    time.sleep(0.05)
print("done", step, flush=True)
"""


def requeue_setup(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    run_dir = tmp_path / "run"
    (run_dir / ".hpcml" / "checkpoint").mkdir(parents=True)
    (run_dir / "train.py").write_text(CHECKPOINTING)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/bash\necho "$@" >> {tmp_path}/scontrol.calls\n')
    (bin_dir / "scontrol").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "SLURM_JOB_ID": "55"}
    return run_dir, env


def start_and_signal(script: str, run_dir: Path, env: dict[str, str]
                     ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(["bash", "-c", script], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not (run_dir / "ready").exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR2)  # what Slurm's --signal=B:USR2@s does: the script only
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_usr2_is_passed_on_the_program_checkpoints_and_the_job_requeues_itself(tmp_path):
    run_dir, env = requeue_setup(tmp_path)
    # A compound command: the program is not the direct child of the script's step.
    spec = lead(env={"HPCML_CHECKPOINT_DIR": str(run_dir / ".hpcml/checkpoint"),
                     "HPCML_RESTART_COUNT": "0", "STEPS": "100000"},
                command="cd . && python train.py && true")
    script = render_batch_script(spec, str(run_dir), requeue=RequeuePolicy(2, 45))
    assert "#SBATCH --requeue\n" in script and "#SBATCH --signal=B:USR2@45\n" in script
    assert "#SBATCH --open-mode=append\n" in script
    res = start_and_signal(script, run_dir, env)
    assert res.returncode == 0, res.stderr
    assert "checkpointed at" in res.stdout and "requeueing job 55" in res.stderr
    assert (tmp_path / "scontrol.calls").read_text() == "requeue 55\n"
    assert not (run_dir / ".hpcml/exit_code").exists()  # not an end
    step = int((run_dir / ".hpcml/checkpoint/step").read_text())
    assert step > 0
    # The restart (Slurm sets the count): it resumes, records its end as usual.
    (run_dir / ".hpcml/exit_code").write_text('{"exit_code": 143}')  # an admin's requeue's
    spec.env["STEPS"] = str(step + 5)
    script = render_batch_script(spec, str(run_dir), requeue=RequeuePolicy(2, 45))
    res = subprocess.run(["bash", "-c", script], env={**env, "SLURM_RESTART_COUNT": "1"},
                         capture_output=True, text=True, timeout=30)
    assert f"start {step} restart 1" in res.stdout and f"done {step + 5}" in res.stdout
    record = parse_exit_record((run_dir / ".hpcml/exit_code").read_bytes())
    assert record is not None and (record.exit_code, record.restart) == (0, 1)


def test_no_requeue_left_the_program_runs_on(tmp_path):
    run_dir, env = requeue_setup(tmp_path)
    spec = lead(env={"HPCML_CHECKPOINT_DIR": str(run_dir / ".hpcml/checkpoint"), "STEPS": "60"})
    script = render_batch_script(spec, str(run_dir), array="0", array_offset=0,
                                 requeue=RequeuePolicy(1, 45))
    write(run_dir, task_files([ArrayTask(0, ctx("r0", "python train.py", {"STEPS": "60"}))]))
    env = {**env, "SLURM_RESTART_COUNT": "1", "SLURM_ARRAY_TASK_ID": "0",
           "SLURM_ARRAY_JOB_ID": "54"}
    start_and_signal(script, run_dir, env)
    assert "done 60" in (run_dir / ".hpcml/stdout.0.log").read_text()
    assert "no requeue left" in (run_dir / ".hpcml/stderr.0.log").read_text()
    assert not (tmp_path / "scontrol.calls").exists()
    record = parse_exit_record((run_dir / exit_file(0)).read_bytes())
    assert record is not None and record.exit_code == 0


def test_an_array_task_requeues_its_own_element(tmp_path):
    run_dir, env = requeue_setup(tmp_path)
    spec = lead(env={})
    write(run_dir, task_files([ArrayTask(i, ctx(f"r{i}", "python train.py", {
        "HPCML_CHECKPOINT_DIR": str(run_dir / ".hpcml/checkpoint"), "STEPS": "100000"}))
        for i in range(3)]))
    script = render_batch_script(spec, str(run_dir), array="0-1", array_offset=1,
                                 requeue=RequeuePolicy(3, 60))
    env = {**env, "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_JOB_ID": "54"}
    start_and_signal(script, run_dir, env)
    assert (tmp_path / "scontrol.calls").read_text() == "requeue 54_1\n"
    assert not (run_dir / exit_file(2)).exists()
    assert "checkpointed at" in (run_dir / ".hpcml/stdout.2.log").read_text()


def test_the_config_keys_become_the_requeue_policy_and_its_sbatch_lines():
    from jupyterlab_hpcml.backends.ssh.slurm import SlurmBackend
    from jupyterlab_hpcml.engine import job_context
    from jupyterlab_hpcml.engine.config import parse_backend_config

    backend = SlurmBackend({}, Path("/nonexistent"))
    base = {"SSH": {"Hostname": "h", "User": "u"}}
    on = parse_backend_config({**base, "Resources": {"Queue": "q", "Runtime": "1h",
                                                     "Requeue": True,
                                                     "RequeueSignalSeconds": 30}})
    policy = job_context.requeue_policy(job_context.job_config(backend, on).resources)
    assert policy == RequeuePolicy(max_requeues=3, signal_before_end=30)
    off = parse_backend_config({**base, "Resources": {"Queue": "q", "MaxRequeues": 1}})
    assert job_context.requeue_policy(job_context.job_config(backend, off).resources) is None
    script = render_batch_script(lead(), "/r", secrets_file="/s", requeue=policy)
    assert "#SBATCH --signal=B:USR2@30\n" in script and "__hpcml_requeue_max=3\n" in script
    features = backend.supported_features()
    assert features.requeue and features.job_arrays and "Requeue" in features.resources
