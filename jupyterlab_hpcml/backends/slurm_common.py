"""What every backend that speaks Slurm knows of it, written once.

* **States**: :data:`STATE_MAP`/:func:`map_state`: ``squeue``/``sacct`` words (also
  "CANCELLED by 1234", "PENDING+", squeue's compact "CD") → the engine's states.
* **Exit codes with signals**: ``sacct``'s ``ExitCode`` is ``"<code>:<signal>"`` (``"0:9"``
  for a job killed by SIGKILL); FirecREST splits the same value into ``exitCode: 0`` and
  ``interruptSignal: 9``. Both become :class:`SlurmJob` and then, like a shell, ``128 + n``.
* **How a job ended**: :func:`job_status` weighs what Slurm says against the job's own
  exit-code file (:mod:`.exitrecord`) with one set of rules, so that Slurm over SSH and
  FirecREST report the same state, exit code and message for the same job.
* **Job ids**: ``123``, an array element ``123_4``, a heterogeneous component ``123+1``
  (:data:`JOB_ID`, :func:`array_task`); a job list indexed by id with the elements of an
  array summed up as one job (:func:`index_jobs`) for a run that is a whole array; squeue's
  line for pending elements "123_[2-5%2]" expanded (:func:`array_elements`).
* **A sweep as job arrays**: its task indexes split by the site's MaxArraySize
  (:func:`array_chunks`: offset + indexes per array) and written as ``--array`` ranges
  (:func:`array_spec`), the same for Slurm over SSH and FirecREST.
* **Slurm commands' answers**: sbatch's refusals as a user message (:func:`sbatch_message`),
  scancel on a job that has ended (:func:`cancel_moot`), slurmctld away (:func:`slurm_transient`).

The job script itself is rendered by :mod:`.batchscript`.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..core.states import JobStatus, RunState
from .exitrecord import ExitRecord, exit_code, exit_message, record_status, signal_number

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
    word = _word(raw)
    state, message = STATE_MAP.get(word, (RunState.UNKNOWN, f"unknown Slurm state {raw!r}"))
    if word == "CANCELLED" and len(raw.split()) > 1:
        message = raw.strip().lower()  # "cancelled by 1234"
    if state == RunState.QUEUED and reason and reason not in _QUIET_REASONS:
        message = f"pending: {reason}"
    return state, message


# ---------------------------------------------------------------------- job ids

JOB_ID = re.compile(r"[0-9]+(_[0-9]+)?(\+[0-9]+)?")  # 123, 123_4 (array element), 123+1 (het)


def array_task(job_id: str) -> tuple[str, int | None]:
    """``"123_4"`` → ("123", 4); ``"123"`` → ("123", None)."""
    base, sep, task = job_id.partition("_")
    return (base, int(task)) if sep and task.isdigit() else (job_id, None)


_PENDING_ELEMENTS = re.compile(r"([0-9]+)_\[([0-9,\-:]+)(?:%[0-9]+)?\]")


def array_elements(job_id: str, limit: int = 100_000) -> list[str]:
    """squeue's line for an array's elements that have not started yet, ``"123_[2-5%2]"``
    or ``"123_[1,3-4]"``, as element ids ["123_2", "123_3", ...]; any other id as itself.
    (``squeue -r`` lists them one by one; this is for the compact form.)"""
    m = _PENDING_ELEMENTS.fullmatch(job_id)
    if not m:
        return [job_id]
    out: list[str] = []
    for part in m.group(2).split(","):
        bounds, _, step = part.partition(":")
        lo, _, hi = bounds.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()) or (step and not step.isdigit()):
            return [job_id]
        first, last = int(lo), int(hi or lo)
        for i in range(first, last + 1, max(1, int(step or 1))):
            out.append(f"{m.group(1)}_{i}")
            if len(out) >= limit:
                return out
    return out


def array_chunks(indexes: Sequence[int], max_array_size: int) -> list[tuple[int, list[int]]]:
    """A sweep's task indexes as job arrays a site accepts: [(offset, [index in the array,
    ...])], each array's indexes below ``max_array_size`` (Slurm's MaxArraySize bounds the
    index, not the count); task = offset + index."""
    limit = max(1, int(max_array_size))
    out: list[tuple[int, list[int]]] = []
    for i in sorted(set(indexes)):
        if not out or i - out[-1][0] >= limit:
            out.append((i, []))
        out[-1][1].append(i - out[-1][0])
    return out


def array_spec(indexes: Sequence[int]) -> str:
    """[0, 1, 2, 5] → "0-2,5" (sbatch's --array)."""
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)


