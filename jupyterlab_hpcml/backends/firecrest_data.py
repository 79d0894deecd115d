"""The FirecREST backend's data store: dataset versions on the cluster, beside the code's
object store, made with the calls the code upload uses (upload, ``extract``, ``ls``)::

    <base>/.data/objects/ab/abcdef…     contents by sha256, verified, shared by all versions
    <base>/.data/versions/<digest>.json a version's manifest ([relpath, sha256, size] each)
    <base>/.data/versions/.<digest>.<size>.<files>.<token>/   its tree: hard links to objects
    <base>/.data/versions/<digest>      a symbolic link to the tree (one file: to the file)

FirecREST has no login-node shell, so the cluster-side work is done by ``tar`` through the
``extract`` endpoint: an archive's members may be hard links to files already on the
cluster (a tree costs no data, only its archive of link headers) and a symbolic link,
which ``tar`` creates with one ``symlink()`` after every member before it: a version's
``<digest>`` link is its last member, so a version is complete or absent (the tree is
built under a name of its own, then published by the link — a rename in effect).

Staging (:meth:`FirecrestDataStore.stage`): one ``ls`` of ``versions/`` (a version held
sends nothing); else one ``ls`` of ``objects/`` and of the code's ``.objects`` (a content
the code store holds is hard-linked, not sent). The missing contents go into
``incoming/<token>/`` in gzip archives of at most ``BATCH_BYTES`` (a file of
``LARGE_FILE`` or more goes alone, as itself: no local copy), each through ``upload``
(FirecREST's own rule for large files: the staged S3 multipart transfer), each content
verified with the server's ``checksum`` (sha256) and sent again when it arrived corrupted
(at most ``ATTEMPTS`` times). Verified contents are linked into ``objects/`` by the next
archive; the last one also builds the trees. A staging stopped half way keeps what it
verified and linked. Removal (:meth:`FirecrestDataStore.remove`) deletes the link, the
tree, the manifest and the contents no other version's manifest names.
"""
from __future__ import annotations

import asyncio
import calendar
import io
import json
import logging
import os
import posixpath
import re
import secrets
import stat as stat_mod
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.data_listing import listing_digest
from ..core.errors import HpcmlError, NotFound, Problem, UserInputError
from ..core.files import run_relpath
from ..core.job import DataFile, DataProgress, DataVersion, StagedData, StagedVersion, TargetListing
from .data_progress import StagingCount
from .firecrest import OBJECTS, Forbidden, OutputTooLarge, _shell_safe, _size
from .firecrest import ls_name as _name
from .remote_calls import RemoteError

if TYPE_CHECKING:
    from .firecrest import FirecrestBackend

log = logging.getLogger(__name__)

DATA = ".data"  # in <base>, beside the code's .objects
LARGE_FILE = 64 << 20  # a file this large is uploaded as itself, not inside an archive
BATCH_BYTES = 256 << 20  # contents per archive: the local temporary copy stays this small
ATTEMPTS = 3  # sends of a content that keeps arriving corrupted before staging fails
VERIFY_PARALLEL = 8  # checksum requests in flight at once
_DIGEST = re.compile(r"[0-9A-Za-z_-]{1,128}")


def _object(sha256: str) -> str:
    return f"{DATA}/objects/{sha256[:2]}/{sha256}"


def _tree_name(version: DataVersion, token: str) -> str:
    """The tree's folder in versions/: its digest, size and file count (read back by
    ``staged_versions`` from the link's target: one ``ls`` for all versions)."""
    return f".{version.digest}.{version.size}.{len(version.files)}.{token}"


@dataclass
class _Sending(StagingCount):
    sent: set[str] = field(default_factory=set)  # contents sent in this staging
    # Verified in incoming/, to be linked into objects/ by the next archive.
    verified: list[str] = field(default_factory=list)

    def promote(self) -> list[str]:
        """The verified contents for the archive being made (handed over once)."""
        out, self.verified = self.verified, []
        return out

    def add(self, files: list[DataFile]) -> None:
        if files:
            self.sent_bytes += sum(f.size for f in files)
            self.sent_files += len(files)
            self.sent.update(f.sha256 for f in files)
            self.report()


