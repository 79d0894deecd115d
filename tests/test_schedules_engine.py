"""Schedules in the engine, with an injectable clock (no sleeping for minutes): firing times
across DST in Europe/Zurich, overlap, catch-up policies, pause/resume, one-off, end and
max runs, bad input, a vanished project, pinned code. Real runs of the toy project on the
local backend; the clock is only the scheduler's notion of "now"."""
from __future__ import annotations

import asyncio
import os
import shutil
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from mlflow.tracking import MlflowClient

from jupyterlab_hpcml.core.errors import Conflict, NotFound, UserInputError
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.requests import ScheduleRequest, When
from jupyterlab_hpcml.engine.schedules import plan_due
from jupyterlab_hpcml.engine.service import Engine

from .conftest import TOY_PROJECT

ZURICH = ZoneInfo("Europe/Zurich")


def zurich(*args: int) -> float:
    return datetime(*args, tzinfo=ZURICH).timestamp()


def local(t: float) -> str:
    return datetime.fromtimestamp(t, ZURICH).strftime("%m-%d %H:%M%z")


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "toy"
    shutil.copytree(TOY_PROJECT, dest)
    return dest


@pytest.fixture
def engine(hpcml_data: Path) -> Engine:
    return Engine(data_dir=hpcml_data, poll_interval=0.2)


def clocked(engine: Engine, now: float) -> Clock:
    clock = Clock(now)
    engine.schedules.clock = clock
    return clock


def request(project: Path, **kw: object) -> ScheduleRequest:
    return ScheduleRequest(project=str(project), entry_point="fail",
                           parameters={"code": 0}, **kw)


async def fire_at(engine: Engine, clock: Clock, t: float) -> list:
    clock.now = t
    return await engine.schedules.tick()


async def test_daily_across_both_dst_changes_in_zurich(engine: Engine, project: Path) -> None:
    """02:30 daily: on the spring-forward day 02:30 does not exist and it fires at 03:00;
    on the fall-back day 02:30 exists twice and it fires once."""
    clock = clocked(engine, zurich(2026, 3, 27, 12))
    view = await engine.create_schedule(request(project, cron="30 2 * * *",
                                                timezone="Europe/Zurich"))
    assert [local(t) for t in view.next_times[:3]] == [
        "03-28 02:30+0100", "03-29 03:00+0200", "03-30 02:30+0200"]
    fired = []
    t = clock.now
    while t < zurich(2026, 3, 31, 12):  # hour by hour, as a server would wake
        t += 900
        fired += [local(f.scheduled_at) for f in await fire_at(engine, clock, t)]
    assert fired == ["03-28 02:30+0100", "03-29 03:00+0200", "03-30 02:30+0200",
                     "03-31 02:30+0200"]

    view = await engine.create_schedule(request(project, cron="30 2 * * *",
                                                timezone="Europe/Zurich", name="autumn",
                                                overlap="allow"))
    clock.now = zurich(2026, 10, 24, 12)
    await engine.resume_schedule(view.id)  # not paused: nothing changes
    await engine.pause_schedule(view.id)
    await engine.resume_schedule(view.id)  # from now on
    fired = []
    t = clock.now
    while t < zurich(2026, 10, 26, 12):
        t += 600
        fired += [(f.schedule_id, local(f.scheduled_at)) for f in await fire_at(engine, clock, t)]
    assert [x for s, x in fired if s == view.id] == [
        "10-25 02:30+0200", "10-26 02:30+0100"]


def test_every_half_hour_goes_by_real_time_across_dst() -> None:
    """A */30 schedule fires every 30 real minutes: the repeated hour is two real hours."""
    from jupyterlab_hpcml.engine.models import ScheduleRecord

    start = zurich(2026, 10, 25, 1, 50)
    sched = ScheduleRecord(id="t0", name="x", project_path="/p", project_name="p",
                           entry_point="main", backend="local", run_name="r",
                           cron="*/30 * * * *", timezone="Europe/Zurich", next_at=start,
                           overlap="allow", catch_up="all", catch_up_limit=100)
    firings, fields = plan_due(sched, start + 3 * 3600)
    gaps = {b.scheduled_at - a.scheduled_at for a, b in zip(firings, firings[1:], strict=False)}
    assert len(firings) == 6 and gaps == {1800.0}
    assert local(firings[0].scheduled_at) == "10-25 02:00+0200"
    assert local(firings[2].scheduled_at) == "10-25 02:00+0100"
    assert fields["next_at"] == firings[-1].scheduled_at + 1800


