"""Schedules through the REST API on the real server (which fires schedules while it runs):
create (cron and one-off), list, get with firings, preview, pause/resume, run now and its
run in the runs tab's rows, delete; bad input is a 400 naming each bad value."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tornado.httpclient import HTTPClientError

from .conftest import TERMINAL, submit_run, wait_for_state

DAILY = {"project": "toy", "entry_point": "fail", "parameters": {"code": 0},
         "cron": "30 2 * * *", "timezone": "Europe/Zurich", "name": "nightly",
         "run_name": "{schedule}-{n}"}


async def wait_fired(api: Any, schedule_id: str, timeout: float = 30) -> dict[str, Any]:
    """The schedule once it has a firing that is no longer pending (its run submitted, or
    the firing skipped or failed)."""
    deadline = time.monotonic() + timeout
    while True:
        code, sched = await api("GET", f"schedules/{schedule_id}")
        assert code == 200, sched
        if sched["firings"] and sched["firings"][0]["state"] != "pending":
            return sched
        assert time.monotonic() < deadline, sched
        await asyncio.sleep(0.2)


def zurich(t: float) -> str:
    return datetime.fromtimestamp(t, ZoneInfo("Europe/Zurich")).strftime("%H:%M")


async def test_cron_schedule_lifecycle(api, toy_project, hpcml_data):
    status, sched = await api("POST", "schedules", DAILY)
    assert status == 201, sched
    assert sched["id"].startswith("t") and sched["status"] == "active"
    assert sched["project_relpath"] == "toy" and "root" not in sched
    assert (sched["cron"], sched["name"], sched["overlap"], sched["code"]) == (
        "30 2 * * *", "nightly", "skip", "fresh")
    assert [zurich(t) for t in sched["next_times"]] == ["02:30"] * 5
    assert sched["firings"] == [] and sched["runs"] == 0

    status, listed = await api("GET", "schedules")
    assert status == 200 and [s["id"] for s in listed["schedules"]] == [sched["id"]]

    # Run now: a run of its own, in the runs tab's rows filtered by the schedule only.
    other = await submit_run(api, entry_point="fail", parameters={"code": 0})
    status, firing = await api("POST", f"schedules/{sched['id']}/run")
    assert status == 201, firing
    assert (firing["schedule_id"], firing["manual"], firing["state"]) == (
        sched["id"], True, "submitted")
    run = await wait_for_state(api, firing["run_id"], TERMINAL)
    assert (run["state"], run["schedule_id"], run["name"]) == (
        "FINISHED", sched["id"], "nightly-1")
    status, page = await api("GET", "runs-view/rows", schedule=sched["id"])
    assert status == 200 and page["total"] == 1, page
    assert [(r["id"], r["schedule_id"]) for r in page["rows"]] == [(run["id"], sched["id"])]
    status, page = await api("GET", "runs-view/rows")
    assert {r["id"] for r in page["rows"]} == {run["id"], other["id"]}

    # A second run now: the schedule shows both firings newest first, the listing the latest.
    status, again = await api("POST", f"schedules/{sched['id']}/run")
    assert status == 201, again
    await wait_for_state(api, again["run_id"], TERMINAL)
    status, got = await api("GET", f"schedules/{sched['id']}")
    assert status == 200 and got["runs"] == 2
    assert [(f["run_id"], f["run_state"]) for f in got["firings"]] == [
        (again["run_id"], "FINISHED"), (firing["run_id"], "FINISHED")]
    status, listed = await api("GET", "schedules")
    assert [f["run_id"] for f in listed["schedules"][0]["firings"]] == [again["run_id"]]
    assert got["status"] == "active" and got["fired"] == 0  # run now is not a scheduled firing

    status, paused = await api("POST", f"schedules/{sched['id']}/pause")
    assert status == 200 and paused["status"] == "paused" and paused["next_times"] == []
    status, resumed = await api("POST", f"schedules/{sched['id']}/resume")
    assert status == 200 and resumed["status"] == "active" and len(resumed["next_times"]) == 5

    status, deleted = await api("DELETE", f"schedules/{sched['id']}")
    assert (status, deleted) == (200, {"id": sched["id"], "deleted": True})
    for method, path in [("GET", ""), ("DELETE", ""), ("POST", "/pause"), ("POST", "/resume"),
                         ("POST", "/run")]:
        status, err = await api(method, f"schedules/{sched['id']}{path}")
        assert status == 404, (method, path, err)
    status, _ = await api("GET", f"runs/{run['id']}")  # the runs it created stay
    assert status == 200
    status, listed = await api("GET", "schedules")
    assert listed["schedules"] == []


async def test_one_off_fires_by_itself_then_has_ended(api, toy_project, hpcml_data):
    """A one-off 2 s ahead is fired by the server's loop; then it has ended: pause and
    resume are 409, run now still works. max_runs=1 is not ended by a run now."""
    at = (datetime.now(timezone.utc) + timedelta(seconds=3)).replace(microsecond=0)
    status, once = await api("POST", "schedules", {
        "project": "toy", "entry_point": "fail", "parameters": {"code": 0},
        "at": at.isoformat(), "timezone": "UTC"})
    assert status == 201, once
    assert once["cron"] is None and once["next_times"] == [at.timestamp()]
    assert once["name"] == "toy-fail"

    capped = {**DAILY, "name": "capped", "max_runs": 1}
    status, capped = await api("POST", "schedules", capped)
    assert status == 201, capped
    status, firing = await api("POST", f"schedules/{capped['id']}/run")
    assert status == 201 and firing["state"] == "submitted", firing
    status, capped = await api("POST", f"schedules/{capped['id']}/pause")
    assert status == 200 and capped["status"] == "paused"

    ended = await wait_fired(api, once["id"])
    assert ended["status"] == "ended" and ended["ended"] and ended["next_times"] == []
    assert ended["fired"] == 1
    [fired] = ended["firings"]
    assert (fired["scheduled_at"], fired["manual"], fired["state"]) == (
        at.timestamp(), False, "submitted")
    run = await wait_for_state(api, fired["run_id"], TERMINAL)
    assert run["state"] == "FINISHED" and run["scheduled_at"] == at.timestamp()
    for action in ("pause", "resume"):
        status, err = await api("POST", f"schedules/{once['id']}/{action}")
        assert status == 409 and "has ended" in err["message"], err
    status, firing = await api("POST", f"schedules/{once['id']}/run")
    assert status == 201 and firing["manual"], firing
    await wait_for_state(api, firing["run_id"], TERMINAL)
    await wait_for_state(api, capped["firings"][0]["run_id"], TERMINAL)


async def test_preview(api, toy_project, hpcml_data):
    status, preview = await api("POST", "schedules/preview",
                                {"cron": "@daily", "timezone": "Europe/Zurich"})
    assert status == 200, preview
    assert preview["cron"] == "0 0 * * *" and preview["timezone"] == "Europe/Zurich"
    times = preview["next_times"]
    assert len(times) == 5 and times == sorted(times) and times[0] > time.time()
    assert {zurich(t) for t in times} == {"00:00"}

    at = (datetime.now(timezone.utc) + timedelta(days=1)).replace(microsecond=0)
    status, preview = await api("POST", "schedules/preview", {"at": at.isoformat()})
    assert status == 200 and preview["cron"] is None and preview["next_times"] == [
        at.timestamp()], preview

    for body, key, words in [
        ({"cron": "61 * * * *", "timezone": "UTC"}, "cron", "invalid cron expression"),
        ({"cron": "* * * *"}, "cron", "five fields"),
        ({"cron": "@daily", "timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"at": "next tuesday", "timezone": "UTC"}, "at", "invalid time"),
        ({"at": "2001-01-01T00:00", "timezone": "UTC"}, "at", "has passed"),
        ({}, "cron", "either a cron expression or one time"),
        ({"cron": "@daily", "at": at.isoformat()}, "cron", "either a cron expression"),
        ({"cron": 5}, "cron", ""),
        ({"cron": "@daily", "every": "day"}, "every", ""),
    ]:
        status, err = await api("POST", "schedules/preview", body)
        assert status == 400, (body, err)
        assert [p["key"] for p in err["problems"]] == [key], (body, err)
        assert words in err["message"], (body, err)
    status, listed = await api("GET", "schedules")
    assert listed["schedules"] == []  # previews create nothing


async def test_bad_schedules_are_400_and_create_nothing(api, toy_project, hpcml_data):
    for body, keys in [
        ({**DAILY, "project": "../outside"}, {"path"}),
        ({**DAILY, "cron": "0 25 * * *", "timezone": "Nowhere/City"}, {"timezone"}),
        ({**DAILY, "cron": "0 25 * * *"}, {"cron"}),
        ({**DAILY, "run_name": "{schedule}-{nope}"}, {"run_name"}),
        ({**DAILY, "end": "2001-01-01T00:00"}, {"end"}),
        ({**DAILY, "overlap": "sometimes", "catch_up": "never"}, {"overlap", "catch_up"}),
        ({**DAILY, "max_runs": 0}, {"max_runs"}),
    ]:
        status, err = await api("POST", "schedules", body)
        assert status == 400, (body, err)
        assert {p["key"] for p in err["problems"]} == keys, (body, err)
    status, err = await api("POST", "schedules", {**DAILY, "entry_point": "nope"})
    assert status == 400 and "unknown entry point" in err["message"], err
    status, err = await api("POST", "schedules", {**DAILY, "parameters": {"code": "x"}})
    assert status == 400, err
    status, err = await api("POST", "schedules", {**DAILY, "project": "missing"})
    assert status in (400, 404), err
    status, listed = await api("GET", "schedules")
    assert listed["schedules"] == []
    status, err = await api("GET", "schedules/t0000000000")
    assert status == 404 and err["message"], err
    status, page = await api("GET", "runs-view/rows", schedule="t0000000000")
    assert status == 200 and page["rows"] == [] and page["total"] == 0


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "schedules"), ("POST", "schedules"), ("POST", "schedules/preview"),
    ("GET", "schedules/t0000000000"), ("DELETE", "schedules/t0000000000"),
    ("POST", "schedules/t0000000000/pause"), ("POST", "schedules/t0000000000/resume"),
    ("POST", "schedules/t0000000000/run"),
])
async def test_unauthenticated_requests_are_rejected(jp_fetch, method, path):
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("hpcml", "api", *path.split("/"), method=method,
                       body="{}" if method == "POST" else None, headers={"Authorization": ""})
    assert exc.value.code == 403
