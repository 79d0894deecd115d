"""Schedules fire exactly once with several real processes on one data dir.

A `jupyter server` with the extension and a `hpcml scheduler` (real processes, local
backend, real MLflow store) share a data dir and an every-minute schedule (overlap
``allow``: no firing may be skipped) for three minutes. Twice, the process that has just
claimed a firing is killed with SIGKILL in the middle of it: once before the firing's run
exists (it is restarted after the other process completed the firing), once after the run
exists but before the firing was marked done (restarted at once). Afterwards every minute
has exactly one firing and one run, which finished and whose program ran once; no firing
is left pending, MLflow has one run per minute, and no process is left over.

Who claims a firing, and when to kill, is read from the run store's own tables
(read-only); the processes race for every firing, nothing steers them.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
from mlflow.tracking import MlflowClient

from jupyterlab_hpcml.backends.local import _group_alive, _may_signal_group
from jupyterlab_hpcml.engine.requests import ScheduleRequest
from jupyterlab_hpcml.engine.service import Engine

from .conftest import TERMINAL
from .test_restart import Server, server_env  # noqa: F401 - fixture

MINUTES = 3  # a warm-up minute, then one kill each (KILLS)
# Minute index → where the kill aims: at the first sight of the claim (its run not yet
# created), or once the claimed firing's run exists.
KILLS = {1: "before-run", 2: "after-run"}
POLL = 0.005  # seconds between two looks at the store while a firing is due
FIRING_DEADLINE = 90.0  # a due firing is done by then (loops wake every 10 s; a first one is slow)
READY = "hpcml scheduler: firing schedules of"  # its first line, once its engine is open
MLPROJECT = """name: ticker
entry_points:
  main:
    parameters:
      marks: {type: string}
    command: "python mark.py {marks}"
"""
# Appends a line to <marks>/<run id>: how often the run's program ran.
MARK = """import os, sys
with open(os.path.join(sys.argv[1], os.environ["HPCML_RUN_ID"]), "a") as f:
    f.write("ran\\n")
"""


class Process(Protocol):
    proc: subprocess.Popen[bytes]

    def kill(self) -> None: ...

    def stop(self) -> None: ...


class Scheduler:
    """`hpcml scheduler` on the data dir, in its own process group."""

    def __init__(self, env: dict[str, str], log: Path):
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab_hpcml.cli", "scheduler",
             "--data-dir", env["HPCML_DATA_DIR"]],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready(log)

    def wait_ready(self, log: Path, timeout: float = 60) -> None:
        """Until it says it fires schedules (its engine is open)."""
        deadline = time.monotonic() + timeout
        while READY not in log.read_text():
            assert self.proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM stops it
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


class StoreView:
    """The run store's tables, read-only (WAL: reads never wait for the processes)."""

    def __init__(self, db: Path):
        self.conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
        self.conn.row_factory = sqlite3.Row

    def firings(self, sched_id: str) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT * FROM firings WHERE schedule_id = ? ORDER BY scheduled_at",
            (sched_id,)).fetchall()

    def firing(self, sched_id: str, at: float) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM firings WHERE schedule_id = ? AND scheduled_at = ?",
            (sched_id, at)).fetchone()
        return row

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT record FROM runs WHERE id = ?", (run_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def history(self, run_id: str) -> list[str]:
        return [f"{state}: {message}" if message else state for state, message in
                self.conn.execute("SELECT state, message FROM state_history WHERE run_id = ?"
                                  " ORDER BY seq", (run_id,))]

    def runs(self) -> list[dict[str, Any]]:
        return [json.loads(text) for (text,) in self.conn.execute("SELECT record FROM runs")]

    def schedule(self, sched_id: str) -> dict[str, Any]:
        (text,) = self.conn.execute("SELECT record FROM schedules WHERE id = ?",
                                    (sched_id,)).fetchone()
        record: dict[str, Any] = json.loads(text)
        return record


@dataclass
class Minute:
    """What the test saw of one firing."""

    at: float
    claimers: list[str] = field(default_factory=list)  # roles, in the order seen
    killed: str | None = None  # the role killed during it
    landed: str | None = None  # where the kill landed (the run's state at death)


