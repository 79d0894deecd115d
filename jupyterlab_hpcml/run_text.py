"""Runs as text, the same in the CLI, the Python API and the notebook views: times,
durations and the table of runs (``hpcml runs``, ``%hpc_runs``, ``print(runs())``); a
sweep as one line of that table, and as a summary with its children (``hpcml show SWEEP``)."""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine.models import RunRecord, SweepRecord, SweepView

HEADER = ("ID", "NAME", "ENTRY", "BACKEND", "JOB", "STATE", "SUBMITTED", "DURATION")
CHILD_HEADER = ("#", "ID", "STATE", "EXIT", "JOB", "PARAMETERS", "DURATION")
# Counts by state in this order: how far a sweep got, then what went wrong.
_COUNT_ORDER = ("FINISHED", "RUNNING", "QUEUED", "STAGING", "SUBMITTING", "UNKNOWN", "FAILED",
                "TIMEOUT", "CANCELLED")


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


def table(rows: Iterable[tuple[str, ...]], header: tuple[str, ...] = HEADER) -> str:
    """``header`` and ``rows`` in aligned columns."""
    lines = [header, *rows]
    widths = [max(len(str(x)) for x in col) for col in zip(*lines, strict=True)]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                     for row in lines)


# ---------------------------------------------------------------------------
# Sweeps


def counts(by_state: Mapping[str, int]) -> str:
    """``{"FINISHED": 3, "FAILED": 1}`` → ``3 FINISHED, 1 FAILED``."""
    known = [s for s in _COUNT_ORDER if by_state.get(s)]
    others = sorted(s for s in by_state if s not in _COUNT_ORDER and by_state[s])
    return ", ".join(f"{by_state[s]} {s}" for s in [*known, *others]) or "no children"


def sweep_state(sweep: SweepRecord) -> str:
    return sweep.state.value if sweep.state is not None else "SUBMITTING"


def sweep_row(sweep: SweepRecord) -> tuple[str, ...]:
    """A sweep as one line of the runs table: its children counted by state."""
    end = sweep.ended_at if sweep.state is not None and sweep.state.terminal else None
    return (sweep.id, f"{sweep.name} [sweep of {sweep.definition.points}]", sweep.entry_point,
            sweep.backend,
            ",".join(sweep.array_jobs) or "-",
            f"{sweep_state(sweep)} ({counts(sweep.counts)})", fmt_time(sweep.created_at),
            fmt_seconds((end or time.time()) - sweep.created_at))


def latest_attempts(children: Sequence[RunRecord]) -> list[RunRecord]:
    """The last attempt of each point (a re-run of a failed child replaces it), by point."""
    latest: dict[int, RunRecord] = {}
    for child in sorted(children, key=lambda c: (c.sweep_index or 0, c.created_at)):
        latest[child.sweep_index or 0] = child
    return [latest[i] for i in sorted(latest)]


def varying(children: Sequence[RunRecord]) -> list[str]:
    """The parameters whose values differ between children (all of them for one child)."""
    names = list(dict.fromkeys(k for c in children for k in c.parameters))
    if len(children) < 2:
        return names
    return [n for n in names if len({c.parameters.get(n) for c in children}) > 1]


def child_rows(children: Sequence[RunRecord]) -> list[tuple[str, ...]]:
    shown = varying(children)
    return [(str(c.sweep_index if c.sweep_index is not None else "-"), c.id,
             c.state.value + (" (re-run)" if c.rerun_of else ""),
             "-" if c.exit_code is None else str(c.exit_code), c.backend_job_id or "-",
             " ".join(f"{n}={c.parameters.get(n, '')}" for n in shown), duration(c))
            for c in children]


def sweep_summary(view: SweepView) -> str:
    """A sweep's definition, state and children, as ``hpcml sweep``/``show`` print it."""
    d = view.definition
    how = d.mode + (f" of {d.samples} (seed {d.seed})" if d.mode == "random" else "") + (
        f" from {d.rows_source}" if d.rows_source else "")
    cap = f"max-parallel {view.max_parallel}" if view.max_parallel else "no max-parallel"
    lines = [
        f"sweep {view.id} ({view.name}): {d.points} runs, {how}, {cap}",
        f"  state: {sweep_state(view)} ({counts(view.counts)})",
        *_latest_line(view.children),
        f"  project: {view.project_path}, entry point {view.entry_point}",
        f"  backend: {view.backend}" + (f" ({view.connection})" if view.connection else "")
        + (f", array jobs {', '.join(view.array_jobs)}" if view.array_jobs else ""),
        "  values: " + (" ".join(f"{k}={v}" for k, v in d.parameters.items()) or "-"),
        f"  mlflow: experiment {view.mlflow_experiment_id or '-'}, "
        f"parent run {view.mlflow_run_id or '-'}",
        f"  submitted: {fmt_time(view.created_at)}",
    ]
    lines += [f"  note: {note}" for note in view.notes]
    # The children's own notes once each (the same config gives each child the same note).
    lines += [f"  note: {note}" for note in dict.fromkeys(
        n for c in view.children for n in c.notes if n not in view.notes)]
    return "\n".join(lines) + "\n\n" + table(child_rows(view.children), CHILD_HEADER)


def _latest_line(children: Sequence[RunRecord]) -> list[str]:
    """With re-runs, how the last attempt of each point stands (earlier ones still count
    in the sweep's state)."""
    latest = latest_attempts(children)
    if len(latest) == len(children):
        return []
    by_state: dict[str, int] = {}
    for c in latest:
        by_state[c.state.value] = by_state.get(c.state.value, 0) + 1
    return [f"  last attempts: {counts(by_state)} (of {len(latest)} points)"]
