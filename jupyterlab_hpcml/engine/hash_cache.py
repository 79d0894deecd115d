"""sha256 of local files, remembered while they are unchanged on disk.

A dataset's version is the digest of its content listing, so every submission would read
every byte of its data again (about 2 s per GiB here). Each file's hash is kept under its
stat signature (path, size, mtime, ctime, inode) in a small SQLite file; a file changed
since is hashed again. Files modified in the last two seconds are not remembered: two
writes inside one timestamp tick could leave the signature unchanged (git's "racy clean").
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

from .filecache import RACY_SECONDS
from .snapshot import hash_file

_SCHEMA = """CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, ino INTEGER,
    sha256 TEXT)"""


class HashCache:
    def __init__(self, db_path: Path):
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()

    def sha256(self, path: Path) -> tuple[str, int]:
        """The file's sha256 and size (hashed only when unknown or changed)."""
        st = os.stat(path)
        key = str(path)
        sig = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        with self._lock:
            row = self._db.execute(
                "SELECT size, mtime_ns, ctime_ns, ino, sha256 FROM hashes WHERE path = ?",
                (key,)).fetchone()
        if row is not None and tuple(row[:4]) == sig:
            return row[4], st.st_size
        digest = hash_file(path)
        if time.time() - st.st_mtime > RACY_SECONDS:
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?)",
                                 (key, *sig, digest))
        return digest, st.st_size

    def close(self) -> None:
        self._db.close()