class FirecrestDataStore:
    def __init__(self, backend: FirecrestBackend):
        self.b = backend
        self._lock = asyncio.Lock()  # one staging at a time here (they may share contents)

    async def _root(self) -> tuple[str, str]:
        base = await self.b.base_dir()
        return base, f"{base}/{DATA}"

    # ------------------------------------------------------------ staging

    async def stage(self, versions: Sequence[DataVersion],
                    progress: DataProgress | None = None) -> list[StagedData]:
        base, root = await self._root()
        sending = _Sending(progress)
        async with self._lock:
            held = await self._held(root)
            todo = list({v.digest: v for v in versions if v.digest not in held}.values())
            if todo:
                await self._stage(base, todo, sending)
        sending.report()
        out = []
        for v in versions:
            mine = {f.sha256: f.size for f in v.files if f.sha256 in sending.sent}
            out.append(StagedData(v.digest, self.location(root, v.digest), sum(mine.values()),
                                  len(mine)))
        return out

    @staticmethod
    def location(root: str, digest: str) -> str:
        return f"{root}/versions/{digest}"

    async def _held(self, root: str, hidden: bool = False) -> dict[str, dict[str, Any]]:
        """The entries of versions/ by name (a version is held when its link is there)."""
        try:
            entries = await self.b._call("listing staged data", self.b.client().list_files,
                                         self.b.machine, f"{root}/versions", show_hidden=hidden)
        except NotFound:
            return {}
        return {_name(str(e.get("name"))): e for e in entries
                if hidden or e.get("type") == "l"}

    async def _stage(self, base: str, todo: list[DataVersion], sending: _Sending) -> None:
        need: dict[str, DataFile] = {f.sha256: f for v in todo for f in v.files}
        present = await self._present(base, f"{DATA}/objects", set(need))
        missing = {h: f for h, f in need.items() if present.get(h) != f.size}
        code = await self._present(base, OBJECTS, set(missing), sharded=False) if missing else {}
        linked = [h for h, f in missing.items() if code.get(h) == f.size]
        send = [f for h, f in missing.items() if h not in set(linked)]
        sending.total_bytes = sum(f.size for f in send)
        sending.total_files = len(send)
        sending.report()
        token = secrets.token_hex(6)
        incoming = f"{DATA}/incoming/{token}"
        try:
            for batch, links in _batches(send, linked):
                await self._send_verified(base, incoming, batch, links, sending)
            await self._extract(base, _final_archive(incoming, sending.promote(), todo, token),
                                "building the data versions")
        finally:
            if missing:
                await self._keep_verified(base, incoming, sending)
                await self._rm(f"{base}/{incoming}")

    async def _keep_verified(self, base: str, incoming: str, sending: _Sending) -> None:
        """After a failure: link what arrived intact into objects/ (not sent again)."""
        if not sending.verified:
            return
        try:
            await self._extract(base, _contents_archive(incoming, [], [], sending.promote()),
                                "keeping the data sent")
        except HpcmlError as exc:
            log.warning("could not keep the data sent to %s: %s", self.b.api_url, exc)

    async def _send_verified(self, base: str, incoming: str, batch: list[DataFile],
                             links: list[str], sending: _Sending) -> None:
        """Send ``batch`` (and link ``links`` from the code store) into ``incoming/``, the
        archive linking the contents verified before into objects/ on the way; checked by
        sha256 on the cluster, sent again when corrupted. The ones verified now wait in
        ``sending.verified`` for the next archive."""
        for attempt in range(ATTEMPTS):
            if attempt:  # the corrupted ones go again
                sending.total_bytes += sum(f.size for f in batch)
                sending.total_files += len(batch)
            packed = [f for f in batch if f.size < LARGE_FILE]
            if packed or links or sending.verified:
                await self._extract(base, _contents_archive(incoming, packed, links,
                                                            sending.promote()),
                                    "unpacking data")
            sending.add(packed)
            for f in batch:
                if f.size >= LARGE_FILE:
                    await self._upload_alone(base, incoming, f)
                    sending.add([f])
            hashes = [*(f.sha256 for f in batch), *links]
            bad = await self._verify(base, incoming, hashes)
            sending.verified += [h for h in hashes if h not in bad]
            if not bad:
                return
            log.warning("%d content(s) arrived corrupted at %s: sending them again", len(bad),
                        self.b.api_url)
            await asyncio.gather(*(self._rm(f"{base}/{incoming}/{h}") for h in bad))
            batch = [f for f in batch if f.sha256 in bad]
            links = [h for h in links if h in bad]
        names = ", ".join(sorted({f.local_path for f in batch} | set(links)))
        raise RemoteError(f"FirecREST: {names} arrived corrupted {ATTEMPTS} times while "
                          "staging data: staging stopped")

    async def _upload_alone(self, base: str, incoming: str, f: DataFile) -> None:
        c = self.b.client()
        await self.b._call("making the data upload folder", c.mkdir, self.b.machine,
                           f"{base}/{incoming}", create_parents=True)
        await self.b._call(f"uploading {os.path.basename(f.local_path)}", c.upload,
                           self.b.machine, f.local_path, f"{base}/{incoming}", f.sha256)

    async def _verify(self, base: str, incoming: str, hashes: list[str]) -> set[str]:
        """The hashes whose content in incoming/ is not what its name says."""
        gate = asyncio.Semaphore(VERIFY_PARALLEL)
        c = self.b.client()

        async def one(h: str) -> str | None:
            async with gate:
                try:
                    out = await self.b._call("checking staged data", c.checksum, self.b.machine,
                                             f"{base}/{incoming}/{h}")
                except NotFound:
                    return h
            return None if str(out.get("checksum", "")).lower() == h else h

        return {h for h in await asyncio.gather(*(one(h) for h in hashes)) if h}

    async def _present(self, base: str, store: str, wanted: set[str],
                       sharded: bool = True) -> dict[str, int | None]:
        """hash → size of the ``wanted`` contents ``store`` holds: one recursive ``ls``;
        too many to list in one answer (413): the shards holding wanted ones, one by one
        (the code store, flat: counted as holding none)."""
        path = f"{base}/{store}"
        try:
            entries = await self.b._ls(path, recursive=sharded)
        except NotFound:
            return {}
        except (OutputTooLarge, Forbidden):
            if not sharded:
                return {}
            entries = []
            for shard in sorted({h[:2] for h in wanted}):
                try:
                    entries += await self.b._ls(f"{path}/{shard}", recursive=False)
                except NotFound:
                    pass
        return {name: _size(e.get("size")) for e in entries if e.get("type") == "-"
                and (name := _name(str(e.get("name"))).rpartition("/")[2]) in wanted}

    async def _extract(self, base: str, write: Any, what: str) -> None:
        """Upload an archive (``write(path)`` makes it) into ``base`` and unpack it there."""
        c = self.b.client()
        with tempfile.TemporaryDirectory(prefix="hpcml-fc-data-") as tmp:
            archive = Path(tmp) / f".hpcml-data-{secrets.token_hex(6)}.tar.gz"
            await asyncio.to_thread(write, archive)
            await self.b._call(f"uploading an archive ({what})", c.upload, self.b.machine,
                               archive, base, archive.name)
        remote = f"{base}/{archive.name}"
        try:
            await self.b._call(what, c.extract, self.b.machine, remote, base, "gzip")
        finally:
            await self._rm(remote)

    async def _rm(self, path: str, strict: bool = False) -> None:
        """Remove ``path`` if it is there; a failure raises (``strict``) or is only logged
        (litter: a temporary upload)."""
        try:
            await self.b._call("removing staged data", self.b.client().rm, self.b.machine,
                               path)
        except NotFound:
            pass
        except HpcmlError as exc:
            if strict:
                raise
            log.warning("could not remove %s: %s", path, exc)

    # ------------------------------------------------------------ the store's versions

    async def versions(self) -> list[StagedVersion]:
        _, root = await self._root()
        out = []
        for digest, entry in sorted((await self._held(root)).items()):
            tree = str(entry.get("linkTarget") or "").partition("/")[0]
            parts = tree.split(".")
            if len(parts) != 5 or parts[1] != digest:
                continue
            size, files = _size(parts[2]), _size(parts[3])
            out.append(StagedVersion(digest, self.location(root, digest), size or 0, files or 0,
                                     _epoch(entry.get("lastModified")) or 0.0))
        return out

    async def remove(self, digest: str) -> bool:
        if not _DIGEST.fullmatch(digest):
            return False
        base, root = await self._root()
        async with self._lock:
            entries = await self._held(root, hidden=True)
            if digest not in entries and f"{digest}.json" not in entries:
                return False
            gone = await self._manifest(f"{root}/versions/{digest}.json")
            for name in [digest, *(n for n in entries if n.startswith(f".{digest}."))]:
                await self._rm(f"{root}/versions/{name}", strict=True)  # the link first
            used: set[str] = set()
            for name in entries:
                if name.endswith(".json") and name != f"{digest}.json":
                    used |= await self._manifest(f"{root}/versions/{name}")
            await self._rm(f"{root}/versions/{digest}.json", strict=True)
            unused = sorted(gone - used)
            gate = asyncio.Semaphore(VERIFY_PARALLEL)

            async def drop(h: str) -> None:
                async with gate:
                    await self._rm(f"{base}/{_object(h)}", strict=True)

            await asyncio.gather(*(drop(h) for h in unused))
        return True

    async def _manifest(self, path: str) -> set[str]:
        """The contents a version's manifest names (none when it cannot be read)."""
        with tempfile.TemporaryDirectory(prefix="hpcml-fc-data-") as tmp:
            local = Path(tmp) / "manifest.json"
            try:
                await self.b._call("reading a data manifest", self.b.client().download,
                                   self.b.machine, path, local)
                data = json.loads(await asyncio.to_thread(local.read_text))
            except (NotFound, FileNotFoundError, ValueError):
                return set()
        return {str(f[1]) for f in data.get("files", [])}

    # ------------------------------------------------------------ data already there

    async def listing(self, path: str) -> TargetListing:
        if not path.startswith("/"):
            raise UserInputError(Problem(f"a path on the cluster must be absolute: {path!r}"))
        path = _shell_safe(path.rstrip("/") or "/", path)
        c = self.b.client()
        try:
            st = await self.b._call(f"looking at {path}", c.stat, self.b.machine, path,
                                    dereference=True)
        except NotFound:
            raise NotFound(f"no such file or folder on the cluster: {path}") from None
        entries: list[tuple[str, int, float]] = []
        if not stat_mod.S_ISDIR(int(st["mode"])):
            entries.append((posixpath.basename(path), int(st["size"]), float(st["mtime"])))
        else:
            listed = await self._tree(path)
            if len(listed) == 1 and listed[0].get("type") == "l" and \
                    _name(str(listed[0].get("name"))) in (path, posixpath.basename(path)):
                listed = await self._tree(f"{path}/")  # `ls -l` shows a link, not its folder
            for e in listed:
                if e.get("type") == "d":
                    continue
                entries.append((_name(str(e.get("name"))), _size(e.get("size")) or 0,
                                _epoch(e.get("lastModified")) or 0.0))
        return TargetListing(path, listing_digest(entries), sum(e[1] for e in entries),
                             len(entries))


    async def _tree(self, path: str) -> list[dict[str, Any]]:
        """Every entry under ``path``: one recursive ``ls``, or folder by folder when that
        is refused (an unreadable subfolder) or too long."""
        try:
            return await self.b._ls(path, recursive=True)
        except (Forbidden, OutputTooLarge):
            return await self.b._walk(path)