@dataclass
class Cluster:
    """The processes on the data dir, by role; every pid each role ever had."""

    root: Path
    env: dict[str, str]
    logs: Path
    procs: dict[str, Process] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)  # pid → role
    starts: int = 0

    def start(self, role: str) -> None:
        self.starts += 1
        log = self.logs / f"{role}-{self.starts}.log"
        proc: Process = (Server(self.root, self.env, log) if role == "server"
                         else Scheduler(self.env, log))
        self.procs[role] = proc
        self.roles[proc.proc.pid] = role

    def kill(self, role: str) -> None:
        self.procs[role].kill()

    def shutdown(self) -> None:
        for proc in self.procs.values():
            try:
                proc.stop()
            finally:
                if proc.proc.poll() is None:
                    os.killpg(proc.proc.pid, signal.SIGKILL)
                    proc.proc.wait()


def create_schedule(data: Path, uri: str, root: Path, marks: Path) -> str:
    """An every-minute schedule of a project whose program marks each run and ends."""
    project = root / "ticker"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT)
    (project / "mark.py").write_text(MARK)
    marks.mkdir()

    async def create() -> str:
        engine = Engine(data_dir=data, tracking_uri=uri)
        try:
            view = await engine.create_schedule(ScheduleRequest(
                project=str(project), entry_point="main", parameters={"marks": str(marks)},
                cron="* * * * *", timezone="UTC", overlap="allow", max_runs=MINUTES,
                name="every-minute"), root=root)
            return view.id
        finally:
            await engine.close()
    return asyncio.run(create())


def landing(run: dict[str, Any] | None) -> str:
    if run is None:
        return "before its run existed"
    if run["state"] == "SUBMITTING" and not run.get("backend_job_id"):
        return "after its run existed, before its job started"
    return f"after its job was submitted ({run['state']})"


def watch(view: StoreView, cluster: Cluster, sched_id: str, minute: Minute,
          aim: str | None) -> None:
    """Follow one firing until it is done; with ``aim``, kill its claimer once (see KILLS)."""
    while time.time() < minute.at - 0.5:
        time.sleep(min(minute.at - 0.5 - time.time(), 1.0))
    deadline = minute.at + FIRING_DEADLINE
    while (row := view.firing(sched_id, minute.at)) is None or row["state"] == "pending":
        assert time.time() < deadline, f"firing {minute.at} still {dict(row or {})}"
        pid = row["claimed_pid"] if row is not None else None
        role = cluster.roles.get(pid) if pid else None
        if row is None or role is None:
            time.sleep(POLL)
            continue
        if not minute.claimers or minute.claimers[-1] != role:
            minute.claimers.append(role)
        live = cluster.procs[role].proc.pid == pid  # not a claim left by a killed process
        if aim and live and minute.killed is None and (
                aim == "before-run" or view.run(row["run_id"]) is not None):
            cluster.kill(role)
            minute.killed, minute.landed = role, landing(view.run(row["run_id"]))
            if aim == "after-run":
                cluster.start(role)  # restarted at once: it may finish the firing itself
        time.sleep(POLL)


def live_job_groups(data: Path) -> list[int]:
    """Process groups of local jobs still alive (killed, so that nothing outlives us)."""
    alive = []
    for job_file in data.glob("runs/*/.hpcml/job.json"):
        job = json.loads(job_file.read_text())
        pid, start_time = job.get("pid"), job.get("start_time")
        if pid and _may_signal_group(pid, start_time) and _group_alive(pid):
            alive.append(pid)
            os.killpg(pid, signal.SIGKILL)
    return alive


def wait_runs_ended(view: StoreView, sched_id: str, deadline: float) -> list[dict[str, Any]]:
    while True:
        runs = [r for r in view.runs() if r.get("schedule_id") == sched_id]
        if len(runs) >= MINUTES and all(r["state"] in TERMINAL for r in runs):
            return runs
        if time.time() > deadline:
            return runs
        time.sleep(0.2)


