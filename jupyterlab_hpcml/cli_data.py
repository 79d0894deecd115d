"""`hpcml data ls|stage|rm`: a project's datasets from the command line (docs/data.md).

Every command calls the Engine facade only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import cli_args, run_text
from .core.errors import UserInputError
from .run_text import fmt_time

if TYPE_CHECKING:
    from .engine.data_service import DataView

T = TypeVar("T")
HEADER = ("DATASET", "VERSION", "SIZE", "FILES", "NOW", "STAGED", "RUNS")
PROGRESS_SECONDS = 0.5


def _project(args: argparse.Namespace) -> Path:
    return (Path.cwd() / Path(args.project).expanduser()).resolve()


def _config(args: argparse.Namespace) -> str | None:
    return cli_args.config_path(args.backend_config, Path.cwd())


def size_text(nbytes: int | None) -> str:
    from .engine.data import size_text as engine_size_text

    return "-" if nbytes is None else engine_size_text(nbytes)


def print_overview(view: DataView) -> None:
    print(f"project {view.project} on {view.connection} ({view.backend})")
    rows = []
    for ds in view.datasets:
        where = f"mapped to {ds.mapped_to}" if ds.mapped_to else f"{ds.source} -> {ds.path}"
        rows.append((ds.name, where, "", "", "", "", ""))
        for v in ds.versions:
            runs = ", ".join(r.id for r in v.runs[:3]) + (" …" if len(v.runs) > 3 else "")
            rows.append(("", v.digest[:12], size_text(v.size), str(v.files or "-"),
                         "yes" if v.current else "", fmt_time(v.staged_at) if v.staged
                         else "", runs or "-"))
        if ds.note:
            rows.append(("", f"({ds.note})", "", "", "", "", ""))
    for v in view.other_staged:
        rows.append(("(other)", v.digest[:12], size_text(v.size), str(v.files), "",
                     fmt_time(v.staged_at), "-"))
    print(run_text.table(rows, HEADER))
    for note in view.notes:
        print(f"note: {note}")


async def cmd_ls(args: argparse.Namespace) -> int:
    engine = cli_args.engine(args)
    try:
        view = await engine.data_overview(_project(args), _config(args))
    finally:
        await engine.close()
    if args.json:
        print(json.dumps(view.model_dump(mode="json"), indent=2))
    else:
        print_overview(view)
    return 0


def progress_line(d: dict[str, Any]) -> str:
    """One line of staging progress (``StagingProgress.as_dict``)."""
    total = d["total_bytes"]
    share = d["sent_bytes"] / total if total else 1.0
    bar = "#" * int(share * 30)
    eta = f", {d['eta']:.0f} s left" if d["eta"] is not None else ""
    return (f"{d['dataset'] or '…':<16} [{bar:<30}] {size_text(d['sent_bytes'])}/"
            f"{size_text(total)}, {d['sent_files']}/{d['total_files']} files, "
            f"{size_text(int(d['rate']))}/s{eta}")


async def with_progress(work: Awaitable[T], progress: Callable[[], list[dict[str, Any]]]
                        ) -> T:
    """Await ``work``, showing ``progress()`` (staging progress dicts) on a terminal."""
    task = asyncio.ensure_future(work)
    shown = False
    while not task.done():
        await asyncio.wait({task}, timeout=PROGRESS_SECONDS)
        now = progress()
        if now and sys.stderr.isatty():
            print(f"\r{progress_line(now[0])}", end="", file=sys.stderr, flush=True)
            shown = True
    if shown:
        print(file=sys.stderr)
    return task.result()


async def cmd_stage(args: argparse.Namespace) -> int:
    from .engine.data import StagingProgress

    engine = cli_args.engine(args)
    progress = StagingProgress()
    try:
        uses = await with_progress(engine.stage_data(
            _project(args), _config(args), args.names or None, progress=progress),
            lambda: [progress.as_dict()])
    finally:
        await engine.close()
    for use in uses:
        print(f"{use.name}: version {use.digest[:12]} ({size_text(use.size)}, {use.files} "
              f"files) at {use.location}; sent {size_text(use.sent_bytes)} in "
              f"{use.sent_files} files")
    return 0


async def cmd_rm(args: argparse.Namespace) -> int:
    engine = cli_args.engine(args)
    try:
        view = await engine.data_overview(_project(args), _config(args), current=False)
        ds = next((d for d in view.datasets if d.name == args.name), None)
        if ds is None:
            raise UserInputError(f"no dataset {args.name!r} in {view.project}")
        digests = [v.digest for v in [*ds.versions, *view.other_staged]
                   if v.staged and v.digest.startswith(args.version)]
        if len(set(digests)) != 1:
            raise UserInputError(
                f"{'no' if not digests else 'more than one'} staged version of {args.name} "
                f"on {view.connection} starts with {args.version!r}")
        await engine.remove_data_version(_project(args), _config(args), digests[0])
    finally:
        await engine.close()
    print(f"removed {args.name} version {digests[0][:12]} from {view.connection}")
    return 0


async def cmd_gc(args: argparse.Namespace) -> int:
    engine = cli_args.engine(args)
    try:
        removed = await engine.collect_data(_project(args), _config(args),
                                            max_age=args.older_than * 86400.0)
    finally:
        await engine.close()
    for digest in removed:
        print(f"removed version {digest[:12]}")
    print(f"{len(removed)} unused version(s) removed")
    return 0


def add_data_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    data = sub.add_parser("data", help="a project's datasets: list, stage ahead, free space")
    cmds = data.add_subparsers(dest="data_command", required=True)

    def command(name: str, help: str, func: Callable[[argparse.Namespace], Awaitable[int]]
                ) -> argparse.ArgumentParser:
        p = cmds.add_parser(name, help=help)
        p.add_argument("-c", "--backend-config",
                       help="backend config file: its target (default: local backend)")
        p.set_defaults(func=func)
        return p

    p = command("ls", "datasets, their versions, where staged, the runs that read each",
                cmd_ls)
    p.add_argument("project", nargs="?", default=".")
    p.add_argument("--json", action="store_true", help="print the overview as JSON")
    p = command("stage", "stage datasets to the config's target now, with progress", cmd_stage)
    p.add_argument("project", nargs="?", default=".")
    p.add_argument("names", nargs="*", metavar="NAME", help="default: every declared dataset")
    p = command("rm", "free a staged version on the config's target (not while in use)",
                cmd_rm)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--version", required=True, metavar="DIGEST",
                   help="the version's digest, or a unique prefix of it")
    p.add_argument("--project", default=".", help="the project (default: the current folder)")
    p = command("gc", "free staged versions no stored run read (runs' staging does it daily "
                "for versions older than 14 days)", cmd_gc)
    p.add_argument("project", nargs="?", default=".")
    p.add_argument("--older-than", type=float, default=14.0, metavar="DAYS",
                   help="only versions staged longer ago than this (default: 14)")