def _epoch(text: Any) -> float | None:
    """``ls``'s time (the cluster's wall clock, no zone) as if UTC: the same number whatever
    this machine's time zone (a listing's digest must not change with it)."""
    try:
        return float(calendar.timegm(datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S")
                                     .timetuple()))
    except ValueError:
        return None


# ---------------------------------------------------------------- archives


def _batches(send: list[DataFile], linked: list[str]
             ) -> list[tuple[list[DataFile], list[str]]]:
    """The contents to send in groups of at most ``BATCH_BYTES`` (a large file alone), the
    ones to link from the code store with the first group."""
    out: list[tuple[list[DataFile], list[str]]] = []
    group: list[DataFile] = []
    size = 0
    for f in sorted(send, key=lambda f: f.size):
        if group and size + f.size > BATCH_BYTES:
            out.append((group, []))
            group, size = [], 0
        group.append(f)
        size += f.size
    if group:
        out.append((group, []))
    if linked:
        first = out[0][0] if out else []
        out[:1] = [(first, linked)]
    return out


def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", size: int = 0,
          mode: int = 0o444) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size, info.mode = kind, linkname, size, mode
    info.mtime = int(time.time())
    return info


def _promotions(tar: tarfile.TarFile, incoming: str, hashes: list[str]) -> None:
    for h in hashes:
        tar.addfile(_info(_object(h), tarfile.LNKTYPE, f"{incoming}/{h}"))


