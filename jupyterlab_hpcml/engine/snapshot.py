"""Project snapshots: which files, their content-addressed copies, and the code identity."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..backends.base import Snapshot


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
