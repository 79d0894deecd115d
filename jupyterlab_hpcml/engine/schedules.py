"""Schedules: runs that start by themselves, at cron times or once, exactly once each.

A schedule is checked like a submission when it is created (project, entry point,
parameters, config, backend ready), then fires by itself: each *pass* (``tick``) records
the firings that are due and moves the schedule's cursor in one transaction
(``ScheduleStore.take_due``), then submits each firing's run like any other, with the run
id the firing chose (see schedule_store.py for why that is exactly once). Any number of
processes (servers, ``hpcml scheduler``) may run passes over one data dir at once.

Policies, per schedule:

- overlap: ``skip`` a firing while the schedule's previous run is active (default),
  ``allow`` it, or ``cancel-previous`` (cancel the active runs, then submit);
- catch-up after downtime: ``latest`` fires once for the most recent missed time (default),
  ``none`` fires only a time not older than ``ON_TIME``, ``all`` fires every missed time,
  the latest ``catch_up_limit`` of them;
- ``end_at`` and ``max_runs`` (firings) end it; pause/resume (times passed while paused
  are not caught up).

A firing whose project or config has since gone or become invalid is recorded as failed
with the reason, and the schedule goes on.
"""
from __future__ import annotations

import asyncio
import logging
import re
import string
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ..core.errors import Conflict, HpcmlError, NotFound, Problem, UserInputError
from . import cleanup, schedule_times
from . import project as project_mod
from . import snapshot as snapshot_mod
from .models import CronPreview, Firing, RunRecord, ScheduleRecord, ScheduleView
from .requests import ScheduleRequest, SubmitRequest, When
from .runs import Plan, RunService, new_run_id
from .schedule_store import ScheduleStore

log = logging.getLogger(__name__)

ON_TIME = 120.0  # seconds: a time passed by no more than this is not "missed"
NEXT_TIMES = 5
HISTORY = 50  # firings shown with a schedule
FIRE_CONCURRENCY = 4  # firings submitted at once (an upload may take minutes)
NAME_FIELDS = ("schedule", "n", "time")
DEFAULT_RUN_NAME = "{schedule}-{time:%Y%m%d-%H%M}"
_HUGE = re.compile(r"\d{4,}")  # a width or precision a run name has no use for


def new_schedule_id() -> str:
    return "t" + uuid.uuid4().hex[:11]


def check_run_name(template: str) -> str:
    """``template`` if it names only {schedule}, {n} and {time} (a strftime format after a
    colon); UserInputError otherwise."""
    try:
        parts = [(f, spec) for _, f, spec, _ in string.Formatter().parse(template)
                 if f is not None]
        bad = [f for f, _ in parts if f not in NAME_FIELDS]
        if any(_HUGE.search(spec or "") or "{" in (spec or "") for _, spec in parts):
            # "{n:>999999999}" is 14 characters and a gigabyte once formatted (as is a
            # width taken from a field: "{n:>{schedule}}" with a schedule named 999999999).
            message = "a width or precision above 999, or a field inside a format"
        elif not bad:
            render_run_name(template, "x", 1, 0.0, "UTC")
            return template
        else:
            allowed = ", ".join("{" + f + "}" for f in NAME_FIELDS)
            message = f"unknown field {{{bad[0]}}}: use {allowed}"
    except (ValueError, TypeError) as exc:
        message = f"invalid template: {exc}"
    raise UserInputError(Problem(message, key="run_name"))


def render_run_name(template: str, schedule: str, n: int, at: float, tz: str) -> str:
    local = datetime.fromtimestamp(at, schedule_times.zone(tz))
    return template.format(schedule=schedule, n=n, time=local)


