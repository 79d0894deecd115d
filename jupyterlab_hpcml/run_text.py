"""Runs as text, the same in the CLI, the Python API and the notebook views: times,
durations and the table of runs (``hpcml runs``, ``%hpc_runs``, ``print(runs())``)."""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine.models import RunRecord

HEADER = ("ID", "NAME", "ENTRY", "BACKEND", "JOB", "STATE", "SUBMITTED", "DURATION")


def fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def fmt_seconds(seconds: float | None) -> str:
    """``h:mm:ss``, or ``-`` for None."""
    if seconds is None:
        return "-"
    secs = max(0, int(seconds))
    return f"{secs // 3600}:{secs % 3600 // 60:02d}:{secs % 60:02d}"


def elapsed_seconds(record: RunRecord) -> float | None:
    """Seconds since the job started running (until it ended); None before it starts."""
    start = record.started_at
    return None if not start else (record.ended_at or time.time()) - start


def duration(record: RunRecord) -> str:
    return fmt_seconds(elapsed_seconds(record))


def table_row(record: RunRecord) -> tuple[str, ...]:
    return (record.id, record.name, record.entry_point, record.backend,
            record.backend_job_id or "-",
            record.state.value + (" (archived)" if record.archived else ""),
            fmt_time(record.created_at), duration(record))


def table(rows: Iterable[tuple[str, ...]]) -> str:
    """``HEADER`` and ``rows`` in aligned columns."""
    lines = [HEADER, *rows]
    widths = [max(len(str(x)) for x in col) for col in zip(*lines, strict=True)]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                     for row in lines)
