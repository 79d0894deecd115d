"""An ``https://`` dataset: one file, or an archive unpacked into a folder.

Fetched into a cache (one folder per URL) with a conditional GET, so an unchanged remote
file is not downloaded again; written to a ``.part`` file and renamed, so an interrupted
download is never taken for a complete one. Archives (.tar, .tar.gz/.tgz, .tar.bz2,
.tar.xz, .zip) are unpacked with every member checked: nothing is written outside the
folder, links and devices are refused (tarfile's "data" filter; zip names checked).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from ...core.errors import Problem, UserInputError

TIMEOUT = 60.0
_CHUNK = 1 << 20
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def _fail(url: str, why: str) -> UserInputError:
    return UserInputError(Problem(f"{url}: {why}", key="source"))


def fetch(url: str, cache_dir: Path) -> Path:
    """The dataset's local copy: the file, or the folder an archive unpacks to."""
    if not url.startswith("https://"):
        raise _fail(url, "only https:// URLs are fetched")
    folder = cache_dir / hashlib.sha256(url.encode()).hexdigest()[:32]
    folder.mkdir(parents=True, exist_ok=True)
    name = PurePosixPath(urllib.parse.urlparse(url).path).name or "download"
    download, meta_file = folder / name, folder / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() and download.exists() else {}
    request = urllib.request.Request(url)
    if meta.get("etag"):
        request.add_header("If-None-Match", meta["etag"])
    if meta.get("last_modified"):
        request.add_header("If-Modified-Since", meta["last_modified"])
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            part = download.with_name(download.name + ".part")
            with open(part, "wb") as out:
                shutil.copyfileobj(response, out, _CHUNK)
            part.replace(download)
            meta = {"etag": response.headers.get("ETag"),
                    "last_modified": response.headers.get("Last-Modified")}
            meta_file.write_text(json.dumps(meta))
            changed = True
    except urllib.error.HTTPError as exc:
        if exc.code != 304:
            raise _fail(url, f"HTTP {exc.code} {exc.reason}") from None
        changed = False  # not modified: the copy we have is current
    except (urllib.error.URLError, OSError) as exc:
        raise _fail(url, f"cannot fetch it: {getattr(exc, 'reason', exc)}") from None
    if not name.endswith((*_TAR_SUFFIXES, ".zip")):
        return download
    tree = folder / "tree"
    if changed or not tree.exists():
        _unpack(url, download, tree)
    return tree


def _unpack(url: str, archive: Path, tree: Path) -> None:
    staging = tree.with_name("tree.part")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                for member in z.namelist():
                    path = PurePosixPath(member)
                    if path.is_absolute() or ".." in path.parts:
                        raise _fail(url, f"archive member {member!r} leaves the folder")
                z.extractall(staging)
        else:
            with tarfile.open(archive) as t:
                t.extractall(staging, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise _fail(url, f"not an archive it can unpack: {exc}") from None
    except UserInputError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(tree, ignore_errors=True)
    staging.replace(tree)
