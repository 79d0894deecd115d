"""A DVC-tracked path of a git repository (``source: {dvc: {repo, path, rev}}``).

Read through DVC's own Python API (``dvc.api.DVCFileSystem``: the repository's DVC remote,
any kind DVC supports, with the user's DVC config and credentials). Fetched into a cache
folder per repository, path and *commit* (the revision resolved once), so a second run at
the same commit fetches nothing; written aside and renamed, so a half fetch is never used.
Needs the ``dvc`` package (``pip install 'jupyterlab-hpcml[dvc]'``).
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from ...core.errors import Problem, UserInputError
from ..datasets import DvcSource


def _fail(source: DvcSource, why: str) -> UserInputError:
    return UserInputError(Problem(f"DVC {source.repo} {source.path}: {why}", key="source"))


def fetch(source: DvcSource, cache_dir: Path) -> Path:
    """The dataset's local copy (a folder, or the file for a tracked file). Blocking."""
    try:
        from dvc.api import DVCFileSystem
    except ImportError:
        raise _fail(source, "DVC sources need the dvc package: "
                            "pip install 'jupyterlab-hpcml[dvc]'") from None
    try:
        fs: Any = DVCFileSystem(source.repo, rev=source.rev)
        commit = fs.repo.scm.resolve_rev(source.rev or "HEAD")
        kind = fs.info(source.path)["type"]
    except FileNotFoundError:
        raise _fail(source, "no such path in the repository") from None
    except Exception as exc:  # noqa: BLE001 - DVC's and git's errors are many: the user's to fix
        raise _fail(source, f"cannot read it: {exc}") from None
    key = hashlib.sha256(f"{source.repo}\0{source.path}\0{commit}".encode()).hexdigest()[:32]
    folder = cache_dir / key
    name = Path(source.path).name or "data"
    done = folder / name
    if done.exists():
        return done
    part = folder / f"{name}.part"
    shutil.rmtree(part, ignore_errors=True)
    part.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fs.get(source.path, str(part), recursive=kind == "directory")
    except Exception as exc:  # noqa: BLE001 - e.g. the remote unreachable or not pushed
        shutil.rmtree(part, ignore_errors=True)
        raise _fail(source, f"cannot fetch it at {commit[:12]}: {exc}") from None
    part.replace(done)
    return done
