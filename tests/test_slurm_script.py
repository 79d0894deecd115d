"""The batch script renderer and the Slurm state mapping (no cluster needed: the script
is run by bash directly, its #SBATCH lines being comments)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from jupyterlab_hpcml.backends.base import JobSpec
from jupyterlab_hpcml.backends.batchscript import (
    log_file,
    render_batch_script,
    secrets_file_content,
    slurm_time,
    split_env,
)
from jupyterlab_hpcml.backends.exitrecord import (
    EXIT_FILE,
    ExitRecord,
    exit_code,
    exit_file,
    parse_exit_record,
)
from jupyterlab_hpcml.backends.slurm_common import map_state, sbatch_message
from jupyterlab_hpcml.backends.ssh.slurm import MAX_INLINE_BYTES, _inline_files
from jupyterlab_hpcml.core.errors import UserInputError
from jupyterlab_hpcml.core.states import RunState

HOSTILE = "$(touch pwned) `id` 'q' \"dq\" \\ ; ${HOME} && exit 9\nnext line"


def job(**kw) -> JobSpec:
    base = {"run_id": "r1", "command": "echo hello", "job_name": "hpcml-my project-train",
            "env": {"MLFLOW_RUN_ID": "abc", "MLFLOW_TRACKING_TOKEN": "tok-canary"}}
    base.update(kw)
    return JobSpec(**base)


def run_script(
    tmp_path: Path, spec: JobSpec, secrets: dict[str, str] | None = None
) -> tuple[dict, str, str]:
    run_dir = tmp_path / "run"
    (run_dir / ".hpcml").mkdir(parents=True)
    secrets_file = None
    if secrets:
        secrets_file = str(tmp_path / "secret.env")
        Path(secrets_file).write_bytes(secrets_file_content(secrets))
        os.chmod(secrets_file, 0o600)
    script = render_batch_script(spec, str(run_dir), secrets_file=secrets_file)
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30,
                         env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    record = json.loads((run_dir / ".hpcml" / "exit_code").read_text())
    assert record["exit_code"] == res.returncode
    return record, res.stdout, res.stderr


def test_resources_become_sbatch_lines():
    spec = job(
        resources={
            "Queue": "gpu",
            "Runtime": 5400,
            "Nodes": 2,
            "TotalCPUs": 8,
            "CPUsPerNode": 4,
            "GPUsPerNode": 1,
            "MemoryPerNode": 32768,
            "Reservation": "r",
            "QoS": "high",
            "NodeConstraints": "haswell&ib",
            "Account": "proj",
        }
    )
    script = render_batch_script(spec, "/scratch/u/hpcml/p/r1", secrets_file="/s/r1.env")
    for line in [
        "--partition=gpu",
        "--time=01:30:00",
        "--nodes=2",
        "--ntasks=8",
        "--ntasks-per-node=4",
        "--gpus-per-node=1",
        "--mem=32768M",
        "--reservation=r",
        "--qos=high",
        "--constraint=haswell&ib",
        "--account=proj",
        "--job-name=hpcml-my-project-train",
        "--output=/scratch/u/hpcml/p/r1/.hpcml/stdout.log",
        "--chdir=/scratch/u/hpcml/p/r1",
    ]:
        assert f"#SBATCH {line}\n" in script
    assert "tok-canary" not in script and "MLFLOW_RUN_ID=abc" in script
    assert slurm_time(90061) == "1-01:01:01" and slurm_time(59.2) == "00:01:00"
    with pytest.raises(UserInputError, match="Resources.Queue"):
        render_batch_script(job(env={}, resources={"Queue": "a b\n#SBATCH --x"}), "/r")
    with pytest.raises(ValueError):  # secrets never go inline
        render_batch_script(job(), "/r")


def test_apptainer_runs_through_srun_with_options():
    spec = job(env={}, environment={"Apptainer": {"Path": "img.sif", "Type": "local",
                                                  "Options": ["--nv", "-B /data:/data"]}})
    script = render_batch_script(spec, "/r", apptainer_image=".hpcml/apptainer/img.sif")
    assert "srun apptainer run --nv -B /data:/data .hpcml/apptainer/img.sif bash -c" in script


def test_script_runs_quotes_values_and_records_exit_code(tmp_path):
    spec = job(
        command='printf \'%s\\n\' "$HOSTILE"; echo "token=${MLFLOW_TRACKING_TOKEN:-}"; exit 3',
        environment={
            "Variables": {"HOSTILE": HOSTILE},
            "PreRunCommandOnComputeNode": ["echo pre"],
            "PostRunCommandOnComputeNode": ["echo post"],
        },
    )
    _, secret = split_env(spec.env)
    record, out, err = run_script(tmp_path, spec, secret)
    assert record["exit_code"] == 3 and record["signal"] is None
    assert out.splitlines() == ["pre", *HOSTILE.splitlines(), "token=tok-canary", "post"]
    assert not (tmp_path / "run" / "pwned").exists()
    assert not (tmp_path / "secret.env").exists()  # removed when the job ends


def test_failing_pre_command_stops_the_job_with_a_message(tmp_path):
    spec = job(env={}, command="echo main", environment={"PreRunCommandOnComputeNode": ["exit 5"]})
    record, out, err = run_script(tmp_path, spec)
    assert record["exit_code"] == 5 and "main" not in out
    assert "pre-run command failed with exit code 5: exit 5" in err


def test_missing_venv_and_missing_mlflow_are_explained(tmp_path):
    record, _, err = run_script(
        tmp_path, job(env={}, environment={"Python": str(tmp_path / "nope")})
    )
    assert record["exit_code"] == 1 and "no virtual environment" in err
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text(f"PATH={venv}/bin:$PATH\n")
    (venv / "bin" / "python").symlink_to("/usr/bin/python3")
    (tmp_path / "run").rename(tmp_path / "run1")
    record, out, err = run_script(tmp_path, job(env={}, environment={"Python": str(venv)}))
    assert record["exit_code"] == 0 and "hello" in out
    assert "mlflow is not installed" in err


@pytest.mark.parametrize("raw,reason,state", [
    ("PENDING", "Priority", RunState.QUEUED), ("CONFIGURING", None, RunState.QUEUED),
    ("RUNNING", None, RunState.RUNNING), ("COMPLETING", None, RunState.RUNNING),
    ("COMPLETED", None, RunState.FINISHED), ("FAILED", None, RunState.FAILED),
    ("CANCELLED by 1001", None, RunState.CANCELLED), ("CANCELLED+", None, RunState.CANCELLED),
    ("TIMEOUT", None, RunState.TIMEOUT), ("OUT_OF_MEMORY", None, RunState.FAILED),
    ("NODE_FAIL", None, RunState.FAILED), ("PREEMPTED", None, RunState.FAILED),
    ("BOOT_FAIL", None, RunState.FAILED), ("DEADLINE", None, RunState.TIMEOUT),
    ("SUSPENDED", None, RunState.RUNNING), ("REQUEUED", None, RunState.QUEUED),
])
def test_every_slurm_state_is_mapped(raw, reason, state):
    assert map_state(raw, reason)[0] == state


def test_state_details():
    assert map_state("CANCELLED by 1001")[1] == "cancelled by 1001"
    assert map_state("PENDING", "ReqNodeNotAvail")[1] == "pending: ReqNodeNotAvail"
    assert map_state("OUT_OF_MEMORY")[1] == "out of memory"
    assert exit_code(3, 0) == 3 and exit_code(0, 9) == 137
    assert sbatch_message("sbatch: error: invalid partition specified: x\nsbatch: error: Batch job "
                           "submission failed: Invalid partition name specified") == (
        "Slurm rejected the job: invalid partition specified: x; "
        "Batch job submission failed: Invalid partition name specified")


def test_per_run_files_written_by_the_command_line_arrive_byte_for_byte(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()  # made by the materialised tree in the real command
    files = {
        ".hpcml/job.sbatch": f"#!/bin/bash\necho {HOSTILE}\n".encode(),
        "mlruns/1/abc/meta.yaml": "name: 'ünïcode' # \\ %s %%\n".encode(),
        "mlruns/1/abc/metrics/": None,
        "empty.txt": b"",
    }
    lines = _inline_files(str(run_dir), files)
    assert lines is not None
    subprocess.run(["bash", "-c", f"fail() {{ exit $1; }}\n{lines}"], check=True, cwd=tmp_path,
                   env={"PATH": os.environ["PATH"]})
    for rel, data in files.items():
        path = run_dir / rel
        assert path.is_dir() if data is None else path.read_bytes() == data
    assert not (tmp_path / "pwned").exists()


def test_binary_or_big_per_run_files_go_by_stdin_instead() -> None:
    assert _inline_files("/r", {"a.bin": b"\xff\xfe"}) is None
    assert _inline_files("/r", {"a.txt": b"a\0b"}) is None
    assert _inline_files("/r", {"a.txt": b"x" * (MAX_INLINE_BYTES + 1)}) is None


def test_a_program_killed_by_a_signal_is_recorded_like_the_local_runner_does(tmp_path):
    """128 + n and the signal's name: the same record the local runner writes, read by
    every backend through exitrecord.parse_exit_record."""
    record, _, _ = run_script(tmp_path, job(env={}, command="kill -KILL $$"))
    assert (record["exit_code"], record["signal"]) == (137, "SIGKILL")
    assert parse_exit_record(json.dumps(record)) == ExitRecord(137, "SIGKILL", restart=0)


def test_array_jobs_get_one_log_and_exit_file_per_element(tmp_path):
    spec = job(env={}, command='echo "task $SLURM_ARRAY_TASK_ID"; exit "$SLURM_ARRAY_TASK_ID"')
    script = render_batch_script(spec, "/r", array="0-3%2")
    assert "#SBATCH --array=0-3%2\n" in script
    assert "#SBATCH --output=/r/.hpcml/stdout.%a.log\n" in script
    assert "#SBATCH --error=/r/.hpcml/stderr.%a.log\n" in script
    assert (
        log_file("stdout", 2) == ".hpcml/stdout.2.log" and log_file("stdout") == ".hpcml/stdout.log"
    )
    with pytest.raises(UserInputError, match="array"):
        render_batch_script(spec, "/r", array="1-3; rm -rf ~")
    # Element 2 of an array (as Slurm starts it): its own exit-code file.
    run_dir = tmp_path / "run"
    (run_dir / ".hpcml").mkdir(parents=True)
    subprocess.run(
        ["bash", "-c", render_batch_script(spec, str(run_dir), array="0-3")],
        capture_output=True,
        timeout=30,
        env={"PATH": os.environ["PATH"], "SLURM_ARRAY_TASK_ID": "2", "SLURM_JOB_ID": "12"},
    )
    assert not (run_dir / EXIT_FILE).exists()
    assert parse_exit_record((run_dir / exit_file(2)).read_bytes()) == ExitRecord(2, restart=0)