# Live states first: while one element runs, so does the array.
_ARRAY_LIVE = ("RUNNING", "COMPLETING", "CONFIGURING", "PENDING", "REQUEUED", "SUSPENDED")
# Then the worst end: one cancelled or failed element decides for the array.
_ARRAY_BAD = ("CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "FAILED")


def array_state(states: Iterable[str]) -> str:
    """The state of a whole job array from its elements' Slurm states."""
    words = {word for s in states if (word := _word(s))}
    for word in (*_ARRAY_LIVE, *_ARRAY_BAD):
        if word in words:
            return word
    if words == {"COMPLETED"}:
        return "COMPLETED"
    return sorted(words)[0] if words else ""


def _word(raw: str) -> str:
    word = raw.strip().split()[0].rstrip("+*").upper() if raw and raw.strip() else ""
    return SHORT_STATES.get(word, word)


# ---------------------------------------------------------------------- how a job ended


@dataclass(frozen=True)
class SlurmJob:
    """What Slurm says of one job, however it was asked (squeue, sacct, FirecREST)."""

    state: str  # Slurm's word, as reported ("CANCELLED by 1000", "CD", "PENDING")
    reason: str | None = None  # squeue's %r / FirecREST's stateReason
    code: int | None = None  # the batch script's return code, if Slurm has it
    signal: int | None = None  # the signal that ended it (sacct "0:9" → 9)
    restarts: int | None = None  # how often Slurm requeued it (squeue's RestartCnt)
    requeueable: bool = False  # Slurm requeues it when preempted (squeue's Requeue: 1)

    @classmethod
    def from_sacct(cls, state: str, exit_field: str = "", reason: str | None = None) -> SlurmJob:
        """``sacct -o State,ExitCode`` values: ``"FAILED"``, ``"0:9"``."""
        code, _, sig = (exit_field or "").partition(":")
        return cls(state, reason, _int(code), signal_number(sig or None))


def job_status(job: SlurmJob | None, record: ExitRecord | None = None, *,
               forgotten: RunState = RunState.FAILED) -> JobStatus:
    """A Slurm job's status from Slurm's word (``job``; None: Slurm has no record of it)
    and the job's exit-code file (``record``; None: none, or not read).

    The exit code is the file's when it has one (it is the program's own, also there when
    accounting is off), else Slurm's: ``128 + n`` for a job ended by signal n. A job Slurm
    no longer knows ends as its file says; without one it is ``forgotten`` (FAILED where
    Slurm's accounting was asked and has no record; UNKNOWN where it could not be asked).
    """
    if job is None:
        if record is None and forgotten != RunState.FAILED:
            return JobStatus(forgotten, None, "Slurm does not know this job any more and it "
                             "recorded no exit code")
        return record_status(record, missing="the job is no longer known to Slurm and left "
                             "no exit code")
    state, message = map_state(job.state, job.reason)
    restarts = job.restarts
    if _word(job.state) == "PREEMPTED" and job.requeueable:
        # Still in the queue and requeueable: Slurm puts it back (Resources.Requeue).
        return JobStatus(RunState.QUEUED, None, "preempted: to be requeued", restarts)
    if not state.terminal:
        if restarts and state == RunState.QUEUED:
            message = f"requeued (restart {restarts})"
        return JobStatus(state, None, message, restarts)
    slurm_code = exit_code(job.code, job.signal)
    if record is not None and record.restart is not None and (restarts or 0) > record.restart:
        # An earlier run's record (an admin's requeue ended it by SIGTERM): this run of the
        # requeued job ended without writing one, e.g. slurmd refused to start it.
        record = None
        message = "; ".join(filter(None, [message, f"restart {restarts} recorded no exit code"]))
    if record is not None and record.readable:
        code: int | None = record.exit_code
    elif state == RunState.FAILED and slurm_code == 0:
        code = None  # e.g. NODE_FAIL "0:0": the program left no code of its own
    else:
        code = slurm_code
    if state == RunState.FINISHED and code:
        return JobStatus(RunState.FAILED, code, exit_message(code), restarts)
    if state == RunState.FAILED:
        detail = exit_message(code) if code is not None else None
        return JobStatus(state, code, "; ".join(filter(None, [message, detail])) or "Slurm: FAILED",
                         restarts)
    return JobStatus(state, code, message, restarts)


def index_jobs(listed: Iterable[tuple[str, SlurmJob]]) -> dict[str, SlurmJob]:
    """Slurm's job list by job id (the first entry of an id wins), plus one entry per job
    array under the array's own id: its elements summed up (:func:`array_state`, with the
    exit code of the first element in that state), for a run that is a whole array."""
    out: dict[str, SlurmJob] = {}
    arrays: dict[str, list[SlurmJob]] = {}
    for job_id, job in listed:
        out.setdefault(job_id, job)
        base, task = array_task(job_id)
        if task is not None:
            arrays.setdefault(base, []).append(job)
    for base, elements in arrays.items():
        state = array_state(e.state for e in elements)
        first = next((e for e in elements if _word(e.state) == state), None)
        out.setdefault(base, SlurmJob(state, None, first.code if first else None,
                                      first.signal if first else None))
    return out


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip()) if text not in (None, "") else None
    except ValueError:
        return None




# scancel on a job that ended already or that Slurm never had: nothing left to cancel.
_SCANCEL_GONE = ("already completing or completed", "Invalid job id specified")
# sbatch/scancel failures that say nothing about the request (slurmctld busy or away).
_TRANSIENT = ("Socket timed out", "Unable to contact slurm controller",
              "Zero Bytes were transmitted", "temporarily unable", "Connection refused",
              "Resource temporarily unavailable", "Error executing Slurm command")


def cancel_moot(message: str) -> bool:
    """Whether scancel's complaint only says the job has ended (or never was)."""
    return any(g in message for g in _SCANCEL_GONE)


def slurm_transient(message: str) -> bool:
    """Whether a Slurm command's failure is slurmctld's trouble, not the request's."""
    low = message.lower()
    return any(t.lower() in low for t in _TRANSIENT)


def sbatch_message(text: str) -> str:
    """Slurm's reason from sbatch's stderr, e.g. "Slurm rejected the job: Batch job
    submission failed: Invalid partition name specified"."""
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    errors = [ln.split("error: ", 1)[1] if "error: " in ln else ln for ln in lines
              if "error" in ln.lower()] or lines
    return "Slurm rejected the job: " + "; ".join(errors[-3:]) if errors else "sbatch failed"