def plan_due(sched: ScheduleRecord, now: float) -> tuple[list[Firing], dict[str, Any]]:
    """What is due of ``sched`` at ``now`` under its policies: the firings to record and the
    schedule's new fields (cursor, count, ended). Pure: the store applies both at once."""
    assert sched.next_at is not None
    when = schedule_times.When(sched.cron, sched.at, sched.timezone)
    keep = sched.catch_up_limit if sched.catch_up == "all" else 1
    upto = now if sched.end_at is None else min(now, sched.end_at)
    times, missed = when.due(sched.next_at, upto, keep)
    if sched.catch_up == "none":
        late = [t for t in times if now - t > ON_TIME]
        times, missed = [t for t in times if t not in late], missed + len(late)
    if sched.max_runs is not None:
        left = max(sched.max_runs - sched.fired, 0)
        missed += max(len(times) - left, 0)
        times = times[len(times) - left:] if left else []
    firings = [Firing(schedule_id=sched.id, scheduled_at=t, run_id=new_run_id(),
                      created_at=now) for t in times]
    fired = sched.fired + len(firings)
    upcoming = when.next_times(now, 1)
    ended = None
    if sched.cron is None:
        ended = "its one time has come"
    elif sched.max_runs is not None and fired >= sched.max_runs:
        ended = f"fired {fired} times (max runs {sched.max_runs})"
    elif not upcoming or (sched.end_at is not None and upcoming[0] > sched.end_at):
        ended = "no time left before its end"
    return firings, {"next_at": None if ended else upcoming[0], "ended": ended,
                     "fired": fired, "missed": sched.missed + missed}