async def wait_ended(engine: Engine, run_id: str, timeout: float = 60) -> RunState:
    deadline = time.monotonic() + timeout
    while True:
        run = await engine.current(run_id)
        if run.state.terminal or time.monotonic() > deadline:
            return run.state
        await asyncio.sleep(0.2)


async def test_runs_carry_the_schedule_and_overlap_skip_with_a_long_run(
        engine: Engine, project: Path) -> None:
    start = zurich(2026, 6, 1, 9, 0, 30)
    clock = clocked(engine, start)
    sched = await engine.create_schedule(ScheduleRequest(
        project=str(project), entry_point="sleep", parameters={"seconds": 60},
        cron="* * * * *", timezone="Europe/Zurich", name="long", run_name="{schedule}-{n}"))
    first = (await fire_at(engine, clock, start + 30))[0]
    assert first.state == "submitted" and first.scheduled_at == zurich(2026, 6, 1, 9, 1)
    run = await engine.get(first.run_id)
    assert (run.schedule_id, run.scheduled_at, run.name) == (sched.id, first.scheduled_at,
                                                             "long-1")
    tags = MlflowClient(engine.tracking_uri).get_run(run.mlflow_run_id).data.tags
    assert tags["hpcml.schedule_id"] == sched.id
    second = (await fire_at(engine, clock, start + 90))[0]
    assert second.state == "skipped" and first.run_id in (second.message or "")
    page = await engine.rows(schedule=sched.id)
    assert [r["id"] for r in page["rows"]] == [first.run_id]
    # run now ignores the overlap policy: the user asked for it
    now_firing = await engine.run_schedule_now(sched.id)
    assert now_firing.state == "submitted" and now_firing.manual
    view = await engine.get_schedule("long")
    assert [f.state for f in view.firings] == ["submitted", "skipped", "submitted"]
    assert view.runs == 2
    await engine.runs.cancel(first.run_id)
    await engine.runs.cancel(now_firing.run_id)
    assert await wait_ended(engine, first.run_id) == RunState.CANCELLED
    assert await wait_ended(engine, now_firing.run_id) == RunState.CANCELLED
    third = (await fire_at(engine, clock, start + 150))[0]
    assert third.state == "submitted"
    await engine.runs.cancel(third.run_id)


async def test_cancel_previous(engine: Engine, project: Path) -> None:
    start = zurich(2026, 6, 1, 9, 0, 30)
    clock = clocked(engine, start)
    await engine.create_schedule(ScheduleRequest(
        project=str(project), entry_point="sleep", parameters={"seconds": 60},
        cron="* * * * *", timezone="UTC", overlap="cancel-previous"))
    first = (await fire_at(engine, clock, start + 30))[0]
    second = (await fire_at(engine, clock, start + 90))[0]
    assert second.state == "submitted"
    assert await wait_ended(engine, first.run_id) == RunState.CANCELLED
    await engine.runs.cancel(second.run_id)


@pytest.mark.parametrize(("policy", "expected"), [
    ("latest", ["12:00"]),
    ("none", []),
    ("all", ["09:00", "10:00", "11:00", "12:00"]),
])
async def test_catch_up_after_a_gap(engine: Engine, project: Path, policy: str,
                                    expected: list[str]) -> None:
    """Down from 08:30 to 12:10: the hourly times 09:00..12:00 were missed."""
    clock = clocked(engine, zurich(2026, 6, 1, 8, 30))
    sched = await engine.create_schedule(request(
        project, cron="@hourly", timezone="Europe/Zurich", catch_up=policy,
        catch_up_limit=4, overlap="allow"))
    fired = await fire_at(engine, clock, zurich(2026, 6, 1, 12, 10))
    hm = [datetime.fromtimestamp(f.scheduled_at, ZURICH).strftime("%H:%M") for f in fired]
    assert hm == expected
    assert {f.state for f in fired} <= {"submitted"}
    view = await engine.get_schedule(sched.id)
    assert view.missed == 4 - len(expected)
    assert local(view.next_times[0]) == "06-01 13:00+0200"
    # On time (within two minutes) fires under every policy.
    fired = await fire_at(engine, clock, zurich(2026, 6, 1, 13, 1))
    assert len(fired) == 1


