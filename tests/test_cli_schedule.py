"""`hpcml schedule ...` and `hpcml scheduler` as a user runs them: real `hpcml` subprocesses
over one data dir, real local runs of the toy project, the real MLflow store."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from jupyterlab_hpcml.engine.requests import ScheduleRequest
from jupyterlab_hpcml.engine.service import Engine

from .conftest import TOY_PROJECT
from .test_cli import hpcml

WAIT = 300.0  # seconds: a bound on waiting for a run, never a timing assertion


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "toy"
    shutil.copytree(TOY_PROJECT, dest)
    return dest


def show(ref: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(hpcml("schedule", "show", ref, "--json").stdout)
    return data


def ended_run(run_id: str) -> dict[str, Any]:
    """``hpcml show RUN --json`` once the run has ended (each call asks its backend)."""
    deadline = time.monotonic() + WAIT
    while True:
        run: dict[str, Any] = json.loads(hpcml("show", run_id, "--json").stdout)
        if run["state"] in ("FINISHED", "FAILED", "CANCELLED", "TIMEOUT") or \
                time.monotonic() > deadline:
            return run
        time.sleep(0.5)


def test_add_list_show_pause_resume_run_now_rm(project: Path, hpcml_data: Path) -> None:
    added = hpcml("schedule", "add", str(project), "-e", "main", "-P", "steps=1",
                  "-P", "label=sched", "--cron", "0 3 * * *", "--tz", "Europe/Zurich",
                  "--overlap", "allow", "--catch-up", "all", "--catch-up-limit", "3",
                  "--max-runs", "30", "--name", "nightly", "--run-name", "n{n}",
                  "--experiment-name", "sched-exp", "--json")
    sched = json.loads(added.stdout)
    sid = sched["id"]
    assert sid.startswith("t") and sched["name"] == "nightly"
    assert sched["cron"] == "0 3 * * *" and sched["timezone"] == "Europe/Zurich"
    assert (sched["overlap"], sched["catch_up"], sched["catch_up_limit"]) == ("allow", "all", 3)
    assert sched["max_runs"] == 30 and sched["code"] == "fresh" and sched["status"] == "active"
    assert sched["parameters"] == {"steps": "1", "label": "sched"}
    assert len(sched["next_times"]) == 5
    assert all(datetime.fromtimestamp(t, timezone.utc).hour in (1, 2)  # 03:00 in Zurich
               for t in sched["next_times"])

    listing = hpcml("schedule", "list").stdout.splitlines()
    assert listing[0].split()[:3] == ["ID", "NAME", "STATE"] and len(listing) == 2
    assert listing[1].startswith(sid) and "nightly" in listing[1] and "active" in listing[1]
    assert "0 3 * * * Europe/Zurich" in listing[1]
    assert [s["id"] for s in json.loads(hpcml("schedule", "list", "--json").stdout)] == [sid]

    text = hpcml("schedule", "show", "nightly").stdout  # by name
    assert f"id: {sid}" in text and "overlap: allow" in text and "max runs 30" in text
    assert text.count("Europe/Zurich)") == 5  # the next five times, in its zone too

    assert "paused" in hpcml("schedule", "pause", sid[:6]).stderr  # by prefix
    paused = show(sid)
    assert paused["status"] == "paused" and paused["next_times"] == []
    assert "paused" in hpcml("schedule", "list").stdout.splitlines()[1]
    resumed = json.loads(hpcml("schedule", "resume", sid, "--json").stdout)
    assert resumed["status"] == "active" and len(resumed["next_times"]) == 5

    run_id = hpcml("schedule", "run-now", sid).stdout.strip()
    run = ended_run(run_id)
    assert run["state"] == "FINISHED", run
    assert run["schedule_id"] == sid and run["scheduled_at"] is not None
    assert run["name"] == "n1" and run["parameters"]["label"] == "sched"
    assert run["mlflow_experiment_name"] == "sched-exp"
    assert f"schedule: {sid}" in hpcml("show", run_id).stdout
    firing = show(sid)["firings"][0]
    assert (firing["run_id"], firing["manual"], firing["state"]) == (run_id, True, "submitted")
    assert firing["run_state"] == "FINISHED"
    assert f"{run_id}  FINISHED" in hpcml("schedule", "show", sid).stdout  # its history

    other = hpcml("submit", str(project), "-P", "steps=1").stdout.strip()
    by_schedule = hpcml("runs", "--schedule", "nightly").stdout
    assert run_id in by_schedule and other not in by_schedule
    assert other in hpcml("runs").stdout

    # rm asks first: no answer keeps it; -y deletes it, its run stays.
    kept = subprocess.run([sys.executable, "-m", "jupyterlab_hpcml.cli", "schedule", "rm",
                           sid], input="n\n", capture_output=True, text=True, timeout=60)
    assert kept.returncode == 1 and "not deleted" in kept.stderr
    assert show(sid)["id"] == sid
    hpcml("schedule", "rm", "-y", sid)
    assert hpcml("schedule", "list", "--json").stdout.strip() == "[]"
    gone = hpcml("schedule", "show", sid, check=False)
    assert gone.returncode != 0 and "no schedule" in gone.stderr
    assert json.loads(hpcml("show", run_id, "--json").stdout)["schedule_id"] == sid


@pytest.mark.parametrize(("flags", "named"), [
    (["--cron", "61 * * * *"], "invalid cron expression '61 * * * *'"),
    (["--cron", "* * *"], "five fields"),
    (["--cron", "@daily", "--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
    (["--at", "2020-01-01T00:00", "--tz", "UTC"], "has passed"),
    (["--at", "tomorrow"], "invalid time 'tomorrow'"),
    (["--cron", "@daily", "-e", "nope"], "nope"),
])
def test_bad_input_names_the_problem_and_creates_nothing(project: Path, hpcml_data: Path,
                                                        flags: list[str], named: str) -> None:
    proc = hpcml("schedule", "add", str(project), *flags, check=False)
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr and "Traceback" not in proc.stderr
    assert hpcml("schedule", "list", "--json").stdout.strip() == "[]"


def test_cron_and_at_exclude_each_other(project: Path, hpcml_data: Path) -> None:
    proc = hpcml("schedule", "add", str(project), "--cron", "@daily", "--at",
                 "2099-01-01T00:00", check=False)
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr


def _group_members(pgid: int) -> list[int]:
    """Processes still in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


