"""Slurm job states and exit codes → the engine's states: one table for every Slurm backend.

Slurm over SSH reads ``squeue``/``sacct``; FirecREST serves the same ``sacct``/``squeue``
values as JSON (``status.state``, ``status.exitCode``, ``status.interruptSignal``).
Both spellings of a job ended by a signal land here: ``sacct``'s ``ExitCode`` is
``"<code>:<signal>"`` (``"0:9"`` for a job killed by SIGKILL), FirecREST splits it into
``exitCode: 0`` and ``interruptSignal: 9``. Like a shell, we report ``128 + signal``.
"""
from __future__ import annotations

import signal as signal_mod

from ..core.states import RunState

# Slurm state → (engine state, message). Non-terminal states first.
STATE_MAP: dict[str, tuple[RunState, str | None]] = {
    "PENDING": (RunState.QUEUED, None),
    "CONFIGURING": (RunState.QUEUED, None),
    "REQUEUED": (RunState.QUEUED, "requeued by Slurm"),
    "REQUEUE_HOLD": (RunState.QUEUED, "requeued and held by Slurm"),
    "REQUEUE_FED": (RunState.QUEUED, "requeued by Slurm"),
    "RESV_DEL_HOLD": (RunState.QUEUED, "held: reservation deleted"),
    "RESIZING": (RunState.RUNNING, None),
    "RUNNING": (RunState.RUNNING, None),
    "COMPLETING": (RunState.RUNNING, None),
    "SIGNALING": (RunState.RUNNING, None),
    "STAGE_OUT": (RunState.RUNNING, None),
    "SUSPENDED": (RunState.RUNNING, "suspended by Slurm"),
    "STOPPED": (RunState.RUNNING, "stopped by Slurm"),
    "COMPLETED": (RunState.FINISHED, None),
    "FAILED": (RunState.FAILED, None),
    "CANCELLED": (RunState.CANCELLED, "cancelled"),
    "TIMEOUT": (RunState.TIMEOUT, "runtime limit reached"),
    "DEADLINE": (RunState.TIMEOUT, "deadline reached before the job could finish"),
    "OUT_OF_MEMORY": (RunState.FAILED, "out of memory"),
    "NODE_FAIL": (RunState.FAILED, "node failure"),
    "PREEMPTED": (RunState.FAILED, "preempted"),
    "BOOT_FAIL": (RunState.FAILED, "node boot failure"),
    "REVOKED": (RunState.FAILED, "revoked (federation)"),
    "SPECIAL_EXIT": (RunState.FAILED, "special exit"),
    "LAUNCH_FAILED": (RunState.FAILED, "launch failed"),
}

# squeue's compact codes (``%t``), as some FirecREST versions report them.
SHORT_STATES = {
    "PD": "PENDING", "CF": "CONFIGURING", "RQ": "REQUEUED", "RH": "REQUEUE_HOLD",
    "RF": "REQUEUE_FED", "RD": "RESV_DEL_HOLD", "RS": "RESIZING", "R": "RUNNING",
    "CG": "COMPLETING", "SI": "SIGNALING", "SO": "STAGE_OUT", "S": "SUSPENDED",
    "ST": "STOPPED", "CD": "COMPLETED", "F": "FAILED", "CA": "CANCELLED", "TO": "TIMEOUT",
    "DL": "DEADLINE", "OOM": "OUT_OF_MEMORY", "NF": "NODE_FAIL", "PR": "PREEMPTED",
    "BF": "BOOT_FAIL", "RV": "REVOKED", "SE": "SPECIAL_EXIT",
}

_QUIET_REASONS = ("None", "(null)", "Priority", "Resources", "")


def map_state(raw: str, reason: str | None = None) -> tuple[RunState, str | None]:
    """A Slurm state (also "CANCELLED by 1234", "PENDING+", "CD") → engine state and message."""
    word = (raw or "").strip().split()[0].rstrip("+*").upper() if raw and raw.strip() else ""
    word = SHORT_STATES.get(word, word)
    state, message = STATE_MAP.get(word, (RunState.UNKNOWN, f"unknown Slurm state {raw!r}"))
    if word == "CANCELLED" and raw.strip().upper() != word:
        message = raw.strip().lower()  # "cancelled by 1234"
    if state == RunState.QUEUED and reason and reason not in _QUIET_REASONS:
        message = f"pending: {reason}"
    return state, message


def exit_code(code: int | str | None, signal: int | str | None = None) -> int | None:
    """Slurm's (exit code, signal) pair → one exit code: a signal with no code is ``128 + n``."""
    try:
        code_i = None if code in (None, "") else int(code)  # type: ignore[arg-type]
        sig_i = 0 if signal in (None, "") else int(signal)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if sig_i and not code_i:
        return 128 + sig_i
    return code_i


def exit_from_sacct(value: str) -> int | None:
    """``"3:0"`` → 3; ``"0:9"`` (killed by signal 9) → 137."""
    code, _, sig = (value or "").partition(":")
    return exit_code(code, sig or None)


def signal_name(number: int) -> str:
    try:
        return signal_mod.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_message(code: int | None, signal: int | str | None = None) -> str:
    """"exit code 137 (killed by SIGKILL)" / "exit code 3"."""
    msg = f"exit code {code}"
    try:
        sig = int(signal) if signal not in (None, "", 0, "0") else 0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        sig = 0
    if sig:
        msg += f" (killed by {signal_name(sig)})"
    return msg


def sbatch_message(text: str) -> str:
    """Slurm's reason from sbatch's stderr, e.g. "Slurm rejected the job: Batch job
    submission failed: Invalid partition name specified"."""
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    errors = [ln.split("error: ", 1)[1] if "error: " in ln else ln for ln in lines
              if "error" in ln.lower()] or lines
    return "Slurm rejected the job: " + "; ".join(errors[-3:]) if errors else "sbatch failed"
