"""Content-addressed, incremental code upload to a cluster over one SSH connection.

The cluster keeps a per-user object cache next to the run directories::

    <base>/hpcml/.cache/objects/ab/abcdef…   file contents by sha256 (read-only)
    <base>/hpcml/.cache/manifests/<id>.json  snapshot manifests ([path, sha256, mode, size] each)
    <base>/hpcml/.cache/trees/<id>-L<n>/     a snapshot materialised once (the most recent ones)
    <base>/hpcml/.cache/moded/ab/abcdef…-644  a copy of a content with a file mode (for trees)
    <base>/hpcml/.cache/incoming/            uploads in progress
    <base>/hpcml/.cache/helper-<v>.py        the small stdlib-only helper below (python3)
    <base>/hpcml/.cache/datasets/<digest>…   staged dataset versions (``data_store``: their
                                             manifests, and trees of hard links to objects/)

Getting a snapshot onto the cluster (``Uploader.ensure``, called by ``prepare``):

* nothing at all when this server already saw the snapshot's tree on the cluster (a
  re-run, a re-submission of unchanged code): no command, no SFTP;
* otherwise *plan* (one command): the manifest travels as a **delta** against a snapshot
  this server sent to the cluster before (added/changed entries + removed paths; the
  full list only the first time); the helper stores the manifest and answers which
  contents it lacks; when it lacks none it builds the tree at once (still one command);
* only the missing contents go over SFTP (pipelined, a few files at a time; progress is
  reported as bytes sent / bytes to send), then *tree* (one command): the helper checks
  the sha256 of every upload, moves it into the cache and builds the tree.

A tree holds the snapshot's files with the manifest's modes, as hard links to one copy per
(content, mode) in ``moded/`` (so a tree for an edited snapshot costs links, not copies;
trees are never written to), except files of 64 MiB and more (e.g. Apptainer images),
which stay in ``objects/`` and are hard-linked
into each run directory (``<n>`` in the tree's name). It is built in a temporary directory
and renamed, so an existing tree is complete. The helper keeps the ``KEEP_TREES`` trees most
recently built or planned (a run directory is a copy: pruning a tree harms no run), and at
most once a day deletes the contents, per-mode copies and manifests that no kept tree and
no staged dataset uses and that are older than ``MAX_AGE``, and uploads abandoned that long
in ``incoming/`` (under an exclusive ``flock``; helper commands hold it shared), so the
cache does not fill the user's quota.

The run directory itself is made by the shell fragment of :meth:`Uploader.materialise_command`,
which the backend runs in the same command as ``sbatch``: ``cp -Rp`` of the tree (copies:
a job that rewrites its own files must not corrupt the cache), ``ln`` for the large files.
When the tree has gone (pruned, cache cleaned) the fragment exits with ``TREE_MISSING``
before anything is submitted, and the backend rebuilds it with ``ensure(force=True)``.

Re-submitting after a one-file edit therefore sends that file, a few hundred bytes of
manifest delta and one helper command; submitting unchanged code sends nothing.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import posixpath
import secrets
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from ...core.errors import BackendUnavailable, HpcmlError, NotFound
from ...core.snapshots import ProgressCallback, Snapshot, SnapshotFile, load_snapshot
from .connection import SSHConnection

log = logging.getLogger(__name__)

UPLOAD_CONCURRENCY = 8
LINK_THRESHOLD = 64 << 20  # files this large are hard-linked from the cache, not copied
KEEP_TREES = 16  # materialised snapshots kept on the cluster (most recently used)
MAX_AGE = 14 * 86400  # seconds: unused cache contents older than this are deleted (daily)
# Helper commands safe to send again after a dropped connection (the others: once).
REPEATABLE_OPS = frozenset({"plan", "data_plan", "data_tree", "data_list", "data_rm", "listing",
                            "data_fetch"})
TREE_MISSING = 97  # exit status of the materialise fragment: the tree is gone, nothing was done

HELPER = r'''
import fcntl, hashlib, json, os, re, shutil, stat, sys, time

def atomic_write(path, data, mode=0o644):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)

def obj(cache, h):
    return os.path.join(cache, "objects", h[:2], h)

def moded(cache, h, mode):
    return os.path.join(cache, "moded", h[:2], "%s-%o" % (h, mode))

def load(cache, sid):
    try:
        with open(os.path.join(cache, "manifests", sid + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def safe(rel):
    parts = rel.split("/")
    if rel.startswith("/") or ".." in parts or "" in parts or "." in parts:
        raise SystemExit("unsafe path in manifest: %r" % rel)
    return rel

def lacking(cache, entries, extra):
    wanted = set(e[1] for e in entries) | set(extra)
    return sorted(h for h in wanted if not os.path.exists(obj(cache, h)))

def prune(trees, keep, current):
    now = time.time()
    names = []
    for name in os.listdir(trees):
        path = os.path.join(trees, name)
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            continue
        if name.startswith("."):
            if now - mtime > 3600:  # left over by a crash
                shutil.rmtree(path, ignore_errors=True)
        elif name != current:
            names.append((mtime, name))
    names.sort(reverse=True)
    for _mtime, name in names[max(keep - 1, 0):]:
        gone = os.path.join(trees, ".old-%s-%d" % (name, os.getpid()))
        try:
            os.rename(os.path.join(trees, name), gone)
        except OSError:
            continue
        shutil.rmtree(gone, ignore_errors=True)

def lock(cache, how):
    """flock on the cache: helper commands share it, the collection holds it alone
    (see collect). None where the file system has no locks: then nothing is collected."""
    fd = os.open(os.path.join(cache, "gc.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, how)
        return fd
    except OSError:
        os.close(fd)
        return None

def collect(cache, trees, max_age):
    """At most once a day: delete the contents, per-mode copies and manifests that no kept
    tree uses and that are older than max_age (seconds). A later submission that needs one
    uploads it again; run directories hold copies or their own links, so no run is harmed."""
    stamp = os.path.join(cache, "gc.stamp")
    now = time.time()
    try:
        if now - os.stat(stamp).st_mtime < 86400:
            return
    except OSError:
        pass
    if SHARED is None:
        return
    try:  # from shared to exclusive: only when no other helper command runs
        fcntl.flock(SHARED, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fcntl.flock(SHARED, fcntl.LOCK_SH)  # (a failed conversion may drop the shared lock)
        return
    try:
        atomic_write(stamp, b"")
        kept = set(n.rsplit("-L", 1)[0] for n in os.listdir(trees) if not n.startswith("."))
        used = set(e[1] for sid in kept for e in (load(cache, sid) or [])) | data_used(cache)
        for sub, key in (("objects", lambda f: f), ("moded", lambda f: f.split("-", 1)[0]),
                         ("manifests", lambda f: f[:-5] if f.endswith(".json") else f),
                         ("incoming", lambda f: f)):  # uploads abandoned long ago
            keep = kept if sub == "manifests" else set() if sub == "incoming" else used
            for dirpath, _dirs, files in os.walk(os.path.join(cache, sub)):
                for f in files:
                    path = os.path.join(dirpath, f)
                    try:
                        if key(f) not in keep and now - os.lstat(path).st_mtime > max_age:
                            os.unlink(path)
                    except OSError:
                        pass
    finally:
        fcntl.flock(SHARED, fcntl.LOCK_SH)

def build_tree(req, entries):
    cache, sid = req["cache"], req["id"]
    trees = os.path.join(cache, "trees")
    threshold = req.get("link_threshold", 1 << 62)
    name = "%s-L%d" % (sid, threshold)  # which files a tree leaves out depends on the threshold
    final = os.path.join(trees, name)
    if os.path.isdir(final):
        os.utime(final)  # recently used: kept by prune
        return
    os.makedirs(trees, exist_ok=True)
    tmp = os.path.join(trees, ".tmp-%s-%d" % (name, os.getpid()))
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    made = set()
    for rel, h, mode, size in entries:
        target = os.path.join(tmp, safe(rel))
        parent = os.path.dirname(target)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        if size >= threshold:  # large files are hard-linked from objects/ into each run
            continue
        # Trees share one copy per (content, mode): a new tree is mostly hard links. Run
        # directories get copies of them (cp -Rp, which does not keep hard links).
        src = moded(cache, h, mode & 0o777)
        if not os.path.exists(src):
            os.makedirs(os.path.dirname(src), exist_ok=True)
            part = "%s.%d.tmp" % (src, os.getpid())
            shutil.copyfile(obj(cache, h), part)
            os.chmod(part, mode & 0o777)
            os.replace(part, src)
        try:
            os.link(src, target)
        except OSError:  # e.g. too many links
            shutil.copyfile(src, target)
            os.chmod(target, mode & 0o777)
    try:
        os.rename(tmp, final)
    except OSError:  # built meanwhile by another submission
        shutil.rmtree(tmp, ignore_errors=True)
    prune(trees, req.get("keep_trees", 16), name)
    collect(cache, trees, req.get("max_age", 14 * 86400))

def plan(req):
    cache = req["cache"]
    for d in ("objects", "manifests", "incoming", "trees"):
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
    missing = lacking(cache, entries, req.get("extra_hashes", []))
    if missing:
        return {"missing": missing}
    build_tree(req, entries)
    return {"missing": [], "tree": True}

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

def accept(cache, name, h):
    """Move an upload into objects/ if its sha256 is h; else delete it (False)."""
    src = os.path.join(cache, "incoming", os.path.basename(name))
    if not os.path.exists(src):  # moved by this same command sent again
        return os.path.exists(obj(cache, hexname(h)))
    if sha256(src) != hexname(h):
        os.unlink(src)
        return False
    os.makedirs(os.path.dirname(obj(cache, h)), exist_ok=True)
    os.chmod(src, 0o444)
    os.replace(src, obj(cache, h))
    return True

def tree(req):
    cache = req["cache"]
    for name, h in req.get("incoming", []):
        if not accept(cache, name, h):
            raise SystemExit("upload of %s arrived corrupted" % h)
    entries = load(cache, req["id"])
    if entries is None:
        raise SystemExit("manifest %s missing on the cluster" % req["id"])
    missing = lacking(cache, entries, req.get("extra_hashes", []))
    if missing:
        return {"missing": missing}
    build_tree(req, entries)
    return {"missing": [], "tree": True}


# ---- datasets: datasets/<digest>.json (manifest), datasets/<digest>/ (the tree: hard links
# to objects/, read-only, built in a temporary directory and renamed: complete or absent)
HEX64 = re.compile(r"[0-9a-f]{64}\Z")

def hexname(h):
    if not isinstance(h, str) or not HEX64.match(h):
        raise SystemExit("not a sha256: %r" % (h,))
    return h

def data_manifest(cache, digest):
    return os.path.join(cache, "datasets", hexname(digest) + ".json")

def load_data(cache, digest):
    try:
        with open(data_manifest(cache, digest)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def data_location(cache, digest, m):
    tree = os.path.join(cache, "datasets", digest)
    return os.path.join(tree, m["files"][0][0]) if m.get("single") else tree

def data_used(cache):
    used = set()
    d = os.path.join(cache, "datasets")
    for n in (os.listdir(d) if os.path.isdir(d) else []):
        if n.endswith(".json") and HEX64.match(n[:-5]):
            used.update(f[1] for f in (load_data(cache, n[:-5]) or {}).get("files", []))
    return used

def rmtree_ro(path):
    for dirpath, _dirs, _files in os.walk(path):  # trees are read-only: make them writable
        try:
            os.chmod(dirpath, 0o700)
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)

def build_data(cache, digest, m):
    d = os.path.join(cache, "datasets")
    final = os.path.join(d, digest)
    if os.path.isdir(final):
        return
    now = time.time()
    for n in os.listdir(d):  # left over by a crash
        p = os.path.join(d, n)
        try:
            if n.startswith(".") and now - os.lstat(p).st_mtime > 3600:
                rmtree_ro(p)
        except OSError:
            pass
    tmp = os.path.join(d, ".tmp-%s-%d" % (digest, os.getpid()))
    rmtree_ro(tmp)
    os.makedirs(tmp)
    made = set()
    for rel, h, _size in m["files"]:
        target = os.path.join(tmp, safe(rel))
        parent = os.path.dirname(target)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        try:  # objects are read-only: the tree links to them, no copy
            os.link(obj(cache, h), target)
        except OSError:  # e.g. too many links: a read-only copy
            shutil.copyfile(obj(cache, h), target)
            os.chmod(target, 0o444)
    for dirpath, _dirs, _files in os.walk(tmp, topdown=False):  # jobs cannot write into it
        os.chmod(dirpath, 0o555)
    try:
        os.rename(tmp, final)
    except OSError:  # built meanwhile by another staging
        rmtree_ro(tmp)

def data_versions(cache, digests):
    out = {}
    for digest in digests:
        m = load_data(cache, digest)
        if m is None:
            raise SystemExit("dataset manifest %s missing on the cluster" % digest)
        missing = lacking(cache, m["files"], [])
        if not missing:
            build_data(cache, digest, m)
            out[digest] = {"tree": True, "location": data_location(cache, digest, m)}
        else:
            out[digest] = {"missing": missing}
    return out

def data_plan(req):
    cache = req["cache"]
    for d in ("objects", "incoming", "datasets"):
        os.makedirs(os.path.join(cache, d), exist_ok=True)
    pending = []
    out = {}
    for v in req["versions"]:
        digest = hexname(v["digest"])
        m = {"name": v.get("name", ""), "single": bool(v.get("single")), "files": v["files"]}
        for rel, h, _size in m["files"]:
            safe(rel)
            hexname(h)
        if m["single"] and len(m["files"]) != 1:
            raise SystemExit("a one-file dataset with %d files" % len(m["files"]))
        if os.path.isdir(os.path.join(cache, "datasets", digest)):
            out[digest] = {"tree": True, "location": data_location(cache, digest, m)}
            continue
        if load_data(cache, digest) != m:
            atomic_write(data_manifest(cache, digest), json.dumps(m).encode())
        pending.append(digest)
    out.update(data_versions(cache, pending))
    partials = {}  # resumable uploads: [size so far, sha256 of that much]
    for h in sorted(set(h for v in out.values() for h in v.get("missing", []))):
        p = os.path.join(cache, "incoming", h + ".partial")
        if os.path.isfile(p) and os.path.getsize(p):
            partials[h] = [os.path.getsize(p), sha256(p)]
    return {"versions": out, "partials": partials}

def data_tree(req):
    cache = req["cache"]
    corrupt = [h for name, h in req.get("incoming", []) if not accept(cache, name, h)]
    return {"versions": data_versions(cache, [hexname(d) for d in req["digests"]]),
            "corrupt": corrupt}

def data_list(req):
    cache = req["cache"]
    d = os.path.join(cache, "datasets")
    out = []
    for n in sorted(os.listdir(d) if os.path.isdir(d) else []):
        m = load_data(cache, n) if HEX64.match(n) else None
        try:
            staged_at = os.stat(os.path.join(d, n)).st_mtime if m else None
        except OSError:
            continue
        if m and staged_at is not None:
            out.append({"digest": n, "location": data_location(cache, n, m),
                        "size": sum(f[2] for f in m["files"]), "files": len(m["files"]),
                        "staged_at": staged_at})
    return {"versions": out}

def data_rm(req):
    cache = req["cache"]
    digest = hexname(req["digest"])
    d = os.path.join(cache, "datasets")
    gone = os.path.join(d, ".old-%s-%d" % (digest, os.getpid()))
    try:
        os.rename(os.path.join(d, digest), gone)
    except OSError:
        gone = None
    try:
        os.unlink(data_manifest(cache, digest))
    except OSError:
        pass
    if gone:
        rmtree_ro(gone)
    return {"removed": gone is not None}

def listing(req):
    """The version of data already on the cluster: each file's path, size and mtime
    (content not read), links inside not followed. {"missing": true} when nothing is there."""
    top = req["path"]
    if not top.startswith("/"):
        raise SystemExit("not an absolute path: %r" % top)
    try:
        st = os.stat(top)
    except OSError:
        return {"missing": True}
    if stat.S_ISDIR(st.st_mode):
        entries = []
        for dirpath, dirs, files in os.walk(top):  # links to directories: listed, not walked
            for n in files + [x for x in dirs if os.path.islink(os.path.join(dirpath, x))]:
                p = os.path.join(dirpath, n)
                try:
                    entries.append((os.path.relpath(p, top), os.lstat(p)))
                except OSError:
                    pass
    else:
        entries = [(os.path.basename(top), st)]
    h = hashlib.sha256()
    for rel, s in sorted(entries, key=lambda e: e[0]):
        # core/data_listing.py's digest: path, size, mtime in whole seconds
        h.update(("%s\0%d\0%d\n" % (rel, s.st_size, int(s.st_mtime))).encode("utf-8", "surrogateescape"))
    return {"path": top, "digest": h.hexdigest(), "size": sum(s.st_size for _r, s in entries),
            "files": len(entries)}

def unpack(archive, dest):
    """Regular files and folders of a tar or zip archive, each kept inside dest (links,
    devices and names leaving it are skipped): what the lab's machine keeps of it too."""
    import tarfile, zipfile
    def target(name):
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if not parts or name.startswith("/") or ".." in parts:
            return None
        return os.path.join(dest, *parts)
    if archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                path = target(info.filename)
                if path and not info.is_dir():
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with z.open(info) as src, open(path, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
        return
    with tarfile.open(archive) as t:
        for m in t:
            path = target(m.name)
            if path and m.isfile():
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with t.extractfile(m) as src, open(path, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)

ARCHIVES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")

def data_fetch(req):
    """An https:// dataset fetched by the cluster itself (conditional GET into fetch/, an
    archive unpacked), its files moved into objects/ and its version built: the digest is
    the one the lab's machine computes (engine/dataset_versions.py)."""
    import urllib.error, urllib.parse, urllib.request
    cache, url, name = req["cache"], req["url"], req.get("name", "")
    if not url.startswith("https://"):
        raise SystemExit("only https:// URLs are fetched")
    folder = os.path.join(cache, "fetch", hashlib.sha256(url.encode()).hexdigest()[:32])
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(urllib.parse.urlparse(url).path) or "download"
    download, meta_file = os.path.join(folder, base), os.path.join(folder, "meta.json")
    meta = {}
    if os.path.exists(download) and os.path.exists(meta_file):
        with open(meta_file) as f:
            meta = json.load(f)
    request = urllib.request.Request(url)
    if meta.get("etag"):
        request.add_header("If-None-Match", meta["etag"])
    if meta.get("last_modified"):
        request.add_header("If-Modified-Since", meta["last_modified"])
    fetched = 0
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            part = download + ".part"
            with open(part, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
            fetched = os.path.getsize(part)
            os.replace(part, download)
            atomic_write(meta_file, json.dumps({
                "etag": response.headers.get("ETag"),
                "last_modified": response.headers.get("Last-Modified")}).encode())
    except urllib.error.HTTPError as exc:
        if exc.code != 304:
            return {"error": "HTTP %d %s" % (exc.code, exc.reason)}
    except (urllib.error.URLError, OSError) as exc:
        return {"error": "cannot fetch it: %s" % (getattr(exc, "reason", exc),)}
    single = not base.endswith(ARCHIVES)
    if single:
        files = [(base, download)]
    else:
        tree = os.path.join(folder, "tree")
        if fetched or not os.path.isdir(tree):
            part = tree + ".part"
            rmtree_ro(part)
            os.makedirs(part)
            try:
                unpack(download, part)
            except Exception as exc:
                rmtree_ro(part)
                return {"error": "not an archive it can unpack: %s" % exc}
            rmtree_ro(tree)
            os.rename(part, tree)
        files = []
        for dirpath, dirs, names in os.walk(tree):
            dirs.sort()
            for n in names:
                p = os.path.join(dirpath, n)
                if not os.path.islink(p):
                    files.append((os.path.relpath(p, tree), p))
    entries = []
    for rel, p in sorted(files):
        h = sha256(p)
        if not os.path.exists(obj(cache, h)):
            os.makedirs(os.path.dirname(obj(cache, h)), exist_ok=True)
            tmp = "%s.%d.tmp" % (obj(cache, h), os.getpid())
            shutil.copyfile(p, tmp)
            os.chmod(tmp, 0o444)
            os.replace(tmp, obj(cache, h))
        entries.append([rel, h, os.path.getsize(p)])
    listing = hashlib.sha256()
    for rel, h, size in entries:  # dataset_versions.listing_digest
        listing.update(("%s\0%d\0%s\n" % (rel, size, h)).encode("utf-8", "surrogateescape"))
    digest = listing.hexdigest()
    m = {"name": name, "single": single, "files": entries}
    os.makedirs(os.path.join(cache, "datasets"), exist_ok=True)
    if load_data(cache, digest) != m:
        atomic_write(data_manifest(cache, digest), json.dumps(m).encode())
    build_data(cache, digest, m)
    return {"digest": digest, "location": data_location(cache, digest, m), "fetched": fetched,
            "size": sum(e[2] for e in entries), "files": len(entries)}

req = json.load(sys.stdin)
os.makedirs(req["cache"], exist_ok=True)
SHARED = lock(req["cache"], fcntl.LOCK_SH)  # no collection while this command runs
out = {"plan": plan, "tree": tree, "data_plan": data_plan, "data_tree": data_tree,
       "data_list": data_list, "data_rm": data_rm, "listing": listing,
       "data_fetch": data_fetch}[req["op"]](req)
sys.stdout.write(json.dumps(out))
'''  # noqa: E501 (a line of the cluster-side script: wrapping it would change what is sent)
HELPER_VERSION = hashlib.sha256(HELPER.encode()).hexdigest()[:12]


class TransferError(HpcmlError):
    status = 502


@dataclass
class UploadStats:
    snapshot_id: str
    files: int = 0
    uploaded_files: int = 0
    uploaded_bytes: int = 0  # file content sent
    manifest_bytes: int = 0  # plan/tree requests (manifest or delta)
    full_manifest: bool = False
    commands: int = 0  # helper commands run (0 when the tree was known to be there)
    seconds: float = 0.0


@dataclass
class _RemoteState:
    """What this server knows the cluster has (per connection, in memory)."""

    snapshots: list[str] = field(default_factory=list)  # manifests sent, most recent last
    trees: set[str] = field(default_factory=set)  # snapshot trees seen built
    objects: set[str] = field(default_factory=set)  # link objects (images) seen present
    helper: str | None = None  # path of the uploaded helper


def _entry(f: SnapshotFile) -> list[Any]:
    return [f.relpath, f.sha256, f.mode & 0o777, f.size]


def tree_dir(cache: str, snapshot_id: str) -> str:
    """Where the helper builds the snapshot's tree (its name says which files it leaves out)."""
    return f"{cache}/trees/{snapshot_id}-L{LINK_THRESHOLD}"


def object_path(cache: str, h: str) -> str:
    return f"{cache}/objects/{h[:2]}/{h}"


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

        async def ensure(sftp: asyncssh.SFTPClient) -> None:
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

    async def _call(self, cache: str, request: dict[str, Any], stats: UploadStats,
                    what: str = "preparing the run directory") -> dict[str, Any]:
        helper = await self._helper(cache)
        body = json.dumps(request, separators=(",", ":")).encode()
        stats.manifest_bytes += len(body)
        stats.commands += 1
        # -I -S: no user site, no site-packages scan: the helper is stdlib-only, this starts
        # fastest.
        res = await self.conn.run(f"python3 -I -S {shlex.quote(helper)}", input=body,
                                  name=f"hpcml-{request['op']}",
                                  retry=request["op"] in REPEATABLE_OPS)
        if res.exit_status == 127:
            raise TransferError(f"python3 is needed on the login node of {self.conn.label} "
                                "to unpack uploads")
        if res.exit_status != 0:
            raise TransferError(f"{what} on {self.conn.label} failed: "
                                f"{(res.err or res.out).strip()[-2000:]}")
        try:
            answer: dict[str, Any] = json.loads(res.stdout)
        except ValueError:
            raise TransferError(
                f"unexpected answer from the upload helper: {res.out[:500]!r}") from None
        return answer

    # ------------------------------------------------------------------ upload

    async def link_hashes(self, links: dict[str, Path] | None) -> dict[str, str]:
        """relpath → sha256 of files outside the snapshot that are hard-linked into the run."""
        out: dict[str, str] = {}
        for rel, path in (links or {}).items():
            out[rel] = await asyncio.to_thread(self._hash_file, path)
        return out

    def has_tree(self, snapshot_id: str, link_hashes: dict[str, str] | None = None) -> bool:
        """Whether this server saw the snapshot's tree (and the link objects) on the cluster."""
        objects = self.state.objects
        return snapshot_id in self.state.trees and all(
            h in objects for h in (link_hashes or {}).values())

    async def ensure(
        self,
        snapshot: Snapshot,
        cache: str,
        links: dict[str, Path] | None = None,
        link_hashes: dict[str, str] | None = None,
        progress: ProgressCallback | None = None,
        force: bool = False,
    ) -> UploadStats:
        """Make the cluster hold the snapshot's tree (and the contents of ``links``: relpath →
        local file, e.g. an Apptainer image outside the project), sending only what it lacks.
        Nothing travels when the tree is known to be there, unless ``force``."""
        t0 = time.monotonic()
        stats = UploadStats(snapshot.id, files=len(snapshot.files))
        if link_hashes is None:
            link_hashes = await self.link_hashes(links)
        if not force and self.has_tree(snapshot.id, link_hashes):
            if progress:
                progress(0, 0)
            return stats
        local: dict[str, Path] = {f.sha256: snapshot.object_path(f) for f in snapshot.files}
        for rel, h in link_hashes.items():
            local[h] = (links or {})[rel]
        extra = sorted(set(link_hashes.values()))

        async with self._lock:  # one upload plan at a time per cluster (shared base manifests)
            if not force and self.has_tree(snapshot.id, link_hashes):  # built while we waited
                return stats
            request = self._plan_request(snapshot, cache, extra)
            stats.full_manifest = request.get("files") is not None
            answer = await self._call(cache, request, stats)
            if answer.get("need_full"):
                stats.full_manifest = True
                full = self._plan_request(snapshot, cache, extra, full=True)
                answer = await self._call(cache, full, stats)
            self._remember(snapshot.id)
        for _attempt in range(2):
            if answer.get("tree"):
                break
            incoming = await self._send(cache, answer.get("missing", []), local, stats, progress)
            answer = await self._call(cache, {
                "op": "tree", "cache": cache, "id": snapshot.id, "incoming": incoming,
                "extra_hashes": extra, "link_threshold": LINK_THRESHOLD, "keep_trees": KEEP_TREES,
                "max_age": MAX_AGE,
            }, stats)
            # "missing" again: the cache was cleaned meanwhile
        if not answer.get("tree"):
            raise TransferError(f"objects kept disappearing from the cache on {self.conn.label}")
        self.state.trees.add(snapshot.id)
        self.state.objects.update(extra)
        stats.seconds = time.monotonic() - t0
        if progress:
            progress(stats.uploaded_bytes, stats.uploaded_bytes)
        return stats

    def forget_tree(self, snapshot_id: str) -> None:
        self.state.trees.discard(snapshot_id)

    @staticmethod
    def materialise_command(snapshot: Snapshot, cache: str, dest: str,
                            link_hashes: dict[str, str] | None = None) -> str:
        """A POSIX shell fragment making ``dest`` hold the snapshot from its tree (+ the
        link objects). It exits with ``TREE_MISSING`` when the tree or an object is gone
        (before doing anything when the tree is gone)."""
        q = shlex.quote
        tree = tree_dir(cache, snapshot.id)
        parent = posixpath.dirname(dest.rstrip("/"))
        lines = [
            f"[ -d {q(tree)} ] || exit {TREE_MISSING}",
            f"[ -d {q(parent)} ] || mkdir -p {q(parent)} || exit 99",
            # "tree/." into dest: dest is created when missing, filled when it exists
            f"cp -Rpf {q(tree + '/.')} {q(dest)} || exit {TREE_MISSING}",
        ]
        links = [(f.relpath, f.sha256) for f in snapshot.files if f.size >= LINK_THRESHOLD]
        links += sorted((link_hashes or {}).items())
        for rel, h in links:
            src, target = q(object_path(cache, h)), q(f"{dest}/{rel}")
            lines.append(f"[ -f {src} ] || exit {TREE_MISSING}")
            if posixpath.dirname(rel):
                lines.append(f"mkdir -p {q(posixpath.dirname(f'{dest}/{rel}'))} || exit 99")
            lines.append(f"ln -f {src} {target} 2>/dev/null || cp -f {src} {target} || exit 99")
        return "\n".join(lines)

    def _plan_request(self, snapshot: Snapshot, cache: str, extra_hashes: list[str],
                      full: bool = False) -> dict[str, Any]:
        req: dict[str, Any] = {"op": "plan", "cache": cache, "id": snapshot.id,
                               "extra_hashes": extra_hashes, "link_threshold": LINK_THRESHOLD,
                               "keep_trees": KEEP_TREES, "max_age": MAX_AGE}
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
        if not self.manifest_dir or not self.state.snapshots:
            return None
        base_id = self.state.snapshots[-1]
        try:
            base = load_snapshot(base_id, self.manifest_dir.parent / "objects", self.manifest_dir)
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
            raise TransferError(
                f"the cluster asks for contents this server does not have: {unknown[:3]}")
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
                    # Blocks as large as the server takes (its limits@openssh.com): OpenSSH's
                    # sftp-server quits on a write of 256 KiB (its limit is 255 KiB).
                    str(local[h]), remote,
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