class StderrLines:
    """A process's stderr lines as they come, read by a thread (a read never blocks a test)."""

    def __init__(self, proc: subprocess.Popen[str]):
        assert proc.stderr is not None
        self.stream = proc.stderr
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.stream:
            self.lines.append(line)

    def wait_for(self, text: str) -> str:
        """The first line containing ``text``; fails when the process ends without it or
        after ``WAIT`` seconds."""
        deadline = time.monotonic() + WAIT
        while True:
            found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            if not self.reader.is_alive() or time.monotonic() > deadline:
                raise AssertionError(f"no line with {text!r} in:\n{''.join(self.lines)}")
            time.sleep(0.1)


async def _add_once(data: Path, project: Path, at: str) -> str:
    engine = Engine(data_dir=data)
    try:
        view = await engine.create_schedule(ScheduleRequest(
            project=str(project), parameters={"steps": 1}, at=at, name="once"))
        return view.id
    finally:
        await engine.close()


def test_scheduler_fires_a_one_off_then_stops_on_sigterm(project: Path,
                                                         hpcml_data: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HPCML_DATA_DIR"}
    scheduler = subprocess.Popen(  # --data-dir after the sub-command; its own group
        [sys.executable, "-m", "jupyterlab_hpcml.cli", "scheduler", "--data-dir",
         str(hpcml_data)], stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    lines = StderrLines(scheduler)
    try:
        assert lines.wait_for("hpcml scheduler:").startswith(
            f"hpcml scheduler: firing schedules of {hpcml_data} (pid {scheduler.pid})")
        # Added by another process while it runs (`schedule add` is tested above; a new
        # process of it would need the time set far ahead on a loaded machine).
        at = (datetime.now(timezone.utc) + timedelta(seconds=5)).isoformat(timespec="seconds")
        sid = asyncio.run(_add_once(hpcml_data, project, at))
        fired = lines.wait_for("fired for")  # the log line of its firing
        assert f"schedule {sid} fired for" in fired and "submitted" in fired
        sched = show(sid)
        assert sched["status"] == "ended" and sched["runs"] == 1
        (firing,) = sched["firings"]
        assert firing["manual"] is False and firing["state"] == "submitted"
        run = ended_run(firing["run_id"])
        assert run["state"] == "FINISHED" and run["schedule_id"] == sid
        assert run["scheduled_at"] == pytest.approx(datetime.fromisoformat(at).timestamp())
    finally:
        scheduler.send_signal(signal.SIGTERM)
        code = scheduler.wait(timeout=60)
    lines.reader.join(timeout=60)
    rest = "".join(lines.lines)
    assert code == 0, rest
    assert "hpcml scheduler: stopped" in rest and "Traceback" not in rest
    assert _group_members(scheduler.pid) == []
