"""The code a job runs: a frozen, content-addressed view of the project folder.

``engine/snapshot.py`` makes snapshots; a backend's ``prepare`` copies or uploads the
objects a target lacks and lays the tree out as the run's working directory.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ProgressCallback = Callable[[int, int], None]  # (bytes_sent, bytes_total)


@dataclass
class SnapshotFile:
    relpath: str  # posix path relative to the project root
    size: int
    mode: int  # st_mode permission bits (0o755 for executables)
    sha256: str


@dataclass
class Snapshot:
    """A frozen view of the project: the manifest plus where each file's content lives."""

    id: str  # == content hash of the manifest
    files: list[SnapshotFile]
    object_dir: Path  # content-addressed store: object_dir / sha256[:2] / sha256
    notes: list[str] = field(default_factory=list)  # e.g. "skipped link.txt: points outside the project"

    def object_path(self, f: SnapshotFile) -> Path:
        return self.object_dir / f.sha256[:2] / f.sha256

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)