async def test_catch_up_all_is_limited(engine: Engine, project: Path) -> None:
    clock = clocked(engine, zurich(2026, 6, 1, 8, 30))
    await engine.create_schedule(request(project, cron="@hourly", timezone="UTC",
                                         catch_up="all", catch_up_limit=2, overlap="allow"))
    fired = await fire_at(engine, clock, zurich(2026, 6, 1, 14, 30))
    assert [f.scheduled_at for f in fired] == [zurich(2026, 6, 1, 13), zurich(2026, 6, 1, 14)]


async def test_pause_resume_one_off_end_and_max(engine: Engine, project: Path) -> None:
    clock = clocked(engine, zurich(2026, 6, 1, 8, 30))
    sched = await engine.create_schedule(request(project, cron="@hourly", timezone="UTC",
                                                 overlap="allow", max_runs=2))
    paused = await engine.pause_schedule(sched.id)
    assert paused.status == "paused" and paused.next_times == []
    assert await fire_at(engine, clock, zurich(2026, 6, 1, 10, 30)) == []
    resumed = await engine.resume_schedule(sched.id)
    assert resumed.status == "active" and local(resumed.next_times[0]) == "06-01 11:00+0200"
    assert len(resumed.next_times) == 2  # max runs 2
    assert len(await fire_at(engine, clock, zurich(2026, 6, 1, 11, 0, 5))) == 1
    assert len(await fire_at(engine, clock, zurich(2026, 6, 1, 12, 0, 5))) == 1
    ended = await engine.get_schedule(sched.id)
    assert ended.status == "ended" and "max runs 2" in (ended.ended or "")
    assert await fire_at(engine, clock, zurich(2026, 6, 1, 13, 0, 5)) == []
    with pytest.raises(Conflict):
        await engine.resume_schedule(sched.id)

    once = await engine.create_schedule(request(project, at="2026-06-01T15:00",
                                                timezone="Europe/Zurich"))
    assert [local(t) for t in once.next_times] == ["06-01 15:00+0200"]
    assert await fire_at(engine, clock, zurich(2026, 6, 1, 14, 59)) == []
    fired = await fire_at(engine, clock, zurich(2026, 6, 1, 15, 0, 1))
    assert [f.schedule_id for f in fired] == [once.id]
    assert (await engine.get_schedule(once.id)).status == "ended"

    until = await engine.create_schedule(request(project, cron="0 16-20 * * *",
                                                 timezone="Europe/Zurich",
                                                 end="2026-06-01T17:30", overlap="allow"))
    assert [local(t) for t in until.next_times] == ["06-01 16:00+0200", "06-01 17:00+0200"]
    fired = await fire_at(engine, clock, zurich(2026, 6, 1, 18, 0, 1))
    assert [local(f.scheduled_at) for f in fired] == ["06-01 17:00+0200"]
    assert (await engine.get_schedule(until.id)).status == "ended"