@pytest.fixture
def cluster(server_env: tuple[Path, dict[str, str]],  # noqa: F811
            tmp_path: Path) -> Iterator[Cluster]:
    root, env = server_env
    cluster = Cluster(root, env, tmp_path)
    try:
        yield cluster
    finally:
        try:
            cluster.shutdown()
        finally:
            leftover = live_job_groups(Path(env["HPCML_DATA_DIR"]))
    assert leftover == [], f"job process groups outlived the test: {leftover}"


@pytest.mark.timeout(420)
def test_every_minute_fires_exactly_once_across_processes_and_kill_9(cluster: Cluster) -> None:
    data = Path(cluster.env["HPCML_DATA_DIR"])
    uri = cluster.env["MLFLOW_TRACKING_URI"]
    began = time.monotonic()
    cluster.start("scheduler")
    cluster.start("server")  # returns once it answers
    marks = cluster.logs / "marks"
    sched_id = create_schedule(data, uri, cluster.root, marks)
    view = StoreView(data / "runs.sqlite")
    first = view.schedule(sched_id)["next_at"]  # the next whole minute
    assert first % 60 == 0 and 0 < first - time.time() <= 60
    minutes = [Minute(first + 60.0 * i) for i in range(MINUTES)]
    for i, minute in enumerate(minutes):
        watch(view, cluster, sched_id, minute, KILLS.get(i))
        if KILLS.get(i) == "before-run" and minute.killed:
            cluster.start(minute.killed)  # after the other process completed the firing
    runs = wait_runs_ended(view, sched_id, time.time() + 60)
    firings = [dict(r) for r in view.firings(sched_id)]
    server = cluster.procs["server"]
    assert isinstance(server, Server)
    status, listed = server.call("GET", "runs?limit=100")
    cluster.shutdown()

    summary = {
        "seconds": round(time.monotonic() - began, 1),
        "minutes": [{"claimers": m.claimers, "killed": m.killed, "landed": m.landed,
                     "final_claimer": cluster.roles.get(f["claimed_pid"]),
                     "submitter": cluster.roles.get(r["submitter_pid"]),
                     "run_history": view.history(r["id"])}
                    for m, f, r in zip(minutes, firings, sorted(
                        runs, key=lambda r: r["scheduled_at"]), strict=False)],
    }
    print(json.dumps(summary, indent=1))

    # Every minute of the window: exactly one firing, done, and exactly one run, finished.
    assert [f["scheduled_at"] for f in firings] == [m.at for m in minutes]
    assert [f["state"] for f in firings] == ["submitted"] * MINUTES, firings
    by_minute = sorted(runs, key=lambda r: r["scheduled_at"])
    assert [r["scheduled_at"] for r in by_minute] == [m.at for m in minutes], by_minute
    assert [r["id"] for r in by_minute] == [f["run_id"] for f in firings]
    assert [(r["state"], r["exit_code"]) for r in by_minute] == [("FINISHED", 0)] * MINUTES
    assert len(view.runs()) == MINUTES  # no other run in the store either
    ran = {p.name: p.read_text() for p in marks.iterdir()}
    assert ran == {r["id"]: "ran\n" for r in by_minute}, "each run's program ran once"
    assert view.schedule(sched_id)["ended"], "max runs reached: the schedule has ended"
    # The server shows the same runs.
    assert status == 200 and sorted(r["id"] for r in listed["runs"]) == sorted(
        r["id"] for r in by_minute)
    # MLflow: one run per minute, tagged with the schedule, finished.
    client = MlflowClient(uri)
    mlflow_runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`hpcml.schedule_id` = '{sched_id}'")
    assert sorted(r.data.tags["hpcml.run_id"] for r in mlflow_runs) == sorted(
        r["id"] for r in by_minute)
    assert {r.info.status for r in mlflow_runs} == {"FINISHED"}
    # The kills happened during firings, and both processes fired minutes.
    assert all(minutes[i].killed for i in KILLS), summary
    claimed: set[str | None] = {role for m in minutes for role in m.claimers}
    claimed |= {cluster.roles.get(f["claimed_pid"]) for f in firings}
    assert claimed == {"server", "scheduler"}, summary
