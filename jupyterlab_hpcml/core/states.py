"""Run states and the status a backend reports for a job."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class RunState(str, Enum):
    SUBMITTING = "SUBMITTING"
    STAGING = "STAGING"  # its datasets go to the target; no job yet
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    UNKNOWN = "UNKNOWN"  # backend unreachable; never silently FAILED

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {RunState.FINISHED, RunState.FAILED, RunState.CANCELLED, RunState.TIMEOUT}
)


@dataclass
class JobStatus:
    """A job's state as its backend sees it; ``exit_code`` is 128+n for signal n."""

    state: RunState
    exit_code: int | None = None
    message: str | None = None
    # How often the scheduler has requeued the job (Slurm's restart count; None: not told).
    restarts: int | None = None
