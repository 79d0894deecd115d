"""The state of a run's live view, and how it is fetched from the Engine facade.

``RunViewState`` holds what the view shows as traitlets (readable from the kernel):
``state``, ``job_id``, ``elapsed``, ``log_tail``, ``stderr_tail``, ``metrics``, ``done``,
``error``. ``fetch`` brings them up to date with one poll, run on the bridge's loop:
only new log bytes and changed metrics are read. How it looks is ``widget.py``'s job.
"""
from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from traitlets import Bool, Dict, HasTraits, Unicode

from . import run_text

if TYPE_CHECKING:
    from .api import Run
    from .engine.models import RunRecord
    from .engine.service import Engine

LOG_LINES = 12  # lines of the log the view keeps
MAX_METRICS = 8  # metrics with a sparkline
SPARK_POINTS = 60
MAX_LOG_STEP = 256 * 1024  # more new bytes than this: jump to the tail
STREAMS = ("stdout", "stderr")


@dataclass
class Progress:
    """What a view has read so far; only new log bytes and changed metrics are fetched."""

    offsets: dict[str, int] = field(default_factory=dict)
    tails: dict[str, str] = field(default_factory=lambda: dict.fromkeys(STREAMS, ""))
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    # One poll at a time (the task and a blocking update() may overlap); used on the bridge.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def poll(engine: Engine, run_id: str, progress: Progress) -> RunRecord:
    """The run as its backend says now; ``progress`` gets the new log lines and metrics."""
    async with progress.lock:
        record = await engine.current(run_id)
        for stream in STREAMS:
            await _poll_log(engine, run_id, stream, progress)
        if record.mlflow_run_id:
            await _poll_metrics(engine, run_id, progress)
        return record


async def _poll_log(engine: Engine, run_id: str, stream: str, progress: Progress) -> None:
    offset = progress.offsets.get(stream)
    behind = False
    if offset is not None:
        chunk = await engine.read_log(run_id, stream, offset, MAX_LOG_STEP)
        behind = (chunk.size or 0) - chunk.next_offset > MAX_LOG_STEP
    if offset is None or behind:  # first look, or far behind: start from the tail
        chunk = await engine.log_tail(run_id, stream, LOG_LINES)
        progress.tails[stream] = ""
    from .engine.logs import last_lines  # the one "last N lines" (the engine is loaded here)

    progress.offsets[stream] = chunk.next_offset
    progress.tails[stream] = last_lines(progress.tails[stream] + chunk.data, LOG_LINES)


async def _poll_metrics(engine: Engine, run_id: str, progress: Progress) -> None:
    try:
        latest = await engine.metric_keys(run_id)
    except Exception:  # no metrics yet / tracking store busy: next time
        return
    for m in latest[:MAX_METRICS]:
        known = progress.metrics.get(m["key"])
        if known and (known["step"], known["timestamp"]) == (m["step"], m["timestamp"]):
            continue
        hist = await engine.metric_history(run_id, m["key"], max_points=SPARK_POINTS)
        progress.metrics[m["key"]] = {**m, "history": [p["value"] for p in hist["points"]]}


class RunViewState(HasTraits):
    """What the live view of one run shows, as traitlets."""

    run_id = Unicode()
    state = Unicode()
    job_id = Unicode()
    elapsed = Unicode("-")
    log_tail = Unicode()
    stderr_tail = Unicode()
    metrics = Dict()  # key → {"value", "step", "timestamp", "history": [values]}
    done = Bool(False)  # the run ended and the view stopped updating
    error = Unicode()

    def __init__(self, run: Run):
        super().__init__()
        self.run = run
        self.progress = Progress()
        self.apply(run.record)

    def apply(self, record: RunRecord) -> None:
        """Take ``record`` and what ``progress`` has read (also as the run's latest record)."""
        self.run.set_record(record)
        self.run_id = record.id
        self.state = record.state.value
        self.job_id = record.backend_job_id or ""
        self.elapsed = run_text.duration(record)
        self.log_tail = self.progress.tails["stdout"]
        self.stderr_tail = self.progress.tails["stderr"]
        self.metrics = {k: dict(v) for k, v in self.progress.metrics.items()}

    def fetch(self) -> Coroutine[Any, Any, RunRecord]:
        """One poll, to run on the bridge's loop (the engine is found here, in the caller's
        thread: the bridge makes engines from outside its loop only)."""
        return poll(self.run.engine, self.run.id, self.progress)
