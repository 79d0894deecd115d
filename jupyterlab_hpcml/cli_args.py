"""Options shared by the `hpcml` CLI and the notebook magics, defined once.

``hpcml submit`` and ``%hpc_submit`` take the same options because both build
their parsers from the functions here, and both turn the parsed options into
the same :class:`~jupyterlab_hpcml.engine.requests.SubmitRequest` with
:func:`submit_request`. Nothing here imports the engine at import time.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.errors import Problem, UserInputError

if TYPE_CHECKING:
    from .engine.models import RunRecord
    from .engine.requests import RerunRequest, SubmitRequest, SweepRequest, SweepRerunRequest
    from .engine.service import Engine


def engine(args: argparse.Namespace, *, fire_schedules: bool = False) -> Engine:
    """The engine over ``--data-dir`` (default: the shared one); ``fire_schedules``: this
    process fires due schedules (``hpcml scheduler``)."""
    from .engine.service import Engine

    return Engine(data_dir=Path(args.data_dir) if args.data_dir else None,
                  fire_schedules=fire_schedules)


async def with_engine(args: argparse.Namespace, work: Callable[[Engine], Awaitable[Any]]) -> Any:
    """``work(engine)``, the engine closed after it whatever happens."""
    opened = engine(args)
    try:
        return await work(opened)
    finally:
        await opened.close()


async def wait_run(engine: Engine, run: RunRecord, poll: float = 0.5) -> RunRecord:
    """``run`` once it has ended (``--wait``)."""
    while not run.state.terminal:
        await asyncio.sleep(poll)
        run = await engine.current(run.id)
    return run


RUN_STATES = ("SUBMITTING", "STAGING", "QUEUED", "RUNNING", "FINISHED", "FAILED", "CANCELLED",
              "TIMEOUT", "UNKNOWN")


# ---------------------------------------------------------------------------
# Values


def key_values(items: Sequence[str] | None, flag: str = "-P") -> dict[str, str]:
    """``["a=1", "b=x=y"]`` → ``{"a": "1", "b": "x=y"}``; a malformed item is a UserInputError."""
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserInputError(Problem(f"expected name=value, got {item!r}", key=flag))
        out[name] = value
    return out


def sets(items: Sequence[str] | None) -> list[str]:
    """``--set`` values, checked to be ``Section.Key=value``."""
    for item in items or ():
        if "=" not in item or not item.partition("=")[0]:
            raise UserInputError(Problem(f"expected Section.Key=value, got {item!r}", key="--set"))
    return list(items or ())


def config_path(given: str | None, cwd: Path | None = None) -> str | None:
    """A config path as typed: relative to ``cwd`` (default: the current folder) if it exists
    there, else left relative so that the engine looks it up in the project."""
    if given is None:
        return None
    here = Path(given).expanduser()
    if not here.is_absolute() and cwd is not None:
        here = cwd / here
    return str(here.resolve()) if here.exists() else given


def states(items: Sequence[str] | None) -> list[str] | None:
    """``--state`` values, upper-cased (``running`` works too)."""
    return [s.upper() for s in items] if items else None


# ---------------------------------------------------------------------------
# Argument definitions


def add_submit_arguments(p: argparse.ArgumentParser, *, json: bool = True,
                         entry_point: bool = True, param_help: str | None = None,
                         sweep: bool = False, wait: bool = True,
                         run_name_help: str | None = None) -> None:
    """``[PROJECT] -e -c --experiment-name`` and the run options of :func:`add_run_options`."""
    p.add_argument("project", nargs="?", default=".",
                   help="project folder, or a folder below it (default: the current folder)")
    if entry_point:
        p.add_argument("-e", "--entry-point", default="main")
    p.add_argument("-c", "--backend-config", help="backend config file (default: local backend)")
    p.add_argument("--experiment-name")
    add_run_options(p, json=json, param_help=param_help, sweep=sweep, wait=wait,
                    run_name_help=run_name_help)


def add_run_options(p: argparse.ArgumentParser, *, json: bool = True,
                    param_help: str | None = None, sweep: bool = False, wait: bool = True,
                    run_name_help: str | None = None) -> None:
    """What a submission and a re-run share: -P, --set, --run-name, --wait (and --json)."""
    p.add_argument("-P", "--param", action="append", metavar="NAME=VALUE",
                   help=param_help or "a parameter of the entry point (repeatable)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override the backend config for this run, e.g. Resources.Nodes=2")
    p.add_argument("--run-name", metavar="TEMPLATE" if run_name_help else None,
                   help=run_name_help)
    data = p.add_mutually_exclusive_group()
    data.add_argument("--data", action="append", metavar="NAME",
                      help="stage only this dataset of datasets.yaml (repeatable; default: all)")
    data.add_argument("--no-data", action="store_true", help="stage no dataset")
    if wait:
        p.add_argument("--wait", action="store_true", help=(
            "wait until every child ended; exit 0 only if all FINISHED" if sweep else
            "wait for the end; exit 0 only if FINISHED"))
    if json:
        p.add_argument("--json", action="store_true", help=(
            "print the sweep record, its children as full run records, as JSON" if sweep
            else "print the run record as JSON"))


def add_sweep_arguments(p: argparse.ArgumentParser, *, json: bool = True) -> None:
    """``hpcml sweep``: the submit options, -P taking sweep values (override grammar), and
    how the points are made (grid by default, --random, --from) and run (--max-parallel)."""
    add_submit_arguments(p, json=json, param_help=(
        "a parameter's values: 0.1,0.01 | range(0,5) | choice(a,b) | interval(1e-4,1e-1) | "
        "tag(log,interval(1e-4,1e-1)) | a fixed value; quote 'a,b' for one value "
        "(repeatable)"), sweep=True)
    p.add_argument("--random", type=int, metavar="N",
                   help="draw N random points instead of the grid")
    p.add_argument("--seed", type=int, help="seed of the random draw (recorded)")
    p.add_argument("--from", dest="rows_file", metavar="FILE",
                   help="the points as rows of a .csv (header: parameter names) or .json file")
    p.add_argument("--max-parallel", type=int, metavar="K",
                   help="children running at once (default: no cap; local backend: "
                   "the machine's CPUs)")


def add_rerun_arguments(p: argparse.ArgumentParser, *, json: bool = True) -> None:
    p.add_argument("run", help="run id or a unique prefix of it (or a sweep id: s...)")
    p.add_argument("--fresh-code", action="store_true", help="snapshot the project again")
    p.add_argument("--failed", action="store_true",
                   help="for a sweep: re-run only its failed children "
                   "(without it: every ended one)")
    add_run_options(p, json=json)


def add_runs_arguments(p: argparse.ArgumentParser, *, json: bool = True) -> None:
    p.add_argument("--state", action="append",
                   choices=[*RUN_STATES, *(s.lower() for s in RUN_STATES)])
    p.add_argument("--project")
    p.add_argument("-q", "--query", help="text to look for in name, id, entry point, job id")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--archived", action="store_true",
                   help="list archived runs too (they are left out by default)")
    if json:
        p.add_argument("--json", action="store_true")


def add_logs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run id or a unique prefix of it")
    p.add_argument("--stderr", action="store_true")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--tail", type=int, metavar="N")


def add_run_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run id or a unique prefix of it")


def add_delete_arguments(p: argparse.ArgumentParser) -> None:
    add_run_argument(p)
    p.add_argument("--mlflow", action="store_true",
                   help="also delete the run's MLflow run (MLflow's soft delete; kept by default)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def archived_filter(include: bool) -> bool | None:
    """The store's ``archived`` filter for "archived runs too" (None: both; False: hidden)."""
    return None if include else False


