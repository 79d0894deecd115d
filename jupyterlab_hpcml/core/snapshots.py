"""The code a job runs: a frozen, content-addressed view of the project folder.

``engine/snapshot.py`` makes snapshots; a backend's ``prepare`` copies or uploads the
objects a target lacks and lays the tree out as the run's working directory
(:func:`materialize` for a local directory; :func:`load_snapshot` reads a manifest back).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import NotFound

ProgressCallback = Callable[[int, int], None]  # (bytes_sent, bytes_total)
_ID_RE = re.compile(r"[0-9a-f]{64}")


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
    # e.g. "skipped link.txt: points outside the project"
    notes: list[str] = field(default_factory=list)

    def object_path(self, f: SnapshotFile) -> Path:
        return self.object_dir / f.sha256[:2] / f.sha256

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def load_snapshot(snapshot_id: str, object_dir: Path, manifest_dir: Path) -> Snapshot:
    """The snapshot whose manifest ``engine/snapshot.take_snapshot`` wrote."""
    if not _ID_RE.fullmatch(snapshot_id or ""):  # also keeps the id from naming other paths
        raise NotFound(f"snapshot {snapshot_id!r} not found")
    try:
        data = json.loads((manifest_dir / f"{snapshot_id}.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"snapshot {snapshot_id} not found") from None
    files = [SnapshotFile(**f) for f in data["files"]]
    return Snapshot(id=snapshot_id, files=files, object_dir=object_dir, notes=data.get("notes", []))


def materialize(snapshot: Snapshot, dest: Path) -> None:
    """Copy every file of the snapshot into ``dest`` with its permission bits.

    Copies, not hard links: a program that rewrites its own files must not
    corrupt the shared object store.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for f in snapshot.files:
        target = dest / f.relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(snapshot.object_path(f), target)
        os.chmod(target, f.mode & 0o777)