async def test_bad_input_names_each_problem(engine: Engine, project: Path) -> None:
    clocked(engine, zurich(2026, 6, 1, 8, 30))
    with pytest.raises(UserInputError) as err:
        await engine.create_schedule(request(project, cron="61 * * * *", timezone="Mars/Olympus",
                                             run_name="{nope}"))
    keys = {p.key for p in err.value.problems}
    assert keys == {"timezone", "run_name"}
    for template in ("{n:>999999999}", "{schedule:.99999999}", "{n:>{schedule}}"):
        with pytest.raises(UserInputError, match="width or precision above 999") as err:
            await engine.create_schedule(request(project, cron="@daily", timezone="UTC",
                                                 name="999999999", run_name=template))
        assert [p.key for p in err.value.problems] == ["run_name"]
    assert (await engine.create_schedule(request(
        project, cron="@daily", timezone="UTC", run_name="{schedule}-{n:>04}-{time:%H%M}"))
    ).run_name == "{schedule}-{n:>04}-{time:%H%M}"
    await engine.delete_schedule((await engine.list_schedules())[0].id)
    with pytest.raises(UserInputError, match="cron"):
        await engine.create_schedule(request(project, cron="61 * * * *", timezone="UTC"))
    with pytest.raises(UserInputError, match="five fields"):
        await engine.create_schedule(request(project, cron="* * * *", timezone="UTC"))
    with pytest.raises(UserInputError, match="either a cron expression or one time"):
        await engine.create_schedule(request(project, timezone="UTC"))
    with pytest.raises(UserInputError, match="has passed"):
        await engine.create_schedule(request(project, at="2026-06-01T06:00", timezone="UTC"))
    with pytest.raises(UserInputError, match="unknown entry point"):
        await engine.create_schedule(ScheduleRequest(project=str(project), entry_point="nope",
                                                     cron="@daily"))
    with pytest.raises(UserInputError):
        await engine.create_schedule(ScheduleRequest(project=str(project), entry_point="fail",
                                                     parameters={"code": "x"}, cron="@daily"))
    assert await engine.list_schedules() == []
    with pytest.raises(NotFound):
        await engine.get_schedule("t0000000")
    preview = await engine.preview_schedule(When(cron="@weekly", timezone="Europe/Zurich"))
    assert preview.cron == "0 0 * * 0" and len(preview.next_times) == 5


async def test_vanished_project_fails_the_firing_and_the_schedule_goes_on(
        engine: Engine, project: Path, tmp_path: Path) -> None:
    clock = clocked(engine, zurich(2026, 6, 1, 8, 30))
    sched = await engine.create_schedule(request(project, cron="@hourly", overlap="allow",
                                                 timezone="UTC"))
    hidden = tmp_path / "hidden"
    project.rename(hidden)
    failed = (await fire_at(engine, clock, zurich(2026, 6, 1, 9, 0, 1)))[0]
    assert failed.state == "failed" and "no such file" in (failed.message or "")
    hidden.rename(project)
    ok = (await fire_at(engine, clock, zurich(2026, 6, 1, 10, 0, 1)))[0]
    assert ok.state == "submitted"
    view = await engine.get_schedule(sched.id)
    assert [f.state for f in view.firings] == ["submitted", "failed"]
    assert view.firings[1].message == failed.message


async def test_pinned_code_runs_the_snapshot_of_creation(engine: Engine, project: Path) -> None:
    clock = clocked(engine, zurich(2026, 6, 1, 8, 30))
    dump = "python dump_args.py {value}"
    pinned = await engine.create_schedule(ScheduleRequest(
        project=str(project), entry_point="args", parameters={"value": "x"},
        cron="@hourly", timezone="UTC", code="pinned", name="pinned"))
    fresh = await engine.create_schedule(ScheduleRequest(
        project=str(project), entry_point="args", parameters={"value": "x"},
        cron="@hourly", timezone="UTC", name="fresh"))
    assert pinned.snapshot_id and pinned.code_identity and fresh.snapshot_id is None
    (project / "dump_args.py").write_text("print('edited')\n")
    assert dump in (project / "MLproject").read_text()
    fired = {f.schedule_id: f for f in await fire_at(engine, clock, zurich(2026, 6, 1, 9, 0, 1))}
    runs = {k: await engine.get(f.run_id) for k, f in fired.items()}
    assert runs[pinned.id].snapshot_id == pinned.snapshot_id
    assert runs[fresh.id].snapshot_id != pinned.snapshot_id
    assert runs[pinned.id].code == pinned.code_identity


