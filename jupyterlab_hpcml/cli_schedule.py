"""`hpcml schedule ...` and `hpcml scheduler`: schedules from the command line.

``hpcml schedule`` defines and manages schedules (docs/schedules.md); ``hpcml scheduler``
fires them in the foreground, for when no lab server runs (both may run at once: the run
store decides who fires what). Every command calls the Engine facade only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from . import cli_args, run_text
from .run_text import fmt_time

if TYPE_CHECKING:
    from .engine.models import Firing, RunRecord, ScheduleView
    from .engine.requests import ScheduleRequest
    from .engine.service import Engine

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LIST_HEADER = ("ID", "NAME", "STATE", "WHEN", "NEXT", "LAST", "RUNS")
HISTORY_HEADER = ("SCHEDULED", "FIRING", "RUN", "RUN STATE", "MESSAGE")


# ---------------------------------------------------------------------------
# hpcml scheduler


async def cmd_scheduler(args: argparse.Namespace) -> int:
    """Fire schedules (and poll runs) until SIGTERM or SIGINT; then close and exit 0."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT, stream=sys.stderr)
    logging.getLogger("jupyterlab_hpcml").setLevel(logging.INFO)  # one line per firing
    engine = cli_args.engine(args, fire_schedules=True)
    print(f"hpcml scheduler: firing schedules of {engine.data_dir} (pid {os.getpid()})",
          file=sys.stderr, flush=True)
    loop = asyncio.get_running_loop()
    firing = asyncio.ensure_future(engine.run_schedules())
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, firing.cancel)
    try:
        await firing
    except asyncio.CancelledError:
        pass
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await engine.close()
    print("hpcml scheduler: stopped", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------
# text


def when_text(view: ScheduleView) -> str:
    """``0 3 * * * Europe/Zurich``, ``@daily UTC`` or ``at 2026-12-24 18:00 Europe/Zurich``."""
    if view.at is not None:
        return f"at {zone_time(view.at, view.timezone)} {view.timezone}"
    return f"{view.cron_text or view.cron} {view.timezone}"


def zone_time(t: float, tz: str) -> str:
    return datetime.fromtimestamp(t, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def firing_text(firing: Firing | None) -> str:
    """A firing as a list shows it: its time, and its run's state (or what became of it)."""
    if firing is None:
        return "-"
    outcome = firing.run_state.value if firing.run_state else firing.state
    return f"{fmt_time(firing.scheduled_at)} {outcome}"


def list_row(view: ScheduleView) -> tuple[str, ...]:
    return (view.id, view.name, view.status, when_text(view),
            fmt_time(view.next_times[0]) if view.next_times else "-",
            firing_text(view.firings[0] if view.firings else None), str(view.runs))


def print_schedule(view: ScheduleView) -> None:
    """Every field a user sets or needs, the next times and the history of firings."""
    code = view.code + (f" (snapshot {view.snapshot_id})" if view.snapshot_id else "")
    limits = [f"until {zone_time(view.end_at, view.timezone)}" if view.end_at else "",
              f"max runs {view.max_runs}" if view.max_runs else ""]
    rows = [
        ("id", view.id), ("name", view.name),
        ("state", view.status + (f" ({view.ended})" if view.ended else "")),
        ("when", when_text(view)), ("project", view.project_path),
        ("entry point", view.entry_point), ("parameters", json.dumps(view.parameters)),
        ("backend", f"{view.backend} ({view.connection or '-'})"),
        ("config", view.config_path or "-"),
        ("overrides", json.dumps(view.config_overrides) if view.config_overrides else "-"),
        ("run name", view.run_name), ("experiment", view.experiment_name or "-"),
        ("overlap", view.overlap),
        ("catch-up", view.catch_up + (f" (limit {view.catch_up_limit})"
                                      if view.catch_up == "all" else "")),
        ("ends", ", ".join(x for x in limits if x) or "-"), ("code", code),
        ("fired", f"{view.fired} times, {view.runs} runs created, {view.missed} times missed"),
        ("created", fmt_time(view.created_at)),
    ]
    for key, value in rows:
        print(f"{key:>12}: {value}")
    print(f"{'next times':>12}:" + ("" if view.next_times else " -"))
    for t in view.next_times:
        print(f"{'':>14}{fmt_time(t)}  ({zone_time(t, view.timezone)} {view.timezone})")
    print(f"{'history':>12}:" + ("" if view.firings else " -"))
    if view.firings:
        print(run_text.table(
            ((fmt_time(f.scheduled_at) + (" (run now)" if f.manual else ""), f.state, f.run_id
              if f.state == "submitted" else "-", f.run_state.value if f.run_state else "-",
              f.message or "") for f in view.firings), HISTORY_HEADER))


def run_rows(run: RunRecord) -> list[tuple[str, str]]:
    """The lines ``hpcml show RUN`` adds for a run a schedule created."""
    if run.schedule_id is None:
        return []
    return [("schedule", run.schedule_id), ("scheduled", fmt_time(run.scheduled_at))]


# ---------------------------------------------------------------------------
# hpcml schedule ...


def schedule_request(args: argparse.Namespace, cwd: Path | None = None) -> ScheduleRequest:
    """The ScheduleRequest for parsed ``schedule add`` options (paths as ``submit`` takes
    them: relative to ``cwd``, default the current folder)."""
    from .engine.requests import ScheduleRequest

    single = cli_args.submit_request(args, cwd)
    return ScheduleRequest(
        **single.model_dump(exclude_none=True), cron=args.cron, at=args.at,
        timezone=args.tz, name=args.name, overlap=args.overlap, catch_up=args.catch_up,
        catch_up_limit=args.catch_up_limit, end=args.end, max_runs=args.max_runs,
        code="pinned" if args.pin_code else "fresh")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


async def cmd_add(args: argparse.Namespace) -> int:
    req = await asyncio.to_thread(schedule_request, args)  # resolves paths: off the loop

    async def work(engine: Engine) -> int:
        view = await engine.create_schedule(req)
        if args.json:
            _print_json(view.model_dump(mode="json"))
            return 0
        nxt = fmt_time(view.next_times[0]) if view.next_times else "-"
        print(f"created schedule {view.id} ({view.name}): {when_text(view)}, next {nxt}, "
              f"code {view.code}", file=sys.stderr)
        print(view.id)
        return 0
    return await cli_args.with_engine(args, work)


async def cmd_list(args: argparse.Namespace) -> int:
    async def work(engine: Engine) -> int:
        views = await engine.list_schedules()
        if await _refresh_active(engine, views):
            views = await engine.list_schedules()
        if args.json:
            _print_json([v.model_dump(mode="json") for v in views])
        else:
            print(run_text.table((list_row(v) for v in views), LIST_HEADER))
        return 0
    return await cli_args.with_engine(args, work)


async def cmd_show(args: argparse.Namespace) -> int:
    async def work(engine: Engine) -> int:
        view = await engine.get_schedule(args.schedule)
        if await _refresh_active(engine, [view]):
            view = await engine.get_schedule(view.id)
        if args.json:
            _print_json(view.model_dump(mode="json"))
        else:
            print_schedule(view)
        return 0
    return await cli_args.with_engine(args, work)


async def _refresh_active(engine: Engine, views: list[ScheduleView]) -> bool:
    """Ask the backends about the shown firings' active runs (no server may be polling);
    whether there were any."""
    active = {f.run_id for v in views for f in v.firings
              if f.run_state is not None and not f.run_state.terminal}
    if active:
        await engine.refresh([await engine.get(run_id) for run_id in sorted(active)])
    return bool(active)


def _changer(change: Callable[[Engine, str], Awaitable[ScheduleView]], done: str
             ) -> Callable[[argparse.Namespace], Awaitable[int]]:
    """``pause`` and ``resume``: apply ``change``, then say what it did."""
    async def cmd(args: argparse.Namespace) -> int:
        async def work(engine: Engine) -> int:
            view = await change(engine, args.schedule)
            if args.json:
                _print_json(view.model_dump(mode="json"))
            else:
                nxt = f", next {fmt_time(view.next_times[0])}" if view.next_times else ""
                print(f"schedule {view.id} ({view.name}) {done}{nxt}", file=sys.stderr)
            return 0
        return await cli_args.with_engine(args, work)
    return cmd


cmd_pause = _changer(lambda engine, ref: engine.pause_schedule(ref), "paused")
cmd_resume = _changer(lambda engine, ref: engine.resume_schedule(ref), "resumed")


async def cmd_rm(args: argparse.Namespace) -> int:
    async def work(engine: Engine) -> int:
        view = await engine.get_schedule(args.schedule)
        if not args.yes and not cli_args.confirm(
                f"Delete schedule {view.id} ({view.name}, {when_text(view)})? "
                f"Its runs ({view.runs}) stay."):
            print("not deleted", file=sys.stderr)
            return 1
        await engine.delete_schedule(view.id)
        if args.json:
            _print_json({"id": view.id, "deleted": True})
        else:
            print(f"deleted schedule {view.id}", file=sys.stderr)
        return 0
    return await cli_args.with_engine(args, work)


async def cmd_run_now(args: argparse.Namespace) -> int:
    """Fire once now; prints the run id. Exit 1 when no run could be submitted."""
    async def work(engine: Engine) -> int:
        firing = await engine.run_schedule_now(args.schedule)
        if args.json:
            _print_json(firing.model_dump(mode="json"))
        elif firing.state == "submitted":
            print(f"schedule {firing.schedule_id} fired now: run {firing.run_id}",
                  file=sys.stderr)
            print(firing.run_id)
        else:
            print(f"hpcml: schedule {firing.schedule_id} fired now: {firing.state}"
                  + (f": {firing.message}" if firing.message else ""), file=sys.stderr)
        return 0 if firing.state == "submitted" else 1
    return await cli_args.with_engine(args, work)


async def schedule_filter(engine: Engine, ref: str | None) -> str | None:
    """``runs --schedule REF``: the id of the schedule REF names (id, prefix or name)."""
    return None if ref is None else (await engine.get_schedule(ref)).id


# ---------------------------------------------------------------------------
# arguments


def add_schedule_arguments(p: argparse.ArgumentParser) -> None:
    """``schedule add``: what ``submit`` takes (no --wait) and when and how it fires."""
    cli_args.add_submit_arguments(
        p, json=False, wait=False,
        run_name_help="the runs' names, from {schedule}, {n} and {time} (default: "
        "{schedule}-{time:%%Y%%m%%d-%%H%%M})")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR",
                      help="five fields (minute hour day-of-month month day-of-week) or "
                      "@hourly, @daily, @weekly, @monthly, @yearly")
    when.add_argument("--at", metavar="TIME",
                      help="one time (ISO 8601, e.g. 2026-12-24T18:00): a delayed run")
    p.add_argument("--tz", metavar="ZONE", help="IANA time zone of the times, e.g. "
                   "Europe/Zurich (default: this machine's)")
    p.add_argument("--overlap", choices=("skip", "allow", "cancel-previous"), default="skip",
                   help="while the previous run is active (default: skip)")
    p.add_argument("--catch-up", choices=("latest", "none", "all"), default="latest",
                   help="times missed while nothing fired (default: latest)")
    p.add_argument("--catch-up-limit", type=int, default=10, metavar="N",
                   help="with --catch-up all: at most N missed times (default: 10)")
    p.add_argument("--end", metavar="TIME", help="no firing after this time (ISO 8601)")
    p.add_argument("--max-runs", type=int, metavar="N",
                   help="end after N scheduled firings (skipped and failed ones count)")
    p.add_argument("--pin-code", action="store_true",
                   help="snapshot the project now and run that at every firing "
                   "(default: snapshot it afresh at each firing)")
    p.add_argument("--name", help="the schedule's name (default: project-entry point)")
    _add_json(p, "print the schedule as JSON")


def _add_json(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--json", action="store_true", help=help)


def _add_ref(p: argparse.ArgumentParser) -> None:
    p.add_argument("schedule", help="schedule id, a unique prefix of it, or its name")


def add_schedule_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``hpcml schedule add|list|show|pause|resume|rm|run-now`` into ``sub``."""
    group = sub.add_parser("schedule", help="runs that start by themselves, at cron times or "
                           "once (docs/schedules.md)")
    commands = group.add_subparsers(dest="schedule_command", required=True)

    def command(name: str, help: str, func: Callable[[argparse.Namespace], Awaitable[int]],
                json_help: str | None = "print the schedule as JSON",
                ref: bool = True) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=help)
        if ref:
            _add_ref(p)
        if json_help:
            _add_json(p, json_help)
        p.set_defaults(func=func)
        return p

    add = commands.add_parser("add", help="create a schedule: a submission and when it fires")
    add_schedule_arguments(add)
    add.set_defaults(func=cmd_add)
    command("list", "list schedules: state, times, last firing, runs", cmd_list,
            "print the schedules as JSON", ref=False)
    command("show", "show a schedule, its next times and its firings", cmd_show)
    command("pause", "stop firing (times passed while paused are not caught up)", cmd_pause)
    command("resume", "fire again from now on", cmd_resume)
    command("rm", "delete a schedule and its history (its runs stay)", cmd_rm,
            "print {id, deleted} as JSON").add_argument(
        "-y", "--yes", action="store_true", help="do not ask for confirmation")
    command("run-now", "fire once now, whatever the overlap policy; prints the run id",
            cmd_run_now, "print the firing as JSON")


# ---------------------------------------------------------------------------
# wiring


def add_scheduler_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``hpcml scheduler`` into the sub-commands ``sub`` of ``hpcml``."""
    p = sub.add_parser("scheduler", help="fire schedules in the foreground (no lab needed); "
                       "stops on SIGTERM/SIGINT")
    add_data_dir(p)
    p.set_defaults(func=cmd_scheduler)


def add_data_dir(p: argparse.ArgumentParser) -> None:
    """``--data-dir`` after the sub-command too (``hpcml scheduler --data-dir D``); not
    given, it leaves ``hpcml --data-dir`` as it was."""
    p.add_argument("--data-dir", default=argparse.SUPPRESS,
                   help="run store folder (default: $HPCML_DATA_DIR)")
