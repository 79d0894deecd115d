"""Datasets on a UNICORE site, in the user's HOME storage beside the code's object store::

    .hpcml/objects/<sha256>                     file contents, shared with the code
    .hpcml/datasets/versions/<digest>.json      a version's manifest (written last: a
                                                version is held once its manifest is there)
    .hpcml/datasets/versions/<digest>.files0    the same for the job: sha256 NUL relpath NUL
    .hpcml/datasets/versions/<digest>/          its tree: hard links to the objects

UNICORE's REST API cannot make a link in a storage (its storage actions are copy and rename;
an import's ``link:`` makes one only in a job's own directory), and a tree of server-side
copies would hold every byte twice. So ``stage_data`` sends the contents HOME lacks (each
streamed and hashed on the way: the bytes stored are the content named, else the upload is
dropped) and the manifests; the first job that reads a version builds its tree on the cluster
(``ln``, a copy where a link fails; in a temporary folder, renamed: never half a tree) and
every job links its data path to the tree (:func:`data_lines`, in ``job.sh`` before the
command). A version is sent once; a tree is built once.
"""
from __future__ import annotations

import concurrent.futures
import json
import posixpath
import re
import shlex
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..core.data_listing import listing_digest
from ..core.errors import NotFound, Problem, UserInputError
from ..core.files import META_DIR, run_relpath
from ..core.job import (
    DataFile,
    DataProgress,
    DataStage,
    DataVersion,
    StagedData,
    StagedVersion,
    TargetListing,
)
from .cas_upload import SharedUploads
from .unicore import STORE_DIR, UnicoreBackend, _HomeStore, _mtime

VERSIONS_DIR = f"{META_DIR}/datasets/versions"  # in HOME, beside the objects
_DIGEST = re.compile(r"[0-9a-f]{64}")
# A staged version's location: <HOME mount>/.hpcml/datasets/versions/<digest>[/<file>]
_STAGED = re.compile(rf"(/.*?/{re.escape(META_DIR)})/datasets/versions/([0-9a-f]{{64}})(?:/.*)?")


def _checked(version: DataVersion) -> None:
    if not _DIGEST.fullmatch(version.digest):
        raise UserInputError(Problem(f"invalid version digest for dataset {version.name!r}"))
    for f in version.files:
        if not run_relpath(f.relpath, f"a file of dataset {version.name!r}") \
                or not _DIGEST.fullmatch(f.sha256):
            raise UserInputError(Problem(
                f"invalid file {f.relpath!r} in dataset {version.name!r}"))


