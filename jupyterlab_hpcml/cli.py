"""`hpcml`: the command line on the same engine and run store as the lab.

Flags follow `mlflow run` (-e, -P name=value, -c/--backend-config) so MLflow users feel at home.
Every command calls the Engine facade (``engine/service.py``) only. A sweep (``hpcml
sweep``) is many runs handled as one: ``show``, ``cancel`` and ``rerun`` take its id (it
starts with "s") as they take a run's, and ``runs`` lists it as one line.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import cli_args, cli_data, cli_deploy, cli_models, cli_schedule, run_text
from .core.errors import HpcmlError, UserInputError
from .core.states import RunState
from .engine.models import RunRecord, SweepRecord, SweepView
from .run_text import fmt_time

if TYPE_CHECKING:
    from .engine.service import Engine

WAIT_POLL_SECONDS = 0.5


_key_values = cli_args.key_values
_sets = cli_args.sets
_config_path = cli_args.config_path


def _record_json(run: RunRecord) -> dict[str, Any]:
    data = run.model_dump(mode="json")
    data["started_at"], data["ended_at"] = run.started_at, run.ended_at
    return data


def _sweep_json(view: SweepView) -> dict[str, Any]:
    """The sweep record with its children as full run records (as ``show --json`` a run)."""
    data = view.model_dump(mode="json", exclude={"children"})
    data["children"] = [_record_json(c) for c in view.children]
    return data


def _print_run(run: RunRecord) -> None:
    rows = [
        ("id", run.id), ("name", run.name), ("state", run.state.value),
        ("exit code", run.exit_code), ("project", run.project_path),
        ("entry point", run.entry_point),
        ("command", run.command), ("parameters", json.dumps(run.parameters)),
        ("backend", f"{run.backend} ({run.connection})"), ("job id", run.backend_job_id),
        ("run dir", run.run_dir), ("resources", json.dumps(run.resources)),
        ("mlflow", f"experiment {run.mlflow_experiment_id}, run {run.mlflow_run_id}"),
        ("code", run.code.model_dump_json() if run.code else "-"),
        ("submitted", fmt_time(run.created_at)), ("duration", run_text.duration(run)),
        *cli_schedule.run_rows(run),
    ]
    for key, value in rows:
        print(f"{key:>12}: {value if value is not None else '-'}")
    print(f"{'history':>12}:")
    for change in run.state_history:
        msg = f"  {change.message}" if change.message else ""
        print(f"{'':>14}{fmt_time(change.at)}  {change.state.value}{msg}")
    for note in run.notes:
        print(f"{'note':>12}: {note}")


def _print_table(runs: list[RunRecord]) -> None:
    print(run_text.table(run_text.table_row(r) for r in runs))


async def cmd_submit(args: argparse.Namespace) -> int:
    engine = cli_args.engine(args)
    req = cli_args.submit_request(args)
    run = await cli_data.with_progress(engine.submit(req), engine.staging_now)
    return await _report(engine, run, args)


async def _report(engine: Engine, run: RunRecord, args: argparse.Namespace) -> int:
    if not args.json:
        print(f"submitted run {run.id} ({run.name}) on {run.backend}: {run.state.value}",
              file=sys.stderr)
    if args.wait:
        run = await cli_args.wait_run(engine, run, WAIT_POLL_SECONDS)
        if not args.json:
            print(f"run {run.id} {run.state.value} (exit code {run.exit_code})", file=sys.stderr)
    if args.json:
        print(json.dumps(_record_json(run), indent=2))
    elif not args.wait:
        print(run.id)
    await engine.close()
    if args.wait:
        return 0 if run.state == RunState.FINISHED else 1
    return 0 if run.state not in (RunState.FAILED,) else 1


async def cmd_sweep(args: argparse.Namespace) -> int:
    # Off the loop: it may read a --from file. Bad input: nothing is created.
    req = await asyncio.to_thread(cli_args.sweep_request, args)
    engine = cli_args.engine(args)
    try:
        view = await engine.submit_sweep(req)
        if not args.json:
            print(f"submitted sweep {view.id} ({view.name}): {len(view.children)} runs on "
                  f"{view.backend}", file=sys.stderr)
        return await _report_sweep(engine, view, args)
    finally:
        await engine.close()


async def _wait_sweep(engine: Engine, view: SweepView, *, quiet: bool) -> SweepView:
    """Poll until every child ended; unless ``quiet``, say on stderr how far it got."""
    said = ""
    while view.children and (view.state is None or not view.state.terminal):
        if not quiet and (now := run_text.counts(view.counts)) != said:
            print(f"sweep {view.id}: {now}", file=sys.stderr)
            said = now
        await asyncio.sleep(WAIT_POLL_SECONDS)
        view = await engine.current_sweep(view.id)
    return view


async def _report_sweep(engine: Engine, view: SweepView, args: argparse.Namespace) -> int:
    """Print the sweep (after waiting, with --wait); the exit code: with --wait 0 only
    when the last attempt of every point FINISHED."""
    if args.wait:
        view = await _wait_sweep(engine, view, quiet=args.json)
    if args.json:
        print(json.dumps(_sweep_json(view), indent=2))
    else:
        print(run_text.sweep_summary(view))
    latest = run_text.latest_attempts(view.children)
    if not args.wait:
        held = sum(1 for c in view.children if c.held)
        if held:  # started by whoever polls next: nothing runs in the background here
            print(f"{held} children wait for a slot (max-parallel {view.max_parallel}): they "
                  "start as runs end, when the lab's server or an hpcml command (runs, show, "
                  "--wait) looks at the sweep", file=sys.stderr)
        return 1 if view.state == RunState.FAILED else 0
    bad = [c for c in latest if c.state != RunState.FINISHED]
    if bad:
        said = "; ".join(
            f"#{c.sweep_index} {c.id} {c.state.value}"
            + ("" if c.exit_code is None else f" (exit code {c.exit_code})") for c in bad)
        print(f"hpcml: sweep {view.id}: {len(bad)} of {len(latest)} children did not "
              f"finish: {said}", file=sys.stderr)
        return 1
    print(f"sweep {view.id}: all {len(latest)} children FINISHED", file=sys.stderr)
    return 0


async def cmd_validate(args: argparse.Namespace) -> int:
    from .engine.service import Engine

    found = await Engine.validate(Path(args.project), _config_path(args.backend_config),
                                  args.entry_point, _key_values(args.param, "-P"))
    for p in found.problems:
        print(p)
    if not found.problems:
        checked = ", ".join(str(c) for c in found.configs) or "no backend configs"
        print(f"OK: {found.mlproject_file or args.project}; {checked}")
    return 1 if found.problems else 0


async def cmd_runs(args: argparse.Namespace) -> int:
    engine = cli_args.engine(args)
    await engine.refresh()
    states = [RunState(s) for s in cli_args.states(args.state) or []] or None
    filters: dict[str, Any] = {"states": states, "project": args.project, "text": args.query,
                               "archived": cli_args.archived_filter(args.archived),
                               "schedule": await cli_schedule.schedule_filter(engine,
                                                                              args.schedule)}
    sweeps = [] if args.schedule else _matching_sweeps(  # a schedule creates no sweeps
        await engine.list_sweeps(limit=SWEEPS_LISTED), states, args.project, args.query)
    if args.json:  # every run (a sweep's children with their sweep_id) and the sweeps
        runs, total = await engine.list_runs(**filters, limit=args.limit)
        print(json.dumps({"runs": [_record_json(r) for r in runs], "total": total,
                          "sweeps": [s.model_dump(mode="json") for s in sweeps[:args.limit]]},
                         indent=2))
    else:  # single runs and one line per sweep, newest first
        runs = await _single_runs(engine, filters, args.limit)
        items: list[RunRecord | SweepRecord] = [*runs, *sweeps]
        items.sort(key=lambda item: item.created_at, reverse=True)
        print(run_text.table(
            run_text.sweep_row(i) if isinstance(i, SweepRecord) else run_text.table_row(i)
            for i in items[:args.limit]))
    await engine.close()
    return 0


SWEEPS_LISTED = 1000  # sweeps are few; the listing filters them here
RUN_PAGE = 200


async def _single_runs(engine: Engine, filters: dict[str, Any], limit: int) -> list[RunRecord]:
    """The newest ``limit`` runs that are no sweep's child (pages until enough)."""
    out: list[RunRecord] = []
    offset = 0
    while len(out) < limit:
        page, total = await engine.list_runs(**filters, limit=RUN_PAGE, offset=offset)
        out += [r for r in page if r.sweep_id is None]
        offset += len(page)
        if not page or offset >= total:
            break
    return out[:limit]


