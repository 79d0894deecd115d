"""Deleting a run's files: its local run directory, parameter downloads and snapshot manifest.

Only what belongs to the run alone is removed:
- a local run directory only where the local backend lays it out (``<work dir>/<run id>``,
  a real directory, not a link), so a tampered record cannot name another folder;
- a remote run directory is kept (the backends offer no remove, and a cluster's files are the
  user's to manage): the caller reports where it stays;
- the snapshot manifest only when no other run was made from it (re-runs share snapshots) and
  it was not written recently (a submission of the same code in flight rewrites it before its
  run is stored). File contents in ``objects/`` are shared by every snapshot and are kept.
"""
from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from .models import RunRecord

# A manifest written this recently may belong to a submission not stored yet.
MANIFEST_GRACE_S = 3600.0
_SNAPSHOT_ID = re.compile(r"[0-9a-f]{64}")  # also keeps a record from naming another file


def owned_local_run_dir(run: RunRecord) -> Path | None:
    """The run's local directory if it is one the local backend made for this run."""
    if run.backend != "local" or not run.run_dir:
        return None
    path = Path(run.run_dir)
    if not path.is_absolute() or path.name != run.id:
        return None
    return path


def remove_tree(path: Path) -> bool:
    """Remove a directory tree (never following links out of it); True if it existed."""
    if path.is_symlink() or not path.is_dir():
        return False
    shutil.rmtree(path)  # fd-based: a symlink inside is removed, not followed
    return True


def remove_unused_manifest(snapshot_id: str, manifest_dir: Path,
                           in_use: Callable[[str], bool]) -> bool:
    """Remove ``snapshots/<id>.json`` if no stored run uses it; True if removed."""
    if not _SNAPSHOT_ID.fullmatch(snapshot_id):
        return False
    manifest = manifest_dir / f"{snapshot_id}.json"
    try:
        age = time.time() - manifest.stat().st_mtime
    except FileNotFoundError:
        return False
    if age < MANIFEST_GRACE_S or in_use(snapshot_id):
        return False
    manifest.unlink(missing_ok=True)
    return True


def remove_run_files(run: RunRecord, data_dir: Path) -> tuple[bool, list[str]]:
    """Remove the run's local files; (run directory removed, notes on what was kept)."""
    kept: list[str] = []
    removed = False
    local_dir = owned_local_run_dir(run)
    if local_dir is not None:
        removed = remove_tree(local_dir)
    elif run.run_dir:
        where = run.connection or run.backend
        kept.append(f"run directory kept on {where}: {run.run_dir}")
    # Downloads of URI parameters (project.resolve_command) and the per-run sync lock.
    remove_tree(data_dir / "param-storage" / run.id)
    (data_dir / "locks" / f"sync-{run.id}.lock").unlink(missing_ok=True)
    return removed, kept
