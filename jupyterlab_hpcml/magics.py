"""IPython magics: ``%hpc_submit`` and friends, on the same engine and store as the lab.

    %load_ext jupyterlab_hpcml
    %hpc_submit -e train -P epochs=$epochs --set Resources.Runtime=10m
    %hpc_sweep -e train -P lr=0.1,0.01 -P seed=range(0,3) --max-parallel 2
    %hpc_runs --state running
    %hpc_logs RUN --tail 20

The options are those of ``hpcml`` (both parsers are built by :mod:`.cli_args`).
IPython expands ``$var`` and ``{expr}`` in the magic line from the user namespace
before the options are parsed. A mistake (bad option, unknown entry point,
malformed parameter, missing config, …) is reported as one ``UsageError`` line,
without traceback, and nothing is submitted. See docs/magics.md.
"""
from __future__ import annotations

import argparse
import functools
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class

from . import cli_args, run_text

F = TypeVar("F", bound=Callable[..., Any])

#: What a frontend runs (silently) in a new kernel to load the magics when the user enabled
#: "load magics in kernels" in the lab settings; harmless where the package is missing.
AUTOLOAD_CODE = (
    "try:\n"
    "    get_ipython().extension_manager.load_extension('jupyterlab_hpcml')\n"
    "except Exception:\n"
    "    pass\n"
)


