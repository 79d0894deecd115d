"""Parsed files remembered until they change on disk.

Submitting reads the same MLproject and backend config again and again; parsing and
validating them costs milliseconds per submission. An entry is valid while the stat
signature of its files is unchanged. Files modified in the last two seconds are not
cached: two writes inside one timestamp tick could leave the signature unchanged
(the "racy clean" problem git solves the same way).
"""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")

RACY_SECONDS = 2.0

_Signature = tuple[tuple[int, int, int, int] | None, ...]


def _signature(paths: Sequence[Path]) -> tuple[_Signature, float]:
    """Per path (mtime, ctime, size, inode) or None when missing; and the newest mtime."""
    sig: list[tuple[int, int, int, int] | None] = []
    newest = 0.0
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            sig.append(None)
            continue
        sig.append((st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino))
        newest = max(newest, st.st_mtime, st.st_ctime)
    return tuple(sig), newest


class StatCache(Generic[T]):
    """``get(paths, load)``: ``load()``'s result, reused while ``paths`` are unchanged.

    Values are shared between callers: callers must not mutate them (copy first).
    Exceptions from ``load`` are not cached.
    """

    def __init__(self, size: int = 128):
        self._size = size
        self._entries: OrderedDict[tuple[str, ...], tuple[_Signature, T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, paths: Sequence[Path], load: Callable[[], T]) -> T:
        key = tuple(str(p) for p in paths)
        sig, newest = _signature(paths)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] == sig:
                self._entries.move_to_end(key)
                return hit[1]
        value = load()
        if time.time() - newest >= RACY_SECONDS and _signature(paths)[0] == sig:
            with self._lock:
                self._entries[key] = (sig, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self._size:
                    self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
