"""The version of data that already lives on a target (a dataset mapped to a path there):
a digest over each file's path, size and mtime. Content is not read (that could be
terabytes), so a version here says "these files, as last written", not "this content".

Every backend computes it the same way (also cluster-side, in a script): lines
``relpath NUL size NUL mtime-in-whole-seconds LF``, sorted by relpath, hashed with sha256.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable


def listing_digest(entries: Iterable[tuple[str, int, float]]) -> str:
    h = hashlib.sha256()
    for rel, size, mtime in sorted(entries):
        h.update(f"{rel}\0{size}\0{int(mtime)}\n".encode())
    return h.hexdigest()
