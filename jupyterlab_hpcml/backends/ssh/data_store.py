"""Dataset versions in a cluster's data store, beside the code cache of ``transfer``.

Contents share the code's ``objects/`` (named by sha256, read-only); a version adds::

    <cache>/datasets/<digest>.json   its manifest ([relpath, sha256, size] each, one-file flag)
    <cache>/datasets/<digest>/       its tree: hard links to objects/ (no copies: 1 GiB of data
                                     takes 1 GiB), read-only, built in a temporary directory
                                     and renamed (complete or absent)

Staging (:meth:`DataStore.stage`) is one helper command (*data_plan*) when the cluster
has every content (it builds the trees at once); otherwise only the missing contents go
over SFTP, then one *data_tree* command checks their sha256, moves them into objects/ and
builds the trees. Files of ``LARGE_FILE`` bytes and more go in chunks to a fixed name,
``incoming/<sha256>.partial``, so an interrupted upload continues where it stopped: the
plan reports the partial's size and sha256, and a partial that does not match the start of
the local file is sent again from its first byte. A content that arrives corrupted is
deleted by the helper and sent again (at most ``ATTEMPTS`` times, then staging fails
naming it). The code cache's daily collection keeps every content a data manifest names;
a version goes only with :meth:`DataStore.remove`.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from ...core.errors import BackendUnavailable, NotFound
from ...core.job import DataProgress, DataVersion, StagedData, StagedVersion, TargetListing
from ..data_progress import StagingCount
from .transfer import UPLOAD_CONCURRENCY, TransferError, Uploader, UploadStats

log = logging.getLogger(__name__)

LARGE_FILE = 64 << 20  # files this large go in resumable chunks
CHUNK = 4 << 20  # bytes per write of a large file (progress is reported per chunk)
ATTEMPTS = 3  # sends of a content that keeps arriving corrupted before staging fails
WHAT = "staging data"


@dataclass
class _Sending(StagingCount):
    """Bytes and files sent in one staging, for progress and for each version's answer."""

    by_hash: dict[str, int] = field(default_factory=dict)  # content → bytes sent of it

    def add(self, h: str, n: int) -> None:
        self.sent_bytes += n
        self.by_hash[h] = self.by_hash.get(h, 0) + n
        self.report()


