"""`hpcml schedule ...` and `hpcml scheduler`: schedules from the command line.

``hpcml schedule`` defines and manages schedules (docs/schedules.md); ``hpcml scheduler``
fires them in the foreground, for when no lab server runs (both may run at once: the run
store decides who fires what). Every command calls the Engine facade only.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine.service import Engine

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _engine(args: argparse.Namespace, *, fire_schedules: bool = False) -> Engine:
    from .engine.service import Engine

    return Engine(data_dir=Path(args.data_dir) if args.data_dir else None,
                  fire_schedules=fire_schedules)


# ---------------------------------------------------------------------------
# hpcml scheduler


async def cmd_scheduler(args: argparse.Namespace) -> int:
    """Fire schedules (and poll runs) until SIGTERM or SIGINT; then close and exit 0."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT, stream=sys.stderr)
    logging.getLogger("jupyterlab_hpcml").setLevel(logging.INFO)  # one line per firing
    engine = _engine(args, fire_schedules=True)
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
