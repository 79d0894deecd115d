"""A submission's datasets: which ones, their versions, and getting them to the target.

* :func:`select` (at submission, before anything is created): the datasets of the
  project's ``datasets.yaml`` this run reads (all, unless the request narrows them), the
  ones its backend config maps to data already on the target (``Data:``), local sources
  checked; the code snapshot leaves every in-project source out.
* :meth:`DataStager.stage` (the run is STAGING): each dataset's files on this machine
  (fetched for an ``https://``/``s3://`` source), its version (content listing digest,
  hashes remembered per file), then ``Backend.stage_data`` sends the target what it lacks;
  a mapped dataset is only listed where it is. Answers the links the job's run directory
  gets (``ctx.data``) and what the run records (``DatasetUse``).
"""
from __future__ import annotations

import asyncio
import posixpath
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends.base import Backend
from ..core.errors import BackendUnavailable, HpcmlError, Problem, UserInputError
from ..core.job import DataFile, DataStage, DataVersion, StagedVersion
from . import data_sources, dataset_versions, datasets
from .config import BackendConfig
from .datasets import DatasetSpec
from .hash_cache import HashCache
from .models import DatasetUse


@dataclass
class DataSelection:
    """The datasets one submission reads (``specs``, in declaration order); ``mapped``:
    name → path on the target for the ones the config maps there."""

    specs: list[DatasetSpec] = field(default_factory=list)
    mapped: dict[str, str] = field(default_factory=dict)
    excludes: list[str] = field(default_factory=list)  # in-project sources: not code
    notes: list[str] = field(default_factory=list)
    # A re-run of the same code reads the same versions (name → digest) while the target
    # still holds them; else the current ones, with a note.
    pinned: dict[str, str] = field(default_factory=dict)
    # ``DataFetch: cluster``: the target downloads https:// sources itself where it can.
    fetch_on_target: bool = False

    def job_env(self, run_dir: str | None) -> dict[str, str]:
        """``HPCML_DATA_<NAME>``: where the job finds each dataset (absolute once the run
        directory is known; relative to the job's working directory before)."""
        return {s.env_name: posixpath.join(run_dir, s.path) if run_dir else s.path
                for s in self.specs}


def select(project_dir: Path, cfg: BackendConfig, backend: Backend[Any],
           names: Sequence[str] | None) -> DataSelection:
    """The submission's datasets, checked (UserInputError naming every problem; blocking).
    ``names``: None for all declared, [] for none."""
    declared = datasets.load(project_dir)
    mapping: dict[str, str] = dict(cfg.data.get("Data") or {})
    problems = [Problem(f"dataset {name!r} is mapped here but not declared in "
                        f"{datasets.FILE_NAME}", key=f"Data.{name}")
                for name in mapping if name not in declared]
    wanted = list(declared) if names is None else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in declared]
    if unknown:
        known = ", ".join(declared) or f"none: the project has no {datasets.FILE_NAME}"
        problems.append(Problem(
            f"unknown dataset{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(declared: {known})", key="data"))
    excludes = [f"/{s.source}" for s in declared.values() if s.kind == "project"]
    selection = DataSelection(excludes=excludes)
    if problems:
        raise UserInputError(problems)
    if wanted and not backend.supported_features().data_staging:
        if names is not None:
            raise UserInputError(Problem(
                f"the {backend.kind} backend cannot stage data yet: run without --data "
                "(or with --no-data)", key="data"))
        selection.notes.append(f"datasets not staged: the {backend.kind} backend cannot "
                               f"stage data yet ({', '.join(wanted)})")
        return selection
    selection.fetch_on_target = cfg.data.get("DataFetch") == "cluster" and \
        backend.supported_features().data_fetch
    selection.specs = [declared[n] for n in wanted]
    selection.mapped = {n: mapping[n] for n in wanted if n in mapping}
    problems = [p for s in selection.specs if s.name not in selection.mapped
                for p in [data_sources.check_local(s, project_dir)] if p is not None]
    if problems:
        raise UserInputError(problems)
    return selection


# A staged version no stored run read goes after this long (the code cache's rule on a
# cluster); looked for at most once a day per target, after a run's staging.
DATA_MAX_AGE = 14 * 86400.0
COLLECT_EVERY = 86400.0


async def collect(backend: Backend[Any], used: set[str], now: float,
                  max_age: float = DATA_MAX_AGE) -> list[str]:
    """Remove the target's staged versions that no stored run read and that were staged
    more than ``max_age`` seconds ago; their digests."""
    removed = []
    for version in await backend.staged_versions():
        if version.digest not in used and now - version.staged_at > max_age:
            if await backend.remove_staged(version.digest):
                removed.append(version.digest)
    return removed


@dataclass
class StagingProgress:
    """What a STAGING run has sent so far (for the lab and the CLI)."""

    sent_bytes: int = 0
    total_bytes: int = 0
    sent_files: int = 0
    total_files: int = 0
    started_at: float = field(default_factory=time.time)
    dataset: str = ""  # the one being worked on

    def as_dict(self) -> dict[str, Any]:
        elapsed = max(time.time() - self.started_at, 1e-6)
        rate = self.sent_bytes / elapsed
        left = self.total_bytes - self.sent_bytes
        return {"dataset": self.dataset, "sent_bytes": self.sent_bytes,
                "total_bytes": self.total_bytes, "sent_files": self.sent_files,
                "total_files": self.total_files, "rate": rate,
                "eta": left / rate if rate > 0 and left > 0 else None}


