"""The exit-code file: what a job's wrapper writes last, read the same way by every backend.

Writers: the local runner (``local_runner.py``, stdlib only, so it spells the name
itself) and the generated job scripts (``batchscript.EXIT_RECORD_SHELL``: Slurm over SSH
and FirecREST, UNICORE). Each writes one JSON object atomically (temporary file + ``mv``)::

    {"exit_code": 137, "timeout": false, "signal": "SIGKILL", "ended_at": 1733370000}

A Slurm job script adds the run's restart count (``"restart": 1``, Slurm's
``SLURM_RESTART_COUNT``): a requeued job that failed to start again must not be read by
the previous run's record (:func:`~.slurm_common.job_status`).

``exit_code`` follows the shell: 128 + n for a program ended by signal n. ``signal`` is the
signal's name when the program or its wrapper was stopped by one (a cancel's SIGTERM).

The reader (:func:`parse_exit_record`) forgives what a person or an older version may have
left: a bare number (``137``), a code as a string, a signal as a number. A file that is
there but says nothing usable is *unreadable*, which is not the same as *missing*: the
job did end, we just cannot tell how.

Array jobs (sweeps): each element writes its own file, ``exit_code.<task>``, next to the
others (:func:`exit_file`), named by the element's Slurm id ``<array>_<task>``.
"""
from __future__ import annotations

import json
import signal as signal_mod
from dataclasses import dataclass
from typing import Any

from ..core.files import META_DIR
from ..core.states import JobStatus, RunState

EXIT_FILE = f"{META_DIR}/exit_code"
# The highest signal number a shell folds into an exit code (128 + n).
_MAX_SIGNAL = 64


@dataclass(frozen=True)
class ExitRecord:
    """One exit-code file, parsed. ``exit_code`` None: there, but unreadable."""

    exit_code: int | None
    signal: str | None = None  # e.g. "SIGTERM": what stopped the job, if a signal did
    timeout: bool = False  # the wrapper itself ended the job at its Runtime limit
    restart: int | None = None  # which run of a requeued Slurm job wrote it (0: the first)

    @property
    def readable(self) -> bool:
        return self.exit_code is not None


def exit_file(task: int | str | None = None) -> str:
    """The file's path in the run directory: ``.hpcml/exit_code``, or per array element
    ``.hpcml/exit_code.<task>``."""
    return EXIT_FILE if task in (None, "") else f"{EXIT_FILE}.{task}"


def parse_exit_record(data: bytes | str | None) -> ExitRecord | None:
    """The file's content → a record; None when there is no file (``data`` None) or it is
    empty (writers are atomic: an empty file is one still being made by hand)."""
    if data is None:
        return None
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    if not text.strip():
        return None
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text.strip()
    if not isinstance(value, dict):
        return ExitRecord(_int(value))  # a bare exit code ("137")
    code = _int(value.get("exit_code"))
    return ExitRecord(code, signal_name(value.get("signal")), value.get("timeout") is True,
                      _int(value.get("restart")))


def record_status(record: ExitRecord | None, *, missing: str) -> JobStatus:
    """How a job ended, from its exit-code file alone (the scheduler no longer knows it,
    or there is none: the local backend). ``missing``: the message when there is no file."""
    if record is None:
        return JobStatus(RunState.FAILED, None, missing)
    if not record.readable:
        return JobStatus(RunState.FAILED, None, "unreadable exit code file")
    if record.timeout:
        return JobStatus(RunState.TIMEOUT, record.exit_code, "runtime limit reached")
    if record.exit_code == 0:
        return JobStatus(RunState.FINISHED, 0)
    return JobStatus(RunState.FAILED, record.exit_code, exit_message(record.exit_code))


def exit_code(code: int | str | None, signal: int | str | None = None) -> int | None:
    """A scheduler's (exit code, signal) pair → one exit code: ended by signal n with no
    code of its own → ``128 + n``, as a shell reports it. None: no usable code."""
    code_i = _int(code)
    sig_i = signal_number(signal) or 0
    if sig_i and not code_i:
        return 128 + sig_i
    return code_i


def exit_message(code: int | None) -> str:
    """``"exit code 137 (killed by SIGKILL)"`` / ``"exit code 3"``: the signal is read back
    from the code (128 + n), so every backend words the same end the same way."""
    msg = f"exit code {code}"
    if code is not None and 128 < code <= 128 + _MAX_SIGNAL:
        msg += f" (killed by {signal_name(code - 128)})"
    return msg


def signal_number(value: int | str | None) -> int | None:
    """9, "9", "KILL", "SIGKILL" → 9; None/0/garbage → None."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip().strip('"').upper()
    if text.isdigit():
        number = int(text)
        return number if 0 < number <= _MAX_SIGNAL else None
    name = text if text.startswith("SIG") else f"SIG{text}"
    try:
        return int(signal_mod.Signals[name])
    except KeyError:
        return None


def signal_name(value: int | str | None) -> str | None:
    """A signal's name ("SIGKILL") from its number or name; None for no signal. An unknown
    number keeps its number ("signal 40")."""
    number = signal_number(value)
    if number is None:
        text = "" if value is None else str(value).strip().strip('"')
        return text if text.upper().startswith("SIG") else None
    try:
        return signal_mod.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None