class DataStore:
    """The data store of one cluster, over the code uploader's connection and helper."""

    def __init__(self, uploader: Uploader):
        self.uploader = uploader
        self.conn = uploader.conn
        self._lock = asyncio.Lock()  # one staging at a time (they may share contents)

    async def _call(self, cache: str, request: dict[str, Any]) -> dict[str, Any]:
        return await self.uploader._call(cache, request, UploadStats("data"), WHAT)

    # ------------------------------------------------------------ staging

    async def stage(self, cache: str, versions: list[DataVersion],
                    progress: DataProgress | None = None) -> list[StagedData]:
        if not versions:
            return []
        local: dict[str, tuple[Path, int]] = {
            f.sha256: (Path(f.local_path), f.size) for v in versions for f in v.files}
        sending = _Sending(progress)
        async with self._lock:
            answer = await self._call(cache, {
                "op": "data_plan", "cache": cache,
                "versions": [{"digest": v.digest, "name": v.name, "single": v.single_file,
                              "files": [[f.relpath, f.sha256, f.size] for f in v.files]}
                             for v in versions]})
            states: dict[str, dict[str, Any]] = dict(answer.get("versions", {}))
            partials: dict[str, list[Any]] = dict(answer.get("partials", {}))
            corrupt: list[str] = []
            for _attempt in range(ATTEMPTS):
                missing = sorted({h for s in states.values() if not s.get("tree")
                                  for h in s.get("missing", [])})
                if not missing:
                    break
                incoming = await self._send(cache, missing, local, partials, sending)
                answer = await self._call(cache, {
                    "op": "data_tree", "cache": cache, "incoming": incoming,
                    "digests": [d for d, s in states.items() if not s.get("tree")]})
                states.update(answer.get("versions", {}))
                corrupt = list(answer.get("corrupt", []))
                if corrupt:
                    log.warning("%d upload(s) to %s arrived corrupted: sending them again",
                                len(corrupt), self.conn.label)
                partials = {}  # the helper deleted the corrupt ones; the others are objects
        sending.report()
        return [self._staged(v, states.get(v.digest, {}), corrupt, sending, local)
                for v in versions]

    def _staged(self, v: DataVersion, state: dict[str, Any], corrupt: list[str],
                sending: _Sending, local: dict[str, tuple[Path, int]]) -> StagedData:
        if not state.get("tree"):
            names = [str(local[h][0]) for h in corrupt if h in local]
            if names:
                raise TransferError(
                    f"dataset {v.name!r}: {', '.join(names[:3])} arrived corrupted on "
                    f"{self.conn.label} {ATTEMPTS} times (did the local file change?)")
            raise TransferError(f"dataset {v.name!r}: contents kept disappearing from the "
                                f"data store on {self.conn.label}")
        sent_bytes = sent_files = 0
        for f in v.files:  # a content shared by versions counts for the first one
            if f.sha256 in sending.by_hash:
                sent_bytes += sending.by_hash.pop(f.sha256)
                sent_files += 1
        return StagedData(v.digest, str(state["location"]), sent_bytes, sent_files)

    async def _send(self, cache: str, missing: list[str], local: dict[str, tuple[Path, int]],
                    partials: dict[str, list[Any]], sending: _Sending) -> list[list[str]]:
        """SFTP the missing contents into ``incoming/``; returns [name, sha256] pairs."""
        unknown = [h for h in missing if h not in local]
        if unknown:
            raise TransferError(
                f"the cluster asks for contents this server does not have: {unknown[:3]}")
        starts = {h: await self._resume_offset(h, local[h], partials.get(h)) for h in missing}
        sending.total_bytes += sum(local[h][1] - starts[h] for h in missing)
        sending.total_files += len(missing)
        sending.report()
        tag = secrets.token_hex(4)
        sem = asyncio.Semaphore(UPLOAD_CONCURRENCY)

        async def one(h: str) -> list[str]:
            path, size = local[h]
            large = size >= LARGE_FILE
            name = f"{h}.partial" if large else f"{h}.{tag}"
            remote = f"{cache}/incoming/{name}"
            async with sem:
                if large:
                    await self._put_chunked(h, path, size, remote, starts[h], sending)
                else:
                    done = 0

                    def on_progress(_src: bytes, _dst: bytes, now: int, _total: int) -> None:
                        nonlocal done
                        sending.add(h, now - done)
                        done = now

                    await self.conn.sftp_call(lambda sftp: sftp.put(
                        str(path), remote,  # blocks as large as the server takes (limits)
                        progress_handler=on_progress))
                    sending.add(h, size - done)
                    self.conn.stats.upload_bytes += size
            sending.sent_files += 1
            sending.report()
            return [name, h]

        tasks = [asyncio.ensure_future(one(h)) for h in missing]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException as exc:
            for task in tasks:  # the other uploads stop too (their partials stay resumable)
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not isinstance(exc, (OSError, asyncio.TimeoutError, asyncssh.SFTPError)):
                raise
            if isinstance(exc, BackendUnavailable):
                raise
            raise TransferError(f"upload to {self.conn.label} failed: {exc}") from None

    @staticmethod
    async def _resume_offset(h: str, local: tuple[Path, int],
                             partial: list[Any] | None) -> int:
        """Where an earlier upload of a large file stopped: the partial's size when it
        matches the start of the local file (sha256), else 0 (sent again from the start)."""
        path, size = local
        if not partial or size < LARGE_FILE:
            return 0
        done, digest = int(partial[0]), str(partial[1])
        if not 0 < done <= size:
            return 0
        mine = await asyncio.to_thread(_sha256_prefix, path, done)
        if mine != digest:
            log.info("the partial upload of %s does not match %s: sending it again", h, path)
            return 0
        return done

    async def _put_chunked(self, h: str, path: Path, size: int, remote: str, start: int,
                           sending: _Sending) -> None:
        """Write ``path`` from ``start`` into ``remote`` in chunks; a dropped connection
        goes on from the last chunk written (``sftp_call`` retries once)."""
        offset = start

        async def go(sftp: asyncssh.SFTPClient) -> None:
            nonlocal offset
            fd = await asyncio.to_thread(os.open, path, os.O_RDONLY)
            try:
                async with sftp.open(remote, "r+b" if offset else "wb") as f:
                    await f.truncate(offset)  # nothing past what is known written
                    while offset < size:
                        data = await asyncio.to_thread(os.pread, fd, min(CHUNK, size - offset),
                                                       offset)
                        if not data:
                            raise TransferError(f"{path} got shorter while it was sent")
                        await f.write(data, offset)
                        offset += len(data)
                        self.conn.stats.upload_bytes += len(data)
                        sending.add(h, len(data))
            finally:
                os.close(fd)

        await self.conn.sftp_call(go)

    # ------------------------------------------------------------ the store

    async def versions(self, cache: str) -> list[StagedVersion]:
        answer = await self._call(cache, {"op": "data_list", "cache": cache})
        return [StagedVersion(str(v["digest"]), str(v["location"]), int(v["size"]),
                              int(v["files"]), float(v["staged_at"]))
                for v in answer.get("versions", [])]

    async def remove(self, cache: str, digest: str) -> bool:
        answer = await self._call(cache, {"op": "data_rm", "cache": cache, "digest": digest})
        return bool(answer.get("removed"))

    async def fetch(self, cache: str, name: str, url: str) -> StagedVersion:
        answer = await self._call(cache, {"op": "data_fetch", "cache": cache, "name": name,
                                          "url": url})
        if answer.get("error"):
            raise TransferError(f"{url}: {answer['error']} (fetched on {self.conn.label})")
        return StagedVersion(str(answer["digest"]), str(answer["location"]),
                             int(answer["size"]), int(answer["files"]), time.time())

    async def listing(self, cache: str, path: str) -> TargetListing:
        answer = await self._call(cache, {"op": "listing", "cache": cache, "path": path})
        if answer.get("missing"):
            raise NotFound(f"nothing at {path} on {self.conn.label}")
        return TargetListing(path, str(answer["digest"]), int(answer["size"]),
                             int(answer["files"]))


def _sha256_prefix(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = size
        while left > 0:
            block = f.read(min(1 << 20, left))
            if not block:
                break
            h.update(block)
            left -= len(block)
    return h.hexdigest()
