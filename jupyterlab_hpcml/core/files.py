"""The files of a run directory as every backend shows them: byte-offset chunks,
listings, the bookkeeping folder, and the check that keeps a path inside the run."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from .errors import Problem, UserInputError

# Inside every run directory: logs, job bookkeeping and the offline MLflow store.
META_DIR = ".hpcml"
OFFLINE_MLRUNS = f"{META_DIR}/mlruns"
# Where a service job (model serving) says where it listens, once it does:
# {"host": <name the cluster resolves>, "port": <int>} (written atomically by the job).
SERVICE_FILE = f"{META_DIR}/service.json"


@dataclass
class Chunk:
    data: bytes
    offset: int  # where ``data`` starts
    next_offset: int  # offset to ask for next time
    size: int | None  # current file size, if known (None: file does not exist yet)


@dataclass
class FileInfo:
    path: str  # relative to the directory listed
    is_dir: bool
    size: int | None = None
    mtime: float | None = None


def run_relpath(relpath: str, what: str = "path") -> str:
    """``relpath`` normalised ("" for the run directory itself), refused when absolute or
    with ``..``: every backend's first line of defence against paths leaving the run."""
    p = PurePosixPath(relpath.replace("\\", "/")) if relpath else PurePosixPath(".")
    if p.is_absolute() or ".." in p.parts:
        raise UserInputError(Problem(f"{what} must stay inside the run directory: {relpath!r}"))
    return "" if str(p) == "." else str(p)