class UnicoreDataStore:
    """The data store in a site's HOME storage (blocking calls: run them in a thread)."""

    def __init__(self, backend: UnicoreBackend, home: _HomeStore, shared: SharedUploads,
                 threads: int = 4):
        self.backend, self.home, self.shared, self.threads = backend, home, shared, threads
        self.root = f"{home.mount.rstrip('/')}/{VERSIONS_DIR}"

    def location(self, digest: str, single: str | None = None) -> str:
        tree = f"{self.root}/{digest}"
        return f"{tree}/{single}" if single else tree

    def _held(self) -> dict[str, dict[str, Any]]:
        """digest → its manifest's listing entry (size, lastAccessed)."""
        return self._versions()[0]

    def _versions(self) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """The versions held (as :meth:`_held`) and those whose tree a job has built."""
        try:
            entries = self.backend._list_dir(self.home._file_url(VERSIONS_DIR),
                                              VERSIONS_DIR) or {}
        except NotFound:
            return {}, set()
        held, trees = {}, set()
        for name, meta in entries.items():
            leaf = name.rstrip("/").rsplit("/", 1)[-1]
            digest, _, ext = leaf.partition(".")
            if not _DIGEST.fullmatch(digest):
                continue
            if meta.get("isDirectory"):
                if not ext:
                    trees.add(digest)
            elif ext == "json":
                held[digest] = meta
        return held, trees

    # ------------------------------------------------------------ staging

    def stage(self, versions: Sequence[DataVersion],
              progress: DataProgress | None) -> list[StagedData]:
        for version in versions:
            _checked(version)
        held, trees = self._versions()
        present: dict[str, int | None] | None = None
        listed_at = 0.0
        out = []
        for version in versions:
            single = version.files[0].relpath if version.single_file and version.files else None
            where = self.location(version.digest, single)
            if version.digest in trees and version.digest in held:  # built: links, no objects
                if progress:
                    progress(0, 0, 0, 0)
                out.append(StagedData(version.digest, where))
                continue
            if present is None:  # one listing of the objects for all versions
                listed_at = self.shared.listing_started()
                present = self.home.present()
            missing = {f.sha256: f for f in version.files
                       if present.get(f.sha256, -1) not in (None, f.size)}
            if version.digest in held and not missing:  # held, its contents all there
                if progress:
                    progress(0, 0, 0, 0)
                out.append(StagedData(version.digest, where))
                continue
            sent_bytes, sent_files = self._send(list(missing.values()), listed_at, progress)
            present.update((sha, f.size) for sha, f in missing.items())
            self._write_manifests(version)
            out.append(StagedData(version.digest, where, sent_bytes, sent_files))
        return out

    def _send(self, files: list[DataFile], listed_at: float,
              progress: DataProgress | None) -> tuple[int, int]:
        """The contents HOME lacks, ``threads`` at a time; what this call sent (a content a
        concurrent submission stored meanwhile counts as done, not as sent)."""
        total, count = sum(f.size for f in files), len(files)
        lock = threading.Lock()
        done = [0, 0, 0, 0]  # bytes, files reported; bytes, files sent by us
        if progress:
            progress(0, total, 0, count)

        def one(f: DataFile) -> None:
            sent = self.shared.put(self.home, f.sha256, Path(f.local_path), listed_at)
            with lock:
                done[0] += f.size
                done[1] += 1
                if sent:
                    done[2] += f.size
                    done[3] += 1
                if progress:
                    progress(done[0], total, done[1], count)

        if files:
            with concurrent.futures.ThreadPoolExecutor(min(self.threads, len(files))) as pool:
                list(pool.map(one, files))
        return done[2], done[3]

    def _write_manifests(self, version: DataVersion) -> None:
        files0 = b"".join(b"%s\0%s\0" % (f.sha256.encode(), f.relpath.encode())
                          for f in version.files)
        manifest = {"name": version.name, "single": version.single_file,
                    "files": [[f.relpath, f.sha256, f.size] for f in version.files]}
        base = f"{VERSIONS_DIR}/{version.digest}"
        self.home.put_bytes(f"{base}.files0", files0)
        self.home.put_bytes(f"{base}.json", json.dumps(manifest).encode())  # last: it is held

    # ------------------------------------------------------------ listing and freeing

    def _manifest(self, digest: str) -> dict[str, Any] | None:
        data = self.home.read(f"{VERSIONS_DIR}/{digest}.json")
        return None if data is None else dict(json.loads(data))

    def staged(self) -> list[StagedVersion]:
        out = []
        for digest, meta in sorted(self._held().items()):
            manifest = self._manifest(digest)
            if manifest is None:  # freed meanwhile
                continue
            files = manifest.get("files") or []
            single = files[0][0] if manifest.get("single") and files else None
            out.append(StagedVersion(digest, self.location(digest, single),
                                     sum(int(f[2]) for f in files), len(files),
                                     _mtime(meta.get("lastAccessed")) or 0.0))
        return out

    def remove(self, digest: str) -> bool:
        """The version's tree and manifests, then the contents no other version uses. A
        content the code shares with it goes too: the next submission of that code sends it
        again (its plan lists the store)."""
        if not _DIGEST.fullmatch(digest):
            return False
        manifest = self._manifest(digest)
        if manifest is None:
            return False
        base = f"{VERSIONS_DIR}/{digest}"
        for rel in (f"{base}.json", f"{base}.files0", base):  # the manifest first: not held
            self.home.delete(rel)
        used = {f[1] for other in self._held() for f in (self._manifest(other) or {}).get(
            "files", [])}
        for sha in {f[1] for f in manifest.get("files", [])} - used:
            self.home.delete(f"{STORE_DIR}/{sha}")
        return True


# ------------------------------------------------------------ data already on the site


def storage_for(mounts: dict[str, str], path: str) -> tuple[str, str]:
    """(storage URL, path inside it) of the storage whose mount point holds ``path``
    (the deepest one); UserInputError when none does."""
    norm = posixpath.normpath(path)
    if not path.startswith("/") or norm != path.rstrip("/"):
        raise UserInputError(Problem(f"the path of data on the UNICORE site must be absolute "
                                     f"and normalised: {path!r}"))
    best: tuple[str, str] | None = None
    for url, mount in mounts.items():
        root = mount.rstrip("/")
        if norm == root or norm.startswith(root + "/"):
            if best is None or len(root) > len(mounts[best[0]].rstrip("/")):
                best = (url, norm[len(root):].lstrip("/"))
    if best is None:
        known = ", ".join(sorted(m for m in mounts.values())) or "none"
        raise UserInputError(Problem(f"{path} is in no storage of the UNICORE site "
                                     f"(mount points: {known})"))
    return best


