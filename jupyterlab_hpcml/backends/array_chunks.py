"""A sweep's tasks as Slurm job arrays: split at the site's ``MaxArraySize``.

Slurm refuses an array index at or above ``MaxArraySize`` ("Invalid job array
specification"), so a sweep with more tasks is submitted as several arrays ("chunks"),
each started after the previous one has ended (``--dependency=afterany:<id>``: at most
``max_parallel`` tasks run at once across all of them). In each chunk the element index
is local; the task's global index is ``offset + $SLURM_ARRAY_TASK_ID``
(``batchscript.render_batch_script(array_offset=...)``).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    """One array job: global task indexes ``offset + i`` for each local ``i``."""

    offset: int
    local: tuple[int, ...]  # ascending, each < max_array_size

    @property
    def tasks(self) -> tuple[int, ...]:
        return tuple(self.offset + i for i in self.local)

    def spec(self, max_parallel: int | None = None) -> str:
        """sbatch's ``--array`` value: ``0-5%2``, ``0,3-4``."""
        parts: list[str] = []
        idx = list(self.local)
        i = 0
        while i < len(idx):
            j = i
            while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
                j += 1
            parts.append(str(idx[i]) if i == j else f"{idx[i]}-{idx[j]}")
            i = j + 1
        return ",".join(parts) + (f"%{max_parallel}" if max_parallel else "")


def array_chunks(indexes: Iterable[int], max_array_size: int) -> list[Chunk]:
    """The fewest chunks, in index order, whose local indexes stay below ``max_array_size``
    (0: no limit known)."""
    ordered = sorted(set(indexes))
    if not ordered:
        return []
    if max_array_size <= 0:
        return [Chunk(ordered[0], tuple(i - ordered[0] for i in ordered))]
    chunks: list[Chunk] = []
    current: list[int] = []
    for i in ordered:
        if current and i - current[0] >= max_array_size:
            chunks.append(Chunk(current[0], tuple(t - current[0] for t in current)))
            current = []
        current.append(i)
    chunks.append(Chunk(current[0], tuple(t - current[0] for t in current)))
    return chunks
