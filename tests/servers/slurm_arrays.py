"""Slurm's own syntax for job arrays, as sbatch reads it (for the test servers).

* :func:`parse_array` — ``--array=<indexes>[%<max running>]``: ``0-5``, ``1,3,5``,
  ``1-7:2``, ``0-99%4``; an index at or above ``MaxArraySize`` (slurm.conf, default 1001)
  is refused as slurmctld refuses it.
* :func:`expand_filename` — ``--output``/``--error`` patterns: ``%A`` (the array's job id),
  ``%a`` (the task index), ``%j`` (the job's own id), ``%x`` (job name), ``%u`` (user),
  ``%%``, with an optional zero-padding width (``%3a`` → ``007``).

Checked against Slurm 22.05 on the test cluster: ``sbatch --array=0-1001`` with
MaxArraySize=1001 answers ``sbatch: error: Batch job submission failed: Invalid job array
specification`` (exit 1).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

MAX_ARRAY_SIZE = 1001  # Slurm's default MaxArraySize: indexes 0..1000
INVALID_ARRAY = "Batch job submission failed: Invalid job array specification"

_ITEM = re.compile(r"(\d+)(?:-(\d+)(?::(\d+))?)?")


class InvalidArray(ValueError):
    """sbatch refuses the ``--array`` value (the message is Slurm's)."""


@dataclass(frozen=True)
class ArraySpec:
    indexes: tuple[int, ...]  # ascending, unique
    throttle: int | None  # ``%K``: at most K tasks running at once


def parse_array(value: str, max_array_size: int = MAX_ARRAY_SIZE) -> ArraySpec:
    spec, _, throttle = value.partition("%")
    if throttle and not throttle.isdigit():
        raise InvalidArray(INVALID_ARRAY)
    found: set[int] = set()
    for item in spec.split(","):
        m = _ITEM.fullmatch(item.strip())
        if not m:
            raise InvalidArray(INVALID_ARRAY)
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else first
        step = int(m.group(3)) if m.group(3) else 1
        if last < first or step < 1:
            raise InvalidArray(INVALID_ARRAY)
        # slurmctld: every index must be below MaxArraySize.
        if last >= max_array_size:
            raise InvalidArray(INVALID_ARRAY)
        found.update(range(first, last + 1, step))
    limit = int(throttle) if throttle else None
    return ArraySpec(tuple(sorted(found)), limit or None)


def compact(indexes: list[int], throttle: int | None) -> str:
    """Slurm's own way of writing pending indexes: ``2-5%2``, ``1,3-4``."""
    parts: list[str] = []
    i = 0
    while i < len(indexes):
        j = i
        while j + 1 < len(indexes) and indexes[j + 1] == indexes[j] + 1:
            j += 1
        parts.append(str(indexes[i]) if i == j else f"{indexes[i]}-{indexes[j]}")
        i = j + 1
    return ",".join(parts) + (f"%{throttle}" if throttle else "")


_PATTERN = re.compile(r"%(\d*)([AajxuJ%])")


def expand_filename(pattern: str, *, job_id: str, array_id: str | None = None,
                    task: int | None = None, name: str = "", user: str = "") -> str:
    """An sbatch ``--output``/``--error`` value with its replacement symbols filled in.
    For a job that is not an array, ``%A`` is its job id and ``%a`` is 4294967294
    (Slurm's NO_VAL), as sbatch documents."""
    def one(m: re.Match[str]) -> str:
        width, sym = m.group(1), m.group(2)
        if sym == "%":
            return "%"
        value = {"A": array_id or job_id, "a": str(task) if task is not None else "4294967294",
                 "j": job_id, "J": job_id, "x": name, "u": user}[sym]
        return value.zfill(int(width)) if width and sym in "AajJ" else value

    return _PATTERN.sub(one, pattern)
