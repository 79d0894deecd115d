"""The digits example checkpoints every epoch into HPCML_CHECKPOINT_DIR and resumes from it:
the real train.py as a subprocess, stopped by the signals a requeue sends, against a real
MLflow (sqlite) store."""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

TRAIN = Path(__file__).parents[1] / "examples" / "digits" / "train.py"
EPOCHS = 6


def start(tmp_path: Path, env: dict[str, str], name: str, *args: str) -> subprocess.Popen[bytes]:
    out = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed when the process is waited
    return subprocess.Popen(
        [sys.executable, str(TRAIN), "--epochs", str(EPOCHS), "--seed", "3", *args],
        cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)


def log_text(tmp_path: Path, name: str) -> str:
    return (tmp_path / f"{name}.log").read_text()


def wait_for_line(tmp_path: Path, name: str, text: str, proc: subprocess.Popen[bytes],
                  timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while text not in log_text(tmp_path, name):
        assert proc.poll() is None, f"ended ({proc.returncode}):\n{log_text(tmp_path, name)}"
        assert time.monotonic() < deadline, f"no {text!r} in:\n{log_text(tmp_path, name)}"
        time.sleep(0.1)


def finish(proc: subprocess.Popen[bytes], tmp_path: Path, name: str) -> int:
    try:
        return proc.wait(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(log_text(tmp_path, name)) from None


def checkpoint_epoch(ckpt_dir: Path) -> int:
    with open(ckpt_dir / "digits-checkpoint.pkl", "rb") as f:
        return int(pickle.load(f)["epoch"])  # noqa: S301 - our own test file


def history(client: MlflowClient, run_id: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, "val_accuracy"))


@pytest.mark.timeout(600)
def test_stopped_twice_resumes_the_same_run(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("digits")
    run_id = client.create_run(exp).info.run_id  # as the engine creates it before the job
    ckpt = tmp_path / "run" / ".hpcml" / "checkpoint"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_RUN_ID": run_id,
           "HPCML_CHECKPOINT_DIR": str(ckpt), "HPCML_RESTART_COUNT": "0"}

    # 1st attempt: USR2 (Slurm's warning before the end) after epoch 2.
    first = start(tmp_path, env, "first", "--epoch-delay", "2")
    wait_for_line(tmp_path, "first", f"epoch   2/{EPOCHS}", first)
    first.send_signal(signal.SIGUSR2)
    assert finish(first, tmp_path, "first") == 99, log_text(tmp_path, "first")
    k = checkpoint_epoch(ckpt)
    assert 2 <= k < EPOCHS - 1
    assert f"stopped after epoch {k} (SIGUSR2)" in log_text(tmp_path, "first")
    assert [s for s, _ in history(client, run_id)] == list(range(1, k + 1))
    assert client.get_run(run_id).info.status == "KILLED"
    assert not list(ckpt.glob(".*.tmp"))  # written atomically, nothing left behind

    # 2nd attempt (a requeue: same env): resumes at k+1, then SIGTERM after one more epoch.
    env["HPCML_RESTART_COUNT"] = "1"
    second = start(tmp_path, env, "second", "--epoch-delay", "2")
    wait_for_line(tmp_path, "second", f"epoch {k + 1:>3}/{EPOCHS}", second)
    second.send_signal(signal.SIGTERM)
    assert finish(second, tmp_path, "second") == 99, log_text(tmp_path, "second")
    text = log_text(tmp_path, "second")
    assert f"resuming after epoch {k} from {ckpt / 'digits-checkpoint.pkl'} (restart 1)" in text
    assert f"epoch {k:>3}/" not in text  # nothing trained twice
    k2 = checkpoint_epoch(ckpt)
    assert k < k2 < EPOCHS

    # 3rd attempt runs to the end.
    env["HPCML_RESTART_COUNT"] = "2"
    third = start(tmp_path, env, "third")
    assert finish(third, tmp_path, "third") == 0, log_text(tmp_path, "third")
    assert f"resuming after epoch {k2}" in log_text(tmp_path, "third")
    resumed = history(client, run_id)
    assert [s for s, _ in resumed] == list(range(1, EPOCHS + 1))  # each step exactly once
    assert client.get_run(run_id).info.status == "FINISHED"

    # Bit for bit what one uninterrupted run gives (model, optimizer and shuffling state
    # all resumed); without HPCML_CHECKPOINT_DIR no checkpoint is written anywhere.
    plain_run = client.create_run(exp).info.run_id
    plain_env = {k: v for k, v in env.items() if not k.startswith("HPCML_")}
    plain_env["MLFLOW_RUN_ID"] = plain_run
    plain = start(tmp_path, plain_env, "plain")
    assert finish(plain, tmp_path, "plain") == 0, log_text(tmp_path, "plain")
    assert history(client, plain_run) == resumed
    assert list(tmp_path.rglob("digits-checkpoint.pkl")) == [ckpt / "digits-checkpoint.pkl"]
