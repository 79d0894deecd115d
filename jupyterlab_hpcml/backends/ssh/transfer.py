"""Content-addressed, incremental code upload to a cluster over one SSH connection.

The cluster keeps a per-user object cache next to the run directories::

    <base>/hpcml/.cache/objects/ab/abcdef…   file contents by sha256 (read-only)
    <base>/hpcml/.cache/manifests/<id>.json  snapshot manifests ([path, sha256, mode] per file)
    <base>/hpcml/.cache/incoming/            uploads in progress
    <base>/hpcml/.cache/helper-<v>.py        the small stdlib-only helper below (python3)

A submission (``Uploader.upload``):

1. *plan* (one command): the manifest travels as a **delta** against a snapshot this
   server sent to the cluster before (added/changed entries + removed paths; the full
   list only the first time); the helper rebuilds and stores the manifest and answers
   which contents it lacks;
2. only those contents go over SFTP (pipelined, a few files at a time; progress is
   reported as bytes sent / bytes to send);
3. *materialise* (one command): the helper checks the sha256 of every upload, moves it
   into the cache, and builds the run directory from the manifest: copies (a job that
   rewrites its own files must not corrupt the cache), hard links for files of 64 MiB
   and more (e.g. Apptainer images, read-only); then it writes the extra files (the
   offline MLflow store) and ``.hpcml/code.json`` with the snapshot id that landed.

Re-submitting after a one-file edit therefore sends that file, a few hundred bytes of
manifest delta and two short commands.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import posixpath
import secrets
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...engine.errors import BackendUnavailable, HpcmlError, NotFound
from ..base import ProgressCallback, Snapshot
from .connection import SSHConnection

log = logging.getLogger(__name__)

UPLOAD_CONCURRENCY = 8
LINK_THRESHOLD = 64 << 20  # files this large are hard-linked from the cache, not copied

HELPER = r'''
import base64, hashlib, json, os, shutil, sys

def atomic_write(path, data, mode=0o644):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)

def obj(cache, h):
    return os.path.join(cache, "objects", h[:2], h)

def load(cache, sid):
    try:
        with open(os.path.join(cache, "manifests", sid + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def safe(rel):
    parts = rel.split("/")
    if rel.startswith("/") or ".." in parts or "" in parts:
        raise SystemExit("unsafe path in manifest: %r" % rel)
    return rel

def plan(req):
    cache = req["cache"]
    for d in ("objects", "manifests", "incoming"):
        os.makedirs(os.path.join(cache, d), exist_ok=True)
    entries = load(cache, req["id"])
    if entries is None:
        if req.get("files") is not None:
            entries = req["files"]
        else:
            base = load(cache, req["base"]) if req.get("base") else None
            if base is None:
                return {"need_full": True}
            by_path = {e[0]: e for e in base}
            for rel in req.get("removed", []):
                by_path.pop(rel, None)
            for e in req.get("added", []):
                by_path[e[0]] = e
            entries = sorted(by_path.values())
        atomic_write(os.path.join(cache, "manifests", req["id"] + ".json"), json.dumps(entries).encode())
    wanted = set(e[1] for e in entries) | set(req.get("extra_hashes", []))
    return {"missing": sorted(h for h in wanted if not os.path.exists(obj(cache, h)))}

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

def materialise(req):
    cache, dest = req["cache"], req["dest"]
    for name, h in req.get("incoming", []):
        src = os.path.join(cache, "incoming", os.path.basename(name))
        if sha256(src) != h:
            os.unlink(src)
            raise SystemExit("upload of %s arrived corrupted" % h)
        os.makedirs(os.path.dirname(obj(cache, h)), exist_ok=True)
        os.chmod(src, 0o444)
        os.replace(src, obj(cache, h))
    entries = load(cache, req["id"])
    if entries is None:
        raise SystemExit("manifest %s missing on the cluster" % req["id"])
    links = req.get("links", {})
    missing = sorted(set(e[1] for e in entries if not os.path.exists(obj(cache, e[1])))
                     | set(h for h in links.values() if not os.path.exists(obj(cache, h))))
    if missing:
        return {"missing": missing}
    meta = os.path.join(dest, ".hpcml")
    if os.path.exists(os.path.join(meta, "job_id")):
        raise SystemExit("a job was already started in " + dest)
    os.makedirs(meta, exist_ok=True)
    total = 0
    threshold = req.get("link_threshold", 1 << 62)
    def place(src, target, mode, link):
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        if os.path.lexists(target):
            os.unlink(target)
        if link:
            try:
                os.link(src, target)
                return
            except OSError:
                pass
        shutil.copyfile(src, target)
        os.chmod(target, mode & 0o777)
    for rel, h, mode, size in entries:
        place(obj(cache, h), os.path.join(dest, safe(rel)), mode, size >= threshold)
        total += size
    for rel, h in links.items():
        place(obj(cache, h), os.path.join(dest, safe(rel)), 0o444, True)
    for rel, data in req.get("extras", {}).items():
        target = os.path.join(dest, safe(rel.rstrip("/")))
        if data is None:
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            atomic_write(target, base64.b64decode(data))
    atomic_write(os.path.join(meta, "code.json"),
                 json.dumps({"snapshot_id": req["id"], "files": len(entries), "bytes": total}).encode())
    return {"files": len(entries), "bytes": total}

req = json.load(sys.stdin)
out = {"plan": plan, "materialise": materialise}[req["op"]](req)
sys.stdout.write(json.dumps(out))
'''
HELPER_VERSION = hashlib.sha256(HELPER.encode()).hexdigest()[:12]


class TransferError(HpcmlError):
    status = 502


@dataclass
class UploadStats:
    snapshot_id: str
    files: int = 0
    uploaded_files: int = 0
    uploaded_bytes: int = 0  # file content sent
    manifest_bytes: int = 0  # plan/materialise requests (manifest, delta, extras)
    full_manifest: bool = False
    seconds: float = 0.0


@dataclass
class _RemoteState:
    """What this server knows the cluster has (per connection, in memory)."""

    snapshots: list[str] = field(default_factory=list)  # most recent last
    helper: str | None = None  # path of the uploaded helper


def _entry(f) -> list[Any]:
    return [f.relpath, f.sha256, f.mode & 0o777, f.size]


class Uploader:
    def __init__(self, conn: SSHConnection, manifest_dir: Path | None = None):
        self.conn = conn
        self.manifest_dir = manifest_dir  # the engine's snapshots/ (base manifests for deltas)
        self.state = _RemoteState()
        self._lock = asyncio.Lock()
        self._hash_cache: dict[tuple[str, int, int], str] = {}

    # ------------------------------------------------------------------ helper

    async def _helper(self, cache: str) -> str:
        path = f"{cache}/helper-{HELPER_VERSION}.py"
        if self.state.helper == path:
            return path

        async def ensure(sftp):
            if await sftp.exists(path):
                return
            await sftp.makedirs(cache, exist_ok=True)
            tmp = f"{path}.{secrets.token_hex(4)}"
            async with sftp.open(tmp, "wb") as f:
                await f.write(HELPER.encode())
            await sftp.posix_rename(tmp, path)

        await self.conn.sftp_call(ensure)
        self.state.helper = path
        return path

    async def _call(self, cache: str, request: dict[str, Any], stats: UploadStats) -> dict[str, Any]:
        helper = await self._helper(cache)
        body = json.dumps(request, separators=(",", ":")).encode()
        stats.manifest_bytes += len(body)
        # -I -S: no user site, no site-packages scan: the helper is stdlib-only, this starts fastest.
        res = await self.conn.run(f"python3 -I -S {shlex.quote(helper)}", input=body,
                                  name=f"hpcml-{request['op']}", retry=request["op"] == "plan")
        if res.exit_status == 127:
            raise TransferError(f"python3 is needed on the login node of {self.conn.label} to unpack uploads")
        if res.exit_status != 0:
            raise TransferError(f"preparing the run directory on {self.conn.label} failed: "
                                f"{(res.err or res.out).strip()[-2000:]}")
        try:
            return json.loads(res.stdout)
        except ValueError:
            raise TransferError(f"unexpected answer from the upload helper: {res.out[:500]!r}") from None

    # ------------------------------------------------------------------ upload

    async def upload(
        self,
        snapshot: Snapshot,
        cache: str,
        dest: str,
        extra_files: dict[str, bytes] | None = None,
        links: dict[str, Path] | None = None,
        progress: ProgressCallback | None = None,
    ) -> UploadStats:
        """Make ``dest`` hold the snapshot (+ extra files; + ``links``: relpath → local file
        hard-linked from the cache, e.g. an Apptainer image outside the project)."""
        import time

        t0 = time.monotonic()
        stats = UploadStats(snapshot.id, files=len(snapshot.files))
        local: dict[str, Path] = {f.sha256: snapshot.object_path(f) for f in snapshot.files}
        link_hashes: dict[str, str] = {}
        for rel, path in (links or {}).items():
            h = await asyncio.to_thread(self._hash_file, path)
            local[h] = path
            link_hashes[rel] = h

        missing: list[str] = []
        if snapshot.id not in self.state.snapshots or link_hashes:
            async with self._lock:  # one upload plan at a time per cluster (shared base manifests)
                request = self._plan_request(snapshot, cache, list(link_hashes.values()))
                stats.full_manifest = request.get("files") is not None
                answer = await self._call(cache, request, stats)
                if answer.get("need_full"):
                    stats.full_manifest = True
                    request = self._plan_request(snapshot, cache, list(link_hashes.values()), full=True)
                    answer = await self._call(cache, request, stats)
                self._remember(snapshot.id)
            missing = answer.get("missing", [])
        # else: this manifest and its contents reached the cluster before; materialise
        # checks that they are still there and asks for anything the cache lost.

        incoming: list[list[str]] = []
        for _attempt in range(2):
            incoming += await self._send(cache, missing, local, stats, progress)
            extras = {
                k: (None if k.endswith("/") else base64.b64encode(v).decode())
                for k, v in (extra_files or {}).items()
            }
            result = await self._call(cache, {
                "op": "materialise", "cache": cache, "id": snapshot.id, "dest": dest,
                "incoming": incoming, "extras": extras, "links": link_hashes,
                "link_threshold": LINK_THRESHOLD,
            }, stats)
            if not result.get("missing"):
                break
            missing, incoming = result["missing"], []  # the cache was cleaned meanwhile
        else:
            raise TransferError(f"objects kept disappearing from the cache on {self.conn.label}")
        stats.seconds = time.monotonic() - t0
        if progress:
            progress(stats.uploaded_bytes, stats.uploaded_bytes)
        return stats

    def _plan_request(self, snapshot: Snapshot, cache: str, extra_hashes: list[str],
                      full: bool = False) -> dict[str, Any]:
        req: dict[str, Any] = {"op": "plan", "cache": cache, "id": snapshot.id, "extra_hashes": extra_hashes}
        if snapshot.id in self.state.snapshots:
            return req  # the cluster has this manifest: nothing to describe
        base = None if full else self._base_manifest()
        if base is None:
            req["files"] = [_entry(f) for f in snapshot.files]
            return req
        base_id, base_entries = base
        new = {f.relpath: _entry(f) for f in snapshot.files}
        req["base"] = base_id
        req["added"] = [e for rel, e in new.items() if base_entries.get(rel) != e]
        req["removed"] = [rel for rel in base_entries if rel not in new]
        return req

    def _base_manifest(self) -> tuple[str, dict[str, list[Any]]] | None:
        from ...engine import snapshot as snapshot_mod

        if not self.manifest_dir or not self.state.snapshots:
            return None
        base_id = self.state.snapshots[-1]
        try:
            base = snapshot_mod.load_snapshot(base_id, self.manifest_dir.parent / "objects", self.manifest_dir)
        except NotFound:
            return None
        return base_id, {f.relpath: _entry(f) for f in base.files}

    def _remember(self, snapshot_id: str) -> None:
        snaps = self.state.snapshots
        if snapshot_id in snaps:
            snaps.remove(snapshot_id)
        snaps.append(snapshot_id)
        del snaps[:-20]

    def _hash_file(self, path: Path) -> str:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        cached = self._hash_cache.get(key)
        if cached:
            return cached
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        self._hash_cache[key] = digest = h.hexdigest()
        return digest

    async def _send(self, cache: str, missing: list[str], local: dict[str, Path],
                    stats: UploadStats, progress: ProgressCallback | None) -> list[list[str]]:
        """SFTP the missing contents into ``incoming/``; returns [name, sha256] pairs."""
        if not missing:
            return []
        unknown = [h for h in missing if h not in local]
        if unknown:
            raise TransferError(f"the cluster asks for contents this server does not have: {unknown[:3]}")
        sizes = {h: local[h].stat().st_size for h in missing}
        total = sum(sizes.values())
        sent_per_file: dict[str, int] = {}
        tag = secrets.token_hex(4)
        if progress:
            progress(0, total)

        def on_progress(h: str, done: int) -> None:
            sent_per_file[h] = done
            if progress:
                progress(sum(sent_per_file.values()), total)

        sem = asyncio.Semaphore(UPLOAD_CONCURRENCY)

        async def one(h: str) -> list[str]:
            name = f"{h}.{tag}"
            remote = f"{cache}/incoming/{name}"
            async with sem:
                await self.conn.sftp_call(lambda sftp: sftp.put(
                    str(local[h]), remote, block_size=256 * 1024,
                    progress_handler=lambda _s, _d, done, _t: on_progress(h, done),
                ))
            on_progress(h, sizes[h])
            self.conn.stats.upload_bytes += sizes[h]
            return [name, h]

        try:
            result = await asyncio.gather(*(one(h) for h in missing))
        except (OSError, asyncio.TimeoutError) as exc:
            if isinstance(exc, BackendUnavailable):
                raise
            raise TransferError(f"upload to {self.conn.label} failed: {exc}") from None
        stats.uploaded_files += len(missing)
        stats.uploaded_bytes += total
        return list(result)


def remote_join(*parts: str) -> str:
    return posixpath.join(*parts)