# ---------------------------------------------------------------------------
# Requests


def submit_request(args: argparse.Namespace, cwd: Path | None = None) -> SubmitRequest:
    """The SubmitRequest for parsed :func:`add_submit_arguments` options; relative paths
    start at ``cwd`` (default: the current folder)."""
    from .engine.requests import SubmitRequest

    base = Path(cwd) if cwd is not None else Path.cwd()
    return SubmitRequest(
        project=str((base / Path(args.project).expanduser()).resolve()),
        entry_point=getattr(args, "entry_point", None) or "main",
        parameters=key_values(args.param, "-P"),
        backend_config=config_path(args.backend_config, base),
        overrides=sets(args.set),
        run_name=args.run_name,
        experiment_name=args.experiment_name,
        data=data_names(args),
    )


def data_names(args: argparse.Namespace) -> list[str] | None:
    """``--data`` / ``--no-data`` as a request's ``data`` (None: every declared dataset)."""
    return [] if args.no_data else args.data


def sweep_request(args: argparse.Namespace, cwd: Path | None = None) -> SweepRequest:
    """The SweepRequest for parsed :func:`add_sweep_arguments` options; the rows of
    ``--from`` are read here (the file is on this machine, relative to ``cwd``)."""
    from .engine.requests import SweepRequest
    from .engine.service import Engine

    base = Path(cwd) if cwd is not None else Path.cwd()
    single = submit_request(args, base)
    rows = None
    if args.rows_file:
        rows = Engine.sweep_rows(base / Path(args.rows_file).expanduser())
    return SweepRequest(
        **single.model_dump(), random=args.random, seed=args.seed, rows=rows,
        rows_source=args.rows_file, max_parallel=args.max_parallel)


def sweep_rerun_request(args: argparse.Namespace) -> SweepRerunRequest:
    """``rerun SWEEP`` options; those that only a run takes are refused (nothing is done)."""
    from .engine.requests import SweepRerunRequest

    for flag, given in (("--fresh-code", args.fresh_code), ("--run-name", args.run_name),
                        ("--data", args.data), ("--no-data", args.no_data)):
        if given:
            raise UserInputError(Problem(
                "only a run takes it: a sweep's children re-run with the sweep's snapshot "
                "and names", key=flag))
    return SweepRerunRequest(failed=args.failed, parameters=key_values(args.param, "-P"),
                             overrides=sets(args.set))


def rerun_request(args: argparse.Namespace) -> RerunRequest:
    from .engine.requests import RerunRequest

    if getattr(args, "failed", False):
        raise UserInputError(Problem(f"only a sweep takes it (an id starting with 's'), "
                                     f"not run {args.run!r}", key="--failed"))
    return RerunRequest(parameters=key_values(args.param, "-P"), overrides=sets(args.set),
                        fresh_code=args.fresh_code, run_name=args.run_name,
                        data=data_names(args))


def confirm(question: str) -> bool:
    """Ask on the terminal; anything but y/yes (or no terminal input) is no."""
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        return input().strip().lower() in ("y", "yes")
    except EOFError:
        return False