class ScheduleService:
    """Schedules over one engine's runs; ``clock`` is injectable (tests)."""

    def __init__(self, runs: RunService, clock: Callable[[], float] = time.time):
        self.runs = runs
        self.store = ScheduleStore(runs.store)
        self.clock = clock
        self._firing: set[tuple[str, float]] = set()  # firings this engine is submitting

    # ------------------------------------------------------------------ defining

    @staticmethod
    def _when(req: When, now: float) -> tuple[schedule_times.When, str | None]:
        """The times of ``req`` (checked), and the cron text as given."""
        tz = req.timezone or schedule_times.server_zone()
        schedule_times.zone(tz)
        if (req.cron is None) == (req.at is None):
            raise UserInputError(Problem("give either a cron expression or one time (at)",
                                         key="cron"))
        if req.cron is not None:
            return schedule_times.When(schedule_times.cron_fields(req.cron), None, tz), req.cron
        assert req.at is not None
        at = schedule_times.parse_at(req.at, tz)
        if at <= now:
            raise UserInputError(Problem(f"{req.at} has passed: a one-off time must lie ahead",
                                         key="at"))
        return schedule_times.When(None, at, tz), None

    async def preview(self, req: When) -> CronPreview:
        now = self.clock()
        when, _ = self._when(req, now)
        return CronPreview(cron=when.cron, timezone=when.tz,
                           next_times=when.next_times(now, NEXT_TIMES))

    async def create(self, req: ScheduleRequest, *, root: Path | None = None) -> ScheduleView:
        """Check everything a firing needs (nothing is created on bad input), then store it."""
        now = self.clock()
        problems: list[Problem] = []
        when = None
        try:
            when, cron_text = self._when(req, now)
        except UserInputError as exc:
            problems += exc.problems
        end_at = None
        if req.end is not None and when is not None:
            try:
                end_at = schedule_times.parse_at(req.end, when.tz, key="end")
            except UserInputError as exc:
                problems += exc.problems
        template = req.run_name or DEFAULT_RUN_NAME
        try:
            check_run_name(template)
        except UserInputError as exc:
            problems += exc.problems
        if problems:
            raise UserInputError(problems)
        assert when is not None
        plan, _ = await self.runs.plan(req, root=root)
        with tempfile.TemporaryDirectory() as scratch:  # parameters checked, nothing kept
            await asyncio.to_thread(self._check_parameters, plan, req, Path(scratch))
        snapshot_id = code = None
        if req.code == "pinned":
            await self.runs.take_code(plan)
            assert plan.snapshot is not None
            snapshot_id, code = plan.snapshot.id, plan.code
        upcoming = when.next_times(now, 1)
        if not upcoming or (end_at is not None and upcoming[0] > end_at):
            raise UserInputError(Problem("it would never fire (no time before its end)",
                                         key="end" if end_at is not None else "cron"))
        sched = ScheduleRecord(
            id=new_schedule_id(),
            name=req.name or f"{plan.project.name}-{req.entry_point}",
            project_path=str(plan.project_dir), project_name=plan.project.name,
            root=str(root) if root else None, entry_point=req.entry_point,
            parameters={k: str(v) for k, v in req.parameters.items()},
            config_path=str(plan.cfg.path) if plan.cfg.path else None,
            config_overrides=req.overrides, backend=plan.cfg.kind,
            connection=plan.cfg.connection_name, run_name=template,
            experiment_name=req.experiment_name, cron=when.cron, cron_text=cron_text,
            at=when.at, timezone=when.tz, overlap=req.overlap, catch_up=req.catch_up,
            catch_up_limit=req.catch_up_limit, end_at=end_at, max_runs=req.max_runs,
            code=req.code, snapshot_id=snapshot_id, code_identity=code,
            next_at=upcoming[0], created_at=now, updated_at=now)
        await asyncio.to_thread(self.store.insert, sched)
        return await self.get(sched.id)

    @staticmethod
    def _check_parameters(plan: Plan, req: ScheduleRequest, scratch: Path) -> None:
        project_mod.resolve_command(plan.project, req.entry_point, req.parameters, scratch)

    # ------------------------------------------------------------------ reading

    async def get(self, ref: str) -> ScheduleView:
        sched = await asyncio.to_thread(self.store.get, ref)
        return await asyncio.to_thread(self._view, sched, HISTORY)

    async def all(self) -> list[ScheduleView]:
        scheds = await asyncio.to_thread(self.store.all)
        return await asyncio.to_thread(lambda: [self._view(s, 1) for s in scheds])

    def _view(self, sched: ScheduleRecord, history: int) -> ScheduleView:
        next_times: list[float] = []
        if sched.state == "active" and sched.next_at is not None:
            when = schedule_times.When(sched.cron, sched.at, sched.timezone)
            next_times = [sched.next_at, *when.next_times(sched.next_at, NEXT_TIMES - 1)]
            if sched.end_at is not None:
                next_times = [t for t in next_times if t <= sched.end_at]
            if sched.max_runs is not None:
                next_times = next_times[:max(sched.max_runs - sched.fired, 0)]
        return ScheduleView(**sched.model_dump(), status=sched.state, next_times=next_times,
                            runs=self.store.runs_created(sched.id),
                            firings=self.store.firings(sched.id, history))

    # ------------------------------------------------------------------ changing

    async def pause(self, ref: str) -> ScheduleView:
        def change(s: ScheduleRecord) -> dict[str, Any]:
            if s.ended:
                raise Conflict(f"schedule {s.id} has ended ({s.ended})")
            return {"paused": True, "next_at": None}
        sched = await asyncio.to_thread(self.store.update, ref, change)
        return await self.get(sched.id)

    async def resume(self, ref: str) -> ScheduleView:
        """Fires again from now on: times passed while it was paused are not caught up."""
        now = self.clock()

        def change(s: ScheduleRecord) -> dict[str, Any]:
            if s.ended:
                raise Conflict(f"schedule {s.id} has ended ({s.ended})")
            if not s.paused:
                return {}
            upcoming = schedule_times.When(s.cron, s.at, s.timezone).next_times(now, 1)
            if s.cron is None and not upcoming:
                # A one-off whose time passed while paused: it fires now (catch-up "latest").
                return {"paused": False, "next_at": now} if s.catch_up != "none" else {
                    "paused": False, "ended": "its one time passed while it was paused"}
            return {"paused": False, "next_at": upcoming[0] if upcoming else None}
        sched = await asyncio.to_thread(self.store.update, ref, change)
        return await self.get(sched.id)

    async def delete(self, ref: str) -> None:
        sched = await asyncio.to_thread(self.store.get, ref)
        await asyncio.to_thread(self.store.delete, sched.id)
        if sched.snapshot_id:  # pinned code no run uses goes with it
            await asyncio.to_thread(
                cleanup.remove_unused_manifest, sched.snapshot_id, self.runs.manifest_dir,
                self.runs.store.snapshot_in_use)

    async def run_now(self, ref: str) -> Firing:
        """Fire once now, whatever the overlap policy (the user asked for it)."""
        sched = await asyncio.to_thread(self.store.get, ref)
        now = self.clock()
        firing = Firing(schedule_id=sched.id, scheduled_at=now, run_id=new_run_id(),
                        manual=True, created_at=now)
        while not await asyncio.to_thread(self.store.add_firing, firing):
            firing.scheduled_at += 1e-3  # that very instant was taken: the next one
        return await self._fire(firing)

    # ------------------------------------------------------------------ firing

    async def tick(self) -> list[Firing]:
        """One pass: record what is due now, then submit every firing that is pending and
        free to claim (this pass's, and any another process left unfinished)."""
        now = self.clock()
        due = await asyncio.to_thread(self.store.next_due)
        if due is not None and due <= now:  # the write lock only when something is due
            await asyncio.to_thread(self.store.take_due, now, plan_due)
        pending = await asyncio.to_thread(self.store.pending)
        free = [f for f, claimable in pending
                if claimable and (f.schedule_id, f.scheduled_at) not in self._firing]
        by_schedule: dict[str, list[Firing]] = {}
        for firing in free:
            by_schedule.setdefault(firing.schedule_id, []).append(firing)
        bound = asyncio.Semaphore(FIRE_CONCURRENCY)

        async def fire(firings: list[Firing]) -> list[Firing]:
            # One schedule's firings in order: its overlap policy sees the run before.
            async with bound:
                return [await self._fire(f) for f in firings]
        done = await asyncio.gather(*(fire(fs) for fs in by_schedule.values()))
        return sorted((f for fs in done for f in fs), key=lambda f: f.scheduled_at)

    async def next_due(self) -> float | None:
        return await asyncio.to_thread(self.store.next_due)

    async def _fire(self, firing: Firing) -> Firing:
        """Submit ``firing``'s run once; every outcome is recorded on the firing."""
        key = (firing.schedule_id, firing.scheduled_at)
        if not await asyncio.to_thread(self.store.claim, firing):
            return firing  # another process is at it
        self._firing.add(key)
        try:
            done = await self._submit(firing)
        except Exception as exc:  # noqa: BLE001 - a firing must never stop the loop
            log.exception("firing %s of schedule %s failed", firing.scheduled_at,
                          firing.schedule_id)
            done = await asyncio.to_thread(self.store.finish, firing, "failed", str(exc))
        finally:
            self._firing.discard(key)
        log.info("schedule %s fired for %s%s: %s, run %s%s", done.schedule_id,
                 datetime.fromtimestamp(done.scheduled_at).isoformat(timespec="seconds"),
                 " (run now)" if done.manual else "", done.state, done.run_id,
                 f" ({done.message})" if done.message else "")
        return done

    async def _submit(self, firing: Firing) -> Firing:
        store = self.store
        try:
            await asyncio.to_thread(self.runs.store.get, firing.run_id)
            # Its run exists: the process that created it died before saying so.
            return await asyncio.to_thread(store.finish, firing, "submitted")
        except NotFound:
            pass
        try:
            sched = await asyncio.to_thread(store.get, firing.schedule_id)
        except NotFound:
            return await asyncio.to_thread(store.finish, firing, "failed", "schedule deleted")
        if not firing.manual and sched.overlap != "allow":
            active = await asyncio.to_thread(store.active_runs, sched.id)
            if active and sched.overlap == "skip":
                return await asyncio.to_thread(
                    store.finish, firing, "skipped",
                    f"its previous run {active[0]} is still active (overlap: skip)")
            for run_id in active:
                try:
                    await self.runs.cancel(run_id)
                except Conflict:
                    pass  # it ended meanwhile
        try:
            run = await self._submit_run(sched, firing)
        except Conflict:
            return await asyncio.to_thread(store.finish, firing, "submitted")  # won elsewhere
        except HpcmlError as exc:
            # The project, config or backend has gone or changed: this firing fails, the
            # schedule goes on.
            return await asyncio.to_thread(store.finish, firing, "failed", str(exc))
        done = await asyncio.to_thread(store.finish, firing, "submitted")
        return done.model_copy(update={"run_state": run.state})

    async def _submit_run(self, sched: ScheduleRecord, firing: Firing) -> RunRecord:
        snapshot = None
        if sched.code == "pinned" and sched.snapshot_id:
            snapshot = await asyncio.to_thread(
                snapshot_mod.load_snapshot, sched.snapshot_id, self.runs.object_dir,
                self.runs.manifest_dir)
        n = await asyncio.to_thread(self.store.runs_created, sched.id) + 1
        req = SubmitRequest(
            project=sched.project_path, entry_point=sched.entry_point,
            parameters=dict(sched.parameters), backend_config=sched.config_path,
            overrides=sched.config_overrides,
            run_name=render_run_name(sched.run_name, sched.name, n, firing.scheduled_at,
                                     sched.timezone)[:250],
            experiment_name=sched.experiment_name)
        return await self.runs.submit(
            req, root=Path(sched.root) if sched.root else None, snapshot=snapshot,
            code=sched.code_identity if snapshot else None, run_id=firing.run_id,
            schedule_id=sched.id, scheduled_at=firing.scheduled_at)