class _HelpShown(Exception):
    """``-h`` printed the help; nothing else to do."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as one UsageError line instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} -h)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise UsageError(f"{self.prog}: {(message or 'error').strip()}")
        raise _HelpShown()


def _submit_parser(cell: bool) -> _Parser:
    prog = "%%hpc_submit" if cell else "%hpc_submit"
    p = _Parser(prog=prog, description=(
        "Run the cell body as a run of the project (entry point 'hpcml_cell')" if cell else
        "Submit a run of an MLflow project (the options of `hpcml submit`)"))
    cli_args.add_submit_arguments(p, json=False, entry_point=not cell)
    p.add_argument("--follow", action="store_true",
                   help="print the log while the run lasts (implies --wait)")
    return p


def _parsers() -> dict[str, _Parser]:
    parsers = {"submit": _submit_parser(cell=False), "submit_cell": _submit_parser(cell=True)}

    p = _Parser(prog="%hpc_sweep", description=(
        "Submit a sweep: runs of one entry point over many parameter values "
        "(the options of `hpcml sweep`)"))
    cli_args.add_sweep_arguments(p, json=False)
    parsers["sweep"] = p

    p = _Parser(prog="%hpc_runs", description="Recent runs, newest first")
    cli_args.add_runs_arguments(p, json=False)
    parsers["runs"] = p

    p = _Parser(prog="%hpc_logs", description="A run's stdout (or stderr)")
    cli_args.add_logs_arguments(p)
    parsers["logs"] = p

    for name, what in (("cancel", "Cancel a run (a sweep: its active children)"),
                       ("status", "State and details of a run (or a sweep)")):
        p = _Parser(prog=f"%hpc_{name}", description=what)
        cli_args.add_run_argument(p)
        parsers[name] = p

    p = _Parser(prog="%hpc_rerun", description="Run again, optionally with other parameters")
    cli_args.add_rerun_arguments(p, json=False)
    p.add_argument("--follow", action="store_true",
                   help="print the log while the run lasts (implies --wait)")
    parsers["rerun"] = p
    return parsers


@functools.cache
def parser(name: str) -> _Parser:
    return _parsers()[name]


def _one_line(exc: BaseException) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or \
        type(exc).__name__


def _reported(fn: F) -> F:
    """Engine and input errors become one UsageError line (IPython shows no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        from .core.errors import HpcmlError

        try:
            return fn(*args, **kwargs)
        except _HelpShown:
            return None
        except (HpcmlError, ValidationError, TimeoutError) as exc:
            raise UsageError(f"hpcml: {_one_line(exc)}") from None

    return wrapper  # type: ignore[return-value]


def _parse(name: str, line: str) -> argparse.Namespace:
    try:
        argv = shlex.split(line)
    except ValueError as exc:  # e.g. an unbalanced quote
        raise UsageError(f"{parser(name).prog}: {exc}") from None
    return parser(name).parse_args(argv)


def _print_pieces(pieces: Any) -> None:
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()


@magics_class
class HpcmlMagics(Magics):
    """``%hpc_submit``, ``%%hpc_submit``, ``%hpc_sweep``, ``%hpc_runs``, ``%hpc_logs``,
    ``%hpc_cancel``, ``%hpc_rerun``, ``%hpc_status``."""

    @line_cell_magic
    @_reported
    def hpc_submit(self, line: str, cell: str | None = None) -> Any:
        """Submit a run; returns the Run (also shown as a live view).

        %hpc_submit [PROJECT] [-e ENTRY_POINT] [-P name=value ...] [-c BACKEND_CONFIG]
                    [--set Section.Key=value ...] [--run-name NAME] [--experiment-name NAME]
                    [--wait] [--follow]

        As a cell magic, the cell body runs as the run's command (see docs/magics.md).
        """
        from . import api

        args = _parse("submit_cell" if cell is not None else "submit", line)
        req = cli_args.submit_request(args, cwd=Path.cwd())
        if cell is not None:
            run = api.submit_cell_request(cell, req, header=line)
        else:
            run = api.submit_request(req)
        return self._show(run, args)

    @line_magic
    @_reported
    def hpc_sweep(self, line: str) -> Any:
        """Submit a sweep; returns the Sweep (``.children``, ``.wait()``, ``.best()``,
        ``.to_pandas()``).

        %hpc_sweep [PROJECT] [-e ENTRY_POINT] [-P name=values ...] [--random N [--seed S]]
                   [--from FILE] [--max-parallel K] [-c BACKEND_CONFIG]
                   [--set Section.Key=value ...] [--run-name NAME] [--experiment-name NAME]
                   [--wait]

        Values: 0.1,0.01 | range(0,5) | choice(a,b) | interval(1e-4,1e-1) |
        tag(log,interval(1e-4,1e-1)) | a fixed value; quote 'a,b' for one value.
        """
        from . import api

        args = _parse("sweep", line)
        sweep = api.submit_sweep_request(cli_args.sweep_request(args, cwd=Path.cwd()))
        return self._show_sweep(sweep, args)

    def _show_sweep(self, sweep: Any, args: argparse.Namespace) -> Any:
        print(f"sweep {sweep.id} ({sweep.name}): {len(sweep.record.children)} runs")
        if not args.wait:
            return sweep
        try:
            sweep.wait()
        except KeyboardInterrupt:  # the user stopped waiting; the children go on
            print(f"stopped waiting; sweep {sweep.id} goes on")
            return sweep
        failed = sweep.failed()
        if failed:
            said = "; ".join(f"{r.id} {r.record.state.value}" for r in failed)
            raise UsageError(f"hpcml: sweep {sweep.id}: {len(failed)} of {len(sweep.latest())} "
                             f"children did not finish: {said} (%hpc_rerun {sweep.id} --failed "
                             "re-runs the failed ones)")
        return sweep

    @line_magic
    @_reported
    def hpc_rerun(self, line: str) -> Any:
        """Run again with the same code and settings; returns the new Run. For a sweep
        (an id starting with "s"), ``--failed`` re-runs its failed children; returns the Sweep.

        %hpc_rerun RUN [-P name=value ...] [--set Section.Key=value ...] [--run-name NAME]
                   [--fresh-code] [--wait] [--follow]
        %hpc_rerun SWEEP --failed [-P name=value ...] [--set Section.Key=value ...] [--wait]
        """
        from . import api

        args = _parse("rerun", line)
        if api.is_sweep_id(args.run):
            if args.follow:
                raise UsageError("%hpc_rerun: --follow is for a run, not a sweep")
            return self._show_sweep(api.rerun_sweep_request(
                args.run, cli_args.sweep_rerun_request(args)), args)
        return self._show(api.rerun_request(args.run, cli_args.rerun_request(args)), args)

    def _show(self, run: Any, args: argparse.Namespace) -> Any:
        from .widget import display_run

        display_run(run)
        if not (args.wait or args.follow):
            return run
        try:
            if args.follow:
                _print_pieces(run.iter_logs(follow=True))
            run.wait()
        except KeyboardInterrupt:  # the user stopped waiting; the run goes on
            print(f"stopped waiting; run {run.id} goes on")
            return run
        if run.state != "FINISHED":
            code = "" if run.exit_code is None else f", exit code {run.exit_code}"
            raise UsageError(f"hpcml: run {run.id} ended {run.state.value}{code} "
                             f"(see %hpc_logs {run.id} --stderr)")
        return run

    @line_magic
    @_reported
    def hpc_runs(self, line: str) -> Any:
        """A table of recent runs, newest first.

        %hpc_runs [--state STATE ...] [--limit N] [--project DIR] [-q TEXT] [--archived]
        """
        from . import api

        args = _parse("runs", line)
        return api.runs(cli_args.states(args.state), limit=args.limit, project=args.project,
                        query=args.query, archived=args.archived)

    @line_magic
    @_reported
    def hpc_logs(self, line: str) -> None:
        """Print a run's stdout (or stderr).

        %hpc_logs RUN [--stderr] [--follow] [--tail N]
        """
        from . import api

        args = _parse("logs", line)
        run = api.get_run(args.run)
        stream = "stderr" if args.stderr else "stdout"
        try:
            _print_pieces(run.iter_logs(stream, follow=args.follow, tail=args.tail))
        except KeyboardInterrupt:  # stop following; the run goes on
            print(f"\n(stopped following run {run.id})")

    @line_magic
    @_reported
    def hpc_cancel(self, line: str) -> None:
        """Cancel a run.

        %hpc_cancel RUN
        """
        from . import api

        args = _parse("cancel", line)
        if api.is_sweep_id(args.run):
            sweep = api.get_sweep(args.run).cancel()
            print(f"cancel requested for sweep {sweep.id} "
                  f"({run_text.counts(sweep.record.counts)})")
            return
        run = api.get_run(args.run).cancel()
        print(f"cancel requested for run {run.id} ({run.record.state.value})")

    @line_magic
    @_reported
    def hpc_status(self, line: str) -> None:
        """State, job id, parameters and state history of a run.

        %hpc_status RUN
        """
        from IPython.display import display

        from . import api
        from .widget import RunDetails

        args = _parse("status", line)
        if api.is_sweep_id(args.run):
            print(api.get_sweep(args.run).refresh())
            return
        display(RunDetails(api.get_run(args.run).refresh().record))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyterlab_hpcml``."""
    ipython.register_magics(HpcmlMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Nothing to undo: the magics stay until the kernel ends (as IPython's own)."""