def _contents_archive(incoming: str, files: list[DataFile], links: list[str],
                      promote: list[str]) -> Any:
    def write(archive: Path) -> None:
        with tarfile.open(archive, "w:gz", compresslevel=1, format=tarfile.PAX_FORMAT) as tar:
            _promotions(tar, incoming, promote)
            tar.addfile(_info(incoming, tarfile.DIRTYPE, mode=0o755))
            for h in links:
                tar.addfile(_info(f"{incoming}/{h}", tarfile.LNKTYPE, f"{OBJECTS}/{h}"))
            for f in files:
                with open(f.local_path, "rb") as src:
                    tar.addfile(_info(f"{incoming}/{f.sha256}", size=f.size), src)

    return write


def _final_archive(incoming: str, promote: list[str], versions: list[DataVersion],
                   token: str) -> Any:
    """The last contents' links into objects/, then per version its tree of hard links,
    its manifest and, last, its link (the version exists from then on)."""
    def write(archive: Path) -> None:
        with tarfile.open(archive, "w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
            _promotions(tar, incoming, promote)
            for v in versions:
                tree = _tree_name(v, token)
                top = f"{DATA}/versions/{tree}"
                tar.addfile(_info(top, tarfile.DIRTYPE, mode=0o755))
                for f in v.files:
                    rel = run_relpath(f.relpath, "dataset file")
                    tar.addfile(_info(f"{top}/{rel}", tarfile.LNKTYPE, _object(f.sha256)))
                manifest = json.dumps({"name": v.name, "single": v.single_file, "files": [
                    [f.relpath, f.sha256, f.size] for f in v.files]}).encode()
                tar.addfile(_info(f"{DATA}/versions/{v.digest}.json", size=len(manifest),
                                  mode=0o644), io.BytesIO(manifest))
                target = f"{tree}/{v.files[0].relpath}" if v.single_file and v.files else tree
                tar.addfile(_info(f"{DATA}/versions/{v.digest}", tarfile.SYMTYPE, target,
                                  mode=0o777))

    return write