def _matching_sweeps(sweeps: list[SweepRecord], states: list[RunState] | None,
                     project: str | None, text: str | None) -> list[SweepRecord]:
    """The filters of ``runs`` applied to sweeps: their state, project, and text in id,
    name or entry point (sweeps are never archived)."""
    def matches(s: SweepRecord) -> bool:
        if states is not None and (s.state or RunState.SUBMITTING) not in states:
            return False
        if project is not None and project not in (s.project_name, s.project_path):
            return False
        return not text or any(text.lower() in v.lower()
                               for v in (s.id, s.name, s.entry_point, *s.array_jobs))
    return [s for s in sweeps if matches(s)]


async def cmd_show(args: argparse.Namespace) -> int:
    engine = cli_args.engine(args)
    if engine.is_sweep_id(args.run):
        try:
            view = await engine.current_sweep(args.run)
            print(json.dumps(_sweep_json(view), indent=2) if args.json
                  else run_text.sweep_summary(view))
        finally:
            await engine.close()
        return 0
    run = await engine.current(args.run)
    if args.json:
        print(json.dumps(_record_json(run), indent=2))
    else:
        _print_run(run)
    await engine.close()
    return 0


async def cmd_logs(args: argparse.Namespace) -> int:
    engine = cli_args.engine(args)
    stream = "stderr" if args.stderr else "stdout"
    run = await engine.get(args.run)
    offset = 0
    if args.tail is not None:  # the last lines, then (with --follow) what comes after them
        chunk = await engine.log_tail(run.id, stream, args.tail)
        sys.stdout.write(chunk.data)
        offset = chunk.next_offset
    while True:
        chunk = await engine.read_log(run.id, stream, offset, 1024 * 1024)
        sys.stdout.write(chunk.data)
        sys.stdout.flush()
        offset = chunk.next_offset
        if chunk.data:
            continue
        if not args.follow or not chunk.running:
            break
        await asyncio.sleep(WAIT_POLL_SECONDS)
        await engine.current(run.id)
    await engine.close()
    return 0