def listing(backend: UnicoreBackend, mounts: dict[str, str], path: str) -> TargetListing:
    """What is at ``path`` on the site, by path, size and mtime (through the storage that
    holds it); NotFound when nothing is there."""
    storage, rel = storage_for(mounts, path)
    url = f"{storage}/files/{quote(rel)}" if rel else f"{storage}/files"
    try:
        props = backend._call_sync(f"reading {path}", backend._request("get", url))
    except NotFound:
        raise NotFound(f"no such file or folder on the UNICORE site: {path}") from None
    entries: list[tuple[str, int, float]] = []
    if not props.get("isDirectory"):
        entries.append(_entry(posixpath.basename(path), props))
    todo = [rel] if props.get("isDirectory") else []
    while todo:
        d = todo.pop()
        try:
            found = backend._list_dir(f"{storage}/files/{quote(d)}" if d else f"{storage}/files",
                                      d) or {}
        except NotFound:  # removed while listed
            continue
        for name, meta in found.items():
            full = name.strip("/")
            if meta.get("isDirectory"):
                todo.append(full)
                continue
            entries.append(_entry(full[len(rel) + 1:] if rel else full, meta))
    return TargetListing(path, listing_digest(entries), sum(e[1] for e in entries),
                         len(entries))


def _entry(rel: str, meta: dict[str, Any]) -> tuple[str, int, float]:
    return rel, int(meta.get("size") or 0), _mtime(meta.get("lastAccessed")) or 0.0


# ------------------------------------------------------------ the job's side

_TREE_FUNCTION = r"""__hpcml_data_tree() {  # $1: the store (HOME/.hpcml), $2: a version's digest
  local v="$1/datasets/versions" o="$1/objects" t __sha __rel __dir
  [ -d "$v/$2" ] && return 0
  [ -r "$v/$2.files0" ] || return 1
  t="$v/.tmp-$2-$$-$RANDOM"
  mkdir -p -- "$t" || return 1
  while IFS= read -r -d '' __sha && IFS= read -r -d '' __rel; do
    __dir="${__rel%/*}"; [ "$__dir" = "$__rel" ] || mkdir -p -- "$t/$__dir" || break
    ln -- "$o/$__sha" "$t/$__rel" 2>/dev/null || cp -- "$o/$__sha" "$t/$__rel" || break
    __sha=
  done < "$v/$2.files0"
  if [ -n "$__sha" ]; then rm -rf -- "$t"; return 1; fi
  find "$t" -type f -exec chmod a-w {} + || { rm -rf -- "$t"; return 1; }
  mv -T -- "$t" "$v/$2" 2>/dev/null || rm -rf -- "$t"
  [ -d "$v/$2" ]
}"""


def data_lines(stages: Sequence[DataStage]) -> list[str]:
    """``job.sh`` lines, before the command: each staged version's tree built when no job
    built it yet, each dataset's path in the working directory made a symbolic link to its
    location (``__hpcml_fail`` when the data is gone or a folder of the code is in the way)."""
    q = shlex.quote
    lines: list[str] = []
    for stage in stages:
        rel = run_relpath(stage.path, f"the path of dataset {stage.name!r}")
        if not rel or rel.split("/")[0] == META_DIR:
            raise UserInputError(Problem(
                f"the path of dataset {stage.name!r} must name a place in the working "
                f"directory outside {META_DIR}/: {stage.path!r}"))
        location = stage.location
        if not location.startswith("/"):
            raise UserInputError(Problem(f"dataset {stage.name!r}: not an absolute location "
                                         f"on the UNICORE site: {location!r}"))
        staged = _STAGED.fullmatch(location)
        if staged:
            if _TREE_FUNCTION not in lines:
                lines.insert(0, _TREE_FUNCTION)
            incomplete = q(f"cannot lay out dataset {stage.name}: its version is incomplete "
                           "in the data store (stage it again)")
            lines.append(f"__hpcml_data_tree {q(staged.group(1))} {staged.group(2)} "
                         f"|| __hpcml_fail 1 {incomplete}")
        gone = q(f"dataset {stage.name} is no longer at {location}")
        taken = q(f"the code already has a folder where dataset {stage.name} goes: {rel}")
        parent = posixpath.dirname(rel)
        lines += [
            f"[ -e {q(location)} ] || __hpcml_fail 1 {gone}",
            f"[ -L {q(rel)} ] || [ ! -d {q(rel)} ] || __hpcml_fail 1 {taken}",
            (f"mkdir -p -- {q(parent)} && " if parent else "")
            + f"ln -sfn -- {q(location)} {q(rel)} || __hpcml_fail 1 "
            + q(f"cannot link dataset {stage.name} at {rel}"),
        ]
    return lines
