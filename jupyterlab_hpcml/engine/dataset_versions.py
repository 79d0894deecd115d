"""A dataset's version: the digest of its content listing (each file's path, size and
sha256), taken where the data is — files are hashed in place, nothing is copied.

The listing follows links inside the source only (a link out of it is skipped with a
note, as for code), ignores git's rules (data folders are usually gitignored) and is the
same whatever the machine: a version names the content, not where it lies.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import Problem, UserInputError
from .snapshot import collect_files, hash_file


@dataclass(frozen=True)
class ListedFile:
    relpath: str  # posix, relative to the source ("" for a single-file source: its name)
    size: int
    sha256: str


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


def local_version(source: Path) -> DatasetVersion:
    """The version of a local folder or file (UserInputError if it does not exist)."""
    if source.is_file() and not source.is_symlink():
        files = [(source.name, source)]
        notes: list[str] = []
    elif source.is_dir():
        files, notes = collect_files(source, gitignore=False)
    else:
        raise UserInputError(Problem(f"no such file or folder: {source}", key="source"))
    listing = []
    for rel, path in files:
        digest = hash_file(path)
        listing.append(ListedFile(rel, path.stat().st_size, digest))
    return DatasetVersion(digest=listing_digest(listing), size=sum(f.size for f in listing),
                          files=len(listing), listing=listing, notes=notes)