def version_at(name: str, path: Path, hasher: dataset_versions.Hasher | None = None
               ) -> tuple[DataVersion, list[str]]:
    """Dataset ``name``'s version made of the files at ``path`` (a folder or one file), and
    notes (e.g. files skipped as links out of it); blocking."""
    found = dataset_versions.local_version(path, hasher)
    files = tuple(DataFile(f.relpath, f.size, f.sha256, str(f.local)) for f in found.listing)
    return (DataVersion(name, found.digest, files, single_file=path.is_file()),
            [f"dataset {name}: {n}" for n in found.notes])


class DataStager:
    """Gets a selection's datasets to a target (one per engine: its caches are shared)."""

    def __init__(self, data_dir: Path):
        self.cache_dir = data_dir / "data-cache"  # fetched https/s3 sources
        self._hashes: HashCache | None = None
        self._data_dir = data_dir

    @property
    def hashes(self) -> HashCache:
        if self._hashes is None:
            self._hashes = HashCache(self._data_dir / "data-hashes.sqlite")
        return self._hashes

    def version(self, spec: DatasetSpec, project_dir: Path) -> tuple[DataVersion, list[str]]:
        """The dataset's current version on this machine (fetched first when remote);
        blocking. Notes: e.g. files skipped as links out of the source."""
        path = data_sources.local_path(spec, project_dir, self.cache_dir)
        return version_at(spec.name, path, self.hashes.sha256)

    async def stage(self, selection: DataSelection, backend: Backend[Any], project_dir: Path,
                    progress: StagingProgress | None = None,
                    ) -> tuple[list[DataStage], list[DatasetUse], list[str]]:
        """Every dataset of ``selection`` on the target: the run directory's links, the
        run's record of them, and notes for the run. Raises (UserInputError, a backend's
        error) with the reason."""
        progress = progress or StagingProgress()
        stages: list[DataStage] = []
        uses: list[DatasetUse] = []
        notes: list[str] = []
        held: dict[str, StagedVersion] | None = None
        for spec in selection.specs:
            pinned = selection.pinned.get(spec.name)
            if pinned and spec.name not in selection.mapped:
                if held is None:
                    held = {s.digest: s for s in await backend.staged_versions()}
                if pinned in held:
                    same = held[pinned]
                    stages.append(DataStage(spec.name, spec.path, same.location))
                    uses.append(DatasetUse(
                        name=spec.name, source=spec.source_text,
                        path=spec.path, digest=pinned, size=same.size, files=same.files,
                        location=same.location))
                    notes.append(f"dataset {spec.name}: the same version as the run re-run "
                                 f"({pinned[:12]}), still on the target")
                    continue
            progress.dataset = spec.name
            mapped = selection.mapped.get(spec.name)
            if mapped is not None:
                listing = await backend.target_listing(mapped)
                stages.append(DataStage(spec.name, spec.path, mapped))
                uses.append(DatasetUse(name=spec.name, source=mapped, path=spec.path,
                                       digest=listing.digest, version="listing",
                                       size=listing.size, files=listing.files,
                                       location=mapped))
                continue
            if spec.kind == "https" and selection.fetch_on_target:
                try:
                    held_now = await backend.fetch_data(spec.name, spec.source)
                except BackendUnavailable:
                    raise
                except HpcmlError as exc:  # e.g. no route out: this machine fetches it
                    notes.append(f"dataset {spec.name}: the target could not fetch it ({exc}); "
                                 "fetched here and sent")
                else:
                    stages.append(DataStage(spec.name, spec.path, held_now.location))
                    uses.append(DatasetUse(
                        name=spec.name, source=spec.source, path=spec.path,
                        digest=held_now.digest, size=held_now.size, files=held_now.files,
                        location=held_now.location))
                    notes.append(f"dataset {spec.name}: fetched by the target itself")
                    continue
            version, found_notes = await asyncio.to_thread(self.version, spec, project_dir)
            notes.extend(found_notes)
            if pinned and version.digest != pinned:
                notes.append(f"dataset {spec.name}: the version the re-run run read "
                             f"({pinned[:12]}) is no longer on the target; this run reads the "
                             f"current one ({version.digest[:12]})")
            base = (progress.sent_bytes, progress.total_bytes, progress.sent_files,
                    progress.total_files)
            report = _adder(progress, base)
            (staged,) = await backend.stage_data([version], report)
            location = staged.location
            stages.append(DataStage(spec.name, spec.path, location))
            uses.append(DatasetUse(
                name=spec.name, source=spec.source_text,
                path=spec.path, digest=version.digest, size=version.size,
                files=len(version.files), location=location, sent_bytes=staged.sent_bytes,
                sent_files=staged.sent_files))
        return stages, uses, notes

    def close(self) -> None:
        if self._hashes is not None:
            self._hashes.close()


def size_text(nbytes: int) -> str:
    """``1536`` → "1.5 KiB" (binary units, as du -h)."""
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _adder(progress: StagingProgress, base: tuple[int, int, int, int]
           ) -> Callable[[int, int, int, int], None]:
    """A backend's progress for one dataset, added to what the datasets before it sent."""

    def report(sent: int, total: int, files: int, total_files: int) -> None:
        progress.sent_bytes, progress.total_bytes = base[0] + sent, base[1] + total
        progress.sent_files, progress.total_files = base[2] + files, base[3] + total_files

    return report
