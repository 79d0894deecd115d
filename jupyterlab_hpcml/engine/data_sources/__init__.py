"""Where a dataset's files come from, fetched to this machine when they are not local:
one module per kind of remote source (``https``, ``s3``, ``dvc``); :func:`local_path` picks."""
from __future__ import annotations

from pathlib import Path

from ...core.errors import Problem
from ..datasets import DatasetSpec


def in_place(spec: DatasetSpec, project_dir: Path) -> Path | None:
    """Where a local source's files are (None: a remote source, fetched when staged)."""
    if spec.kind == "project":
        return project_dir / spec.source
    if spec.kind == "local":
        return Path(spec.source)
    return None


def local_path(spec: DatasetSpec, project_dir: Path, cache_dir: Path) -> Path:
    """The dataset's files on this machine: in place for a local source, else fetched into
    ``cache_dir`` (only what changed since the last fetch). Blocking."""
    path = in_place(spec, project_dir)
    if path is not None:
        return path
    if spec.kind == "https":
        from . import https
        return https.fetch(spec.source, cache_dir / "https")
    if spec.kind == "s3":
        from . import s3
        return s3.fetch(spec.source, cache_dir / "s3")
    assert spec.dvc is not None
    from . import dvc
    return dvc.fetch(spec.dvc, cache_dir / "dvc")


def check_local(spec: DatasetSpec, project_dir: Path) -> Problem | None:
    """For a submission, before anything is created: a local source that is not there.
    (A remote one is checked when it is fetched, while the run is STAGING.)"""
    path = in_place(spec, project_dir)
    if path is None:
        return None
    if path.is_symlink() and spec.kind == "project":
        return Problem(f"dataset {spec.name}: {spec.source} is a symbolic link; give the "
                       "folder it points to", key=f"datasets.{spec.name}.source")
    if not path.exists():
        return Problem(f"dataset {spec.name}: its source {path} does not exist",
                       key=f"datasets.{spec.name}.source")
    return None