async def test_pinned_snapshot_outlives_its_runs_and_goes_with_the_schedule(
        engine: Engine, project: Path) -> None:
    clock = clocked(engine, zurich(2026, 6, 1, 8, 30))
    sched = await engine.create_schedule(request(project, cron="@hourly", timezone="UTC",
                                                 code="pinned"))
    manifest = engine.runs.manifest_dir / f"{sched.snapshot_id}.json"
    assert manifest.exists()
    fired = (await fire_at(engine, clock, zurich(2026, 6, 1, 9, 0, 1)))[0]
    assert await wait_ended(engine, fired.run_id) == RunState.FINISHED
    old = time.time() - 86400  # past the grace a fresh manifest gets (a submission's)
    os.utime(manifest, (old, old))
    result = await engine.runs.delete(fired.run_id)
    assert not result.snapshot_removed and manifest.exists()
    again = (await fire_at(engine, clock, zurich(2026, 6, 1, 10, 0, 1)))[0]
    assert again.state == "submitted"
    assert await wait_ended(engine, again.run_id) == RunState.FINISHED
    await engine.runs.delete(again.run_id)
    os.utime(manifest, (old, old))
    await engine.delete_schedule(sched.id)
    assert not manifest.exists()
    with pytest.raises(NotFound):
        await engine.get_schedule(sched.id)


def dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def claim_by(engine: Engine, pid: int) -> None:
    """What a process killed during a firing leaves: its claim on a pending firing."""
    with engine.store.write() as conn:
        conn.execute("UPDATE firings SET claimed_host = ?, claimed_pid = ?, claimed_at = ?"
                     " WHERE state = 'pending'",
                     (__import__("socket").gethostname(), pid, time.time()))


async def test_a_firing_interrupted_before_its_run_existed_is_completed(
        engine: Engine, project: Path) -> None:
    from jupyterlab_hpcml.engine.schedules import plan_due

    clock = clocked(engine, zurich(2026, 6, 1, 8, 30))
    sched = await engine.create_schedule(request(project, cron="@hourly", timezone="UTC"))
    clock.now = zurich(2026, 6, 1, 9, 0, 1)
    # The cursor moved and the firing is recorded, then its process died.
    taken = engine.schedules.store.take_due(clock.now, plan_due)
    claim_by(engine, dead_pid())
    # A live claim is left alone; a dead one is taken over.
    assert [f.state for f in await engine.schedules.tick()] == ["submitted"]
    view = await engine.get_schedule(sched.id)
    assert [(f.run_id, f.state) for f in view.firings] == [(taken[0].run_id, "submitted")]
    assert await wait_ended(engine, taken[0].run_id) == RunState.FINISHED
    assert await engine.schedules.tick() == []


async def test_a_scheduled_run_interrupted_before_its_job_started_is_submitted_again(
        engine: Engine, project: Path) -> None:
    """The process died after the run's record existed, before the job started: the
    firing is completed (no second run) and any poller submits the run itself again."""
    from jupyterlab_hpcml.engine.runs import RESUBMITTED
    from jupyterlab_hpcml.engine.schedules import plan_due

    clock = clocked(engine, zurich(2026, 6, 1, 8, 30))
    sched = await engine.create_schedule(request(project, cron="@hourly", timezone="UTC"))
    clock.now = zurich(2026, 6, 1, 9, 0, 1)
    firing = engine.schedules.store.take_due(clock.now, plan_due)[0]
    # The record as a submitter leaves it before its MLflow run and job: SUBMITTING.
    plan, req = await engine.runs.plan(request(project))
    command, params = await engine.runs.resolve(plan, "fail", {"code": 0}, firing.run_id)
    await engine.runs.take_code(plan)
    record = engine.runs.new_record(plan, req, firing.run_id, command, params,
                                    schedule_id=sched.id, scheduled_at=firing.scheduled_at)
    engine.store.insert(record.model_copy(update={"submitter_pid": dead_pid()}))
    claim_by(engine, dead_pid())
    assert [f.state for f in await engine.schedules.tick()] == ["submitted"]
    assert await wait_ended(engine, firing.run_id) == RunState.FINISHED
    run = await engine.get(firing.run_id)
    assert RESUBMITTED in [c.message for c in run.state_history]
    assert run.mlflow_run_id
    runs, total = await engine.list_runs(schedule=sched.id)
    assert total == 1
