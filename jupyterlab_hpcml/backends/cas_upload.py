"""Content-addressed upload, once for every remote backend.

A :class:`~jupyterlab_hpcml.core.snapshots.Snapshot` names each file's content by its sha256.
A target (a cluster's file system reached through FirecREST, a UNICORE storage) keeps those
contents in an *object store* that outlives runs; getting a run's code there is three steps:

1. **plan** (:func:`plan_upload`): which contents the store lacks, given what it holds
   (one listing of the store; a listed object of the wrong size counts as missing);
2. **upload** only those (:func:`upload_missing` one object at a time through an
   :class:`ObjectStore`, e.g. UNICORE; or all in one archive, as the FirecREST backend does);
3. **lay out** the run's tree from the store, on the target: the snapshot's
   :func:`manifest0` read by :func:`copy_from_store_command` in the job (FirecREST), or one
   server-side copy per file (UNICORE's stage-in ``Imports``).

A second run of unchanged code therefore sends only the per-run files, and several runs of
the same code submitted at once (a sweep's jobs) send each content once between them
(:class:`SharedUploads`: each plan comes from its own listing, all taken before any upload
finished). The SSH backend keeps
its own planner (``ssh/transfer.py``): there the cluster-side helper plans and builds the tree
in the same command, one round trip fewer than a plan made here.
"""
from __future__ import annotations

import concurrent.futures
import math
import shlex
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..core.files import META_DIR
from ..core.snapshots import ProgressCallback, Snapshot, SnapshotFile

MANIFEST = f"{META_DIR}/manifest0"  # in the run directory: NUL-separated sha256, mode, relpath


@dataclass(frozen=True)
class UploadPlan:
    snapshot: Snapshot
    missing: tuple[SnapshotFile, ...]  # one file per content the store lacks

    @property
    def missing_bytes(self) -> int:
        return sum(f.size for f in self.missing)

    @property
    def missing_hashes(self) -> set[str]:
        return {f.sha256 for f in self.missing}


def plan_upload(snapshot: Snapshot,
                present: Mapping[str, int | None] | Collection[str]) -> UploadPlan:
    """The contents of ``snapshot`` the store lacks. ``present``: the hashes it holds, or
    hash → size (None: unknown) so that a truncated object is sent again."""
    sizes: Mapping[str, int | None] = (
        present if isinstance(present, Mapping) else dict.fromkeys(present))
    missing: dict[str, SnapshotFile] = {}
    for f in snapshot.files:
        if f.sha256 in missing:
            continue
        if f.sha256 not in sizes or sizes[f.sha256] not in (None, f.size):
            missing[f.sha256] = f
    return UploadPlan(snapshot, tuple(missing.values()))


def file_mode(f: SnapshotFile) -> int:
    return (f.mode & 0o777) or 0o644


def manifest0(snapshot: Snapshot) -> bytes:
    """The run's files for :func:`copy_from_store_command`: sha256, octal mode, relpath per
    file, NUL-separated (any byte but NUL may stand in a name)."""
    out = bytearray()
    for f in snapshot.files:
        out += b"%s\0%o\0%s\0" % (f.sha256.encode(), file_mode(f), f.relpath.encode())
    return bytes(out)


def copy_from_store_command(objects_dir: str, manifest: str = MANIFEST) -> str:
    """bash, run in the run directory: copy each file of ``manifest`` from the object store
    (copies, not links: a job that rewrites its own files must not corrupt the store)."""
    o = shlex.quote(objects_dir)
    return (
        f"[ -f {manifest} ] || exit 0; "
        "while IFS= read -r -d '' __sha && IFS= read -r -d '' __mode "
        "&& IFS= read -r -d '' __rel; do "
        'mkdir -p -- "$(dirname -- "$__rel")" && '
        f'cp -f -- {o}/"$__sha" "$__rel" && chmod "$__mode" -- "$__rel" '
        '|| { echo "hpcml: could not place $__rel from the object store" >&2; exit 1; }; '
        f"done < {manifest}"
    )


class Progress:
    """Bytes sent / bytes to send, reported from several upload threads."""

    def __init__(self, callback: ProgressCallback | None, total: int):
        self.callback, self.total, self.sent = callback, total, 0
        self._lock = threading.Lock()
        if callback:
            callback(0, total)

    def add(self, nbytes: int) -> None:
        with self._lock:
            self.sent += nbytes
            if self.callback:
                self.callback(self.sent, self.total)


class ObjectStore(Protocol):
    """A target's object store reached one object at a time (blocking calls)."""

    def present(self) -> Mapping[str, int | None]:
        """hash → size of the objects held (an empty mapping when the store is new)."""

    def put(self, sha256: str, source: Path) -> None:
        """Store ``source``'s content under its hash; a reader never sees half an object."""


class SharedUploads:
    """The uploads into one object store made by this process, shared by its submissions.

    Concurrent submissions of the same code each list the store before any of them has
    uploaded, so each plans every content. Through this, a content another submission is
    uploading is waited for, not sent again, and one stored since the caller's listing is
    skipped. A content stored *before* that listing and missing from it was removed from
    the store meanwhile: sent again. Thread-safe (uploads run in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stored: dict[str, float] = {}  # sha256 → when this process stored it (monotonic)
        self._pending: dict[str, concurrent.futures.Future[None]] = {}

    @staticmethod
    def listing_started() -> float:
        """Take this just before listing the store; pass it to :meth:`put`."""
        return time.monotonic()

    def put(self, store: ObjectStore, sha256: str, source: Path, listed_at: float) -> bool:
        """``store.put`` unless the content was stored since ``listed_at`` or is being
        stored: then wait for that. True when this call sent it. If the upload waited for
        fails, this caller tries itself (its own submission, its own retries)."""
        while True:
            with self._lock:
                if self._stored.get(sha256, -math.inf) >= listed_at:
                    return False
                pending = self._pending.get(sha256)
                if pending is None:
                    mine: concurrent.futures.Future[None] = concurrent.futures.Future()
                    self._pending[sha256] = mine
                    break
            try:
                pending.result()
            except BaseException:  # noqa: BLE001, S110 - theirs failed: try ours
                pass
        try:
            store.put(sha256, source)
        except BaseException as exc:
            with self._lock:
                del self._pending[sha256]
            mine.set_exception(exc)
            raise
        with self._lock:
            self._stored[sha256] = time.monotonic()
            del self._pending[sha256]
        mine.set_result(None)
        return True


def upload_missing(store: ObjectStore, plan: UploadPlan, progress: Progress,
                   threads: int = 4, shared: SharedUploads | None = None,
                   listed_at: float = -math.inf) -> int:
    """Send the plan's missing objects, ``threads`` at a time. Returns the bytes sent.
    With ``shared`` (and the time the plan's listing began), a content that a concurrent
    submission sends or has sent since is not sent again (it counts as done)."""
    snapshot = plan.snapshot

    def one(f: SnapshotFile) -> int:
        path = snapshot.object_path(f)
        if shared is None:
            store.put(f.sha256, path)
            sent = True
        else:
            sent = shared.put(store, f.sha256, path, listed_at)
        progress.add(f.size)
        return f.size if sent else 0

    if not plan.missing:
        return 0
    with concurrent.futures.ThreadPoolExecutor(max(1, min(threads, len(plan.missing)))) as pool:
        return sum(pool.map(one, plan.missing))