async def cmd_cancel(args: argparse.Namespace) -> int:
    engine = cli_args.engine(args)
    if engine.is_sweep_id(args.run):
        try:
            view = await engine.cancel_sweep(args.run)
        finally:
            await engine.close()
        asked = sum(1 for c in view.children if c.cancel_requested)
        print(f"cancel requested for {asked} children of sweep {view.id} "
              f"({run_text.counts(view.counts)})", file=sys.stderr)
        return 0
    run = await engine.cancel(args.run)
    print(f"cancel requested for run {run.id} ({run.state.value})", file=sys.stderr)
    await engine.close()
    return 0


async def _ended(engine: Engine, run_id: str) -> RunRecord:
    """The run after asking its backend (no server may be polling): delete and archive
    need to know whether it ended."""
    return await engine.current(run_id)


async def cmd_delete(args: argparse.Namespace) -> int:
    engine = cli_args.engine(args)
    try:
        run = await _ended(engine, args.run)
        if not run.state.terminal:  # refused before asking
            await engine.delete(run.id, delete_mlflow=args.mlflow)
        mlflow_run = run.mlflow_run_id if args.mlflow else None
        what = f" and its MLflow run {mlflow_run}" if mlflow_run else ""
        if not args.yes and not cli_args.confirm(f"Delete run {run.id} ({run.name}, "
                                         f"{run.state.value}){what}?"):
            print("not deleted", file=sys.stderr)
            return 1
        result = await engine.delete(run.id, delete_mlflow=args.mlflow)
    finally:
        await engine.close()
    print(f"deleted run {result.id}", file=sys.stderr)
    for note in result.kept:
        print(f"  {note}", file=sys.stderr)
    return 0


async def _set_archived(args: argparse.Namespace, archived: bool) -> int:
    engine = cli_args.engine(args)
    try:
        run = await _ended(engine, args.run)
        run = await engine.set_archived(run.id, archived)
    finally:
        await engine.close()
    print(f"run {run.id} {'archived' if run.archived else 'unarchived'}", file=sys.stderr)
    return 0


async def cmd_archive(args: argparse.Namespace) -> int:
    return await _set_archived(args, True)


async def cmd_unarchive(args: argparse.Namespace) -> int:
    return await _set_archived(args, False)


async def cmd_rerun(args: argparse.Namespace) -> int:
    from .engine.service import Engine

    if Engine.is_sweep_id(args.run):
        return await _rerun_sweep(args)
    engine = cli_args.engine(args)
    req = cli_args.rerun_request(args)
    run = await engine.rerun(args.run, req)
    return await _report(engine, run, args)


