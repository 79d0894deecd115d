"""A dataset's version: the digest of its content listing (each file's path, size and
sha256), taken where the data is — files are hashed in place, nothing is copied.

The listing follows links inside the source only (a link out of it is skipped with a
note, as for code), ignores git's rules (data folders are usually gitignored) and is the
same whatever the machine: a version names the content, not where it lies.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import Problem, UserInputError
from .snapshot import collect_files, hash_file

HASH_THREADS = 4
Hasher = Callable[[Path], tuple[str, int]]


def _hash(path: Path) -> tuple[str, int]:
    return hash_file(path), path.stat().st_size


@dataclass(frozen=True)
class ListedFile:
    relpath: str  # posix, relative to the source ("" for a single-file source: its name)
    size: int
    sha256: str
    local: Path | None = field(default=None, compare=False)  # where the content is read from


@dataclass
class DatasetVersion:
    digest: str  # sha256 over the listing
    size: int  # bytes, in all
    files: int
    listing: list[ListedFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "skipped x: points outside the project"


def listing_digest(listing: list[ListedFile]) -> str:
    h = hashlib.sha256()
    for f in sorted(listing, key=lambda f: f.relpath):
        h.update(f"{f.relpath}\0{f.size}\0{f.sha256}\n".encode())
    return h.hexdigest()


def local_version(source: Path, hasher: Hasher | None = None) -> DatasetVersion:
    """The version of a local folder or file (UserInputError if it does not exist).
    ``hasher``: path → (sha256, size), e.g. a :class:`~.hash_cache.HashCache`'s; files
    are hashed a few at a time (hashlib works outside the GIL)."""
    if source.is_file() and not source.is_symlink():
        files = [(source.name, source)]
        notes: list[str] = []
    elif source.is_dir():
        files, notes = collect_files(source, gitignore=False)
    else:
        raise UserInputError(Problem(f"no such file or folder: {source}", key="source"))
    hash_one = hasher or _hash
    with concurrent.futures.ThreadPoolExecutor(HASH_THREADS) as pool:
        hashed = list(pool.map(hash_one, (path for _rel, path in files)))
    listing = [ListedFile(rel, size, digest, path)
               for (rel, path), (digest, size) in zip(files, hashed, strict=True)]
    return DatasetVersion(digest=listing_digest(listing), size=sum(f.size for f in listing),
                          files=len(listing), listing=listing, notes=notes)
