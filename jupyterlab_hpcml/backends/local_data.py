"""The local machine's data store: dataset versions the local backend's runs read.

Laid out as on a cluster (``backends/ssh``), under ``<data_dir>/datasets``::

    objects/ab/abcdef…      file contents by sha256, read-only, shared by all versions
    versions/<digest>.json  a version's manifest ([relpath, sha256, size] each, + single)
    versions/<digest>/      its tree: hard links to the objects (complete, or absent)

A version is built in a temporary folder and renamed, so a job never sees half of one;
a content the store holds is never copied again. Runs link their data path to the tree.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..core.data_listing import listing_digest
from ..core.errors import NotFound
from ..core.files import run_relpath
from ..core.job import DataProgress, DataVersion, StagedData, StagedVersion, TargetListing


class LocalDataStore:
    def __init__(self, root: Path):
        self.root = root
        self.objects = root / "objects"
        self.versions = root / "versions"

    def _object(self, sha256: str) -> Path:
        return self.objects / sha256[:2] / sha256

    def location(self, version: DataVersion) -> Path:
        tree = self.versions / version.digest
        return tree / version.files[0].relpath if version.single_file else tree

    def stage(self, versions: Sequence[DataVersion],
              progress: DataProgress | None = None) -> list[StagedData]:
        out = []
        for version in versions:
            out.append(self._stage_one(version, progress))
        return out

    def _stage_one(self, version: DataVersion, progress: DataProgress | None) -> StagedData:
        tree = self.versions / version.digest
        if tree.is_dir():
            if progress:
                progress(0, 0, 0, 0)
            return StagedData(version.digest, str(self.location(version)))
        missing = {f.sha256: f for f in version.files
                   if not self._holds(f.sha256, f.size)}
        total = sum(f.size for f in missing.values())
        sent = files = 0
        if progress:
            progress(0, total, 0, len(missing))
        for f in missing.values():
            self._put(f.sha256, Path(f.local_path))
            sent, files = sent + f.size, files + 1
            if progress:
                progress(sent, total, files, len(missing))
        self._build(version)
        return StagedData(version.digest, str(self.location(version)), sent, files)

    def _holds(self, sha256: str, size: int) -> bool:
        try:
            return self._object(sha256).stat().st_size == size
        except FileNotFoundError:
            return False

    def _put(self, sha256: str, source: Path) -> None:
        target = self._object(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(f"{sha256}.{secrets.token_hex(6)}.part")  # threads race
        shutil.copyfile(source, part)
        os.chmod(part, 0o444)
        os.replace(part, target)

    def _build(self, version: DataVersion) -> None:
        self.versions.mkdir(parents=True, exist_ok=True)
        tree = self.versions / version.digest
        tmp = self.versions / f".tmp-{version.digest}-{secrets.token_hex(6)}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for f in version.files:
            target = tmp / run_relpath(f.relpath, "dataset file")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(self._object(f.sha256), target)
            except OSError:  # e.g. too many links: a read-only copy
                shutil.copyfile(self._object(f.sha256), target)
                os.chmod(target, 0o444)
        manifest = {"files": [[f.relpath, f.sha256, f.size] for f in version.files],
                    "single": version.single_file, "name": version.name}
        (self.versions / f"{version.digest}.json").write_text(json.dumps(manifest))
        try:
            os.rename(tmp, tree)
        except OSError:  # built meanwhile by another submission
            shutil.rmtree(tmp, ignore_errors=True)

    def staged(self) -> list[StagedVersion]:
        out = []
        for manifest in sorted(self.versions.glob("*.json")):
            tree = manifest.with_suffix("")
            if not tree.is_dir():
                continue
            data = json.loads(manifest.read_text())
            files = data["files"]
            location = tree / files[0][0] if data.get("single") and files else tree
            out.append(StagedVersion(tree.name, str(location), sum(f[2] for f in files),
                                     len(files), tree.stat().st_mtime))
        return out

    def remove(self, digest: str) -> bool:
        tree, manifest = self.versions / digest, self.versions / f"{digest}.json"
        if not manifest.exists() or "/" in digest or digest.startswith("."):
            return False
        gone = self.versions / f".old-{digest}-{secrets.token_hex(6)}"
        try:
            os.rename(tree, gone)
        except FileNotFoundError:
            pass
        manifest.unlink(missing_ok=True)
        shutil.rmtree(gone, ignore_errors=True)
        self._collect()
        return True

    def _collect(self) -> None:
        """Delete the contents no remaining version uses."""
        used = {f[1] for m in self.versions.glob("*.json")
                for f in json.loads(m.read_text())["files"]}
        for path in self.objects.glob("*/*"):
            if path.name not in used:
                path.unlink(missing_ok=True)


def listing(path: Path) -> TargetListing:
    """What is at ``path`` (data already on this machine), by path, size and mtime."""
    if not path.exists():
        raise NotFound(f"no such file or folder: {path}")
    entries: list[tuple[str, int, float]] = []
    if path.is_file():
        st = path.stat()
        entries.append((path.name, st.st_size, st.st_mtime))
    else:
        for dirpath, _dirs, names in os.walk(path):  # links to folders are not followed
            for name in names:
                full = Path(dirpath, name)
                st = full.lstat()
                entries.append((full.relative_to(path).as_posix(), st.st_size, st.st_mtime))
    return TargetListing(str(path), listing_digest(entries), sum(e[1] for e in entries),
                         len(entries))