async def _rerun_sweep(args: argparse.Namespace) -> int:
    req = cli_args.sweep_rerun_request(args)
    engine = cli_args.engine(args)
    try:
        before = {c.id for c in (await engine.get_sweep(args.run)).children}
        view = await engine.rerun_sweep(args.run, req)
        if not args.json:
            new = sum(1 for c in view.children if c.id not in before)
            print(f"re-running {new} children of sweep {view.id}", file=sys.stderr)
        return await _report_sweep(engine, view, args)
    finally:
        await engine.close()


async def cmd_artifacts(args: argparse.Namespace) -> int:
    engine = cli_args.engine(args)
    if args.download:
        local, tmp = await engine.download_artifact(args.run, args.download)
        dest = Path(args.to or ".") / local.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, dest)
        tmp.cleanup()
        print(dest)
    else:
        for f in await engine.list_artifacts(args.run, args.path or ""):
            print(f"{f.path}/" if f.is_dir else f"{f.path}\t{f.size or 0}")
    await engine.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpcml", description=__doc__)
    parser.add_argument("--data-dir", help="run store folder (default: $HPCML_DATA_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(
        name: str, help: str, func: Callable[[argparse.Namespace], Awaitable[int]],
        add_arguments: Callable[[argparse.ArgumentParser], None] = cli_args.add_run_argument,
    ) -> argparse.ArgumentParser:
        """A sub-command running ``func``, its arguments added by ``add_arguments``."""
        p = sub.add_parser(name, help=help)
        add_arguments(p)
        p.set_defaults(func=func)
        return p

    command("submit", "submit a run of an MLflow project", cmd_submit,
            cli_args.add_submit_arguments)

    p = sub.add_parser("validate", help="check the MLproject and backend configs")
    p.add_argument("project", nargs="?", default=".")
    p.add_argument("-c", "--backend-config")
    p.add_argument("-e", "--entry-point", default="main")
    p.add_argument("-P", "--param", action="append", metavar="NAME=VALUE")
    p.set_defaults(func=cmd_validate)

    command("sweep", "submit a sweep: runs of one entry point over many parameter values",
            cmd_sweep, cli_args.add_sweep_arguments)
    command("runs", "list runs (a sweep as one line), newest first", cmd_runs,
            cli_args.add_runs_arguments).add_argument(
        "--schedule", metavar="ID", help="only the runs this schedule created")
    command("show", "show one run, or a sweep and its children",
            cmd_show).add_argument("--json", action="store_true")
    command("logs", "print a run's stdout (or stderr)", cmd_logs, cli_args.add_logs_arguments)
    command("cancel", "cancel a run, or every active child of a sweep", cmd_cancel)
    command("delete", "delete an ended run: its record and run directory "
            "(a remote run directory is kept), with --mlflow its MLflow run", cmd_delete,
            cli_args.add_delete_arguments)
    command("archive", "hide an ended run from listings (runs --archived shows it)", cmd_archive)
    command("unarchive", "show an archived run in listings again", cmd_unarchive)
    command("rerun", "run again, optionally with other parameters/resources (a sweep: "
            "its failed children with --failed)", cmd_rerun,
            cli_args.add_rerun_arguments)

    p = sub.add_parser("artifacts", help="list or download a run's MLflow artifacts")
    p.add_argument("run")
    p.add_argument("--path", help="folder to list")
    p.add_argument("--download", metavar="PATH")
    p.add_argument("--to", metavar="DIR")
    p.set_defaults(func=cmd_artifacts)
    cli_schedule.add_schedule_commands(sub)
    cli_schedule.add_scheduler_command(sub)
    cli_data.add_data_commands(sub)
    cli_models.add_models_commands(sub)
    cli_deploy.add_deploy_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # jsonschema imports rfc3987_syntax when it is installed (Jupyter's own jsonschema
    # extras bring it) for its optional "iri" format check, and that module builds a Lark
    # grammar at import: 1.7 s of every command's start here. hpcml checks no formats,
    # so its own process goes without (bench/bench_cli.py).
    sys.modules.setdefault("rfc3987_syntax", None)
    args = build_parser().parse_args(argv)
    try:
        code: int = asyncio.run(args.func(args))
        return code
    except HpcmlError as exc:
        print(f"hpcml: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UserInputError) else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
