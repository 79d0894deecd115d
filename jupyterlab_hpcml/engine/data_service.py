"""Datasets as the faces see them: a project's datasets with their versions, where each
is staged and which runs read it; staging ahead of a run; freeing a version on a target.

Runs stage their own data (``RunService._stage``); this is for ``hpcml data``, the REST
API's ``/data`` and the lab's Data tab. A version is known from the project's files (its
current one), from the runs that read it, and from the target's data store.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ..backends.base import Backend
from ..core.errors import BackendUnavailable, Conflict, NotFound, UserInputError
from . import data as data_mod
from . import datasets as datasets_mod
from . import project as project_mod
from .config import BackendConfig
from .models import DatasetUse, RunRecord
from .runs import RunService

log = logging.getLogger(__name__)
MAX_FINISHED_STAGINGS = 20  # kept for late readers of their result
MAX_RUNNING_STAGINGS = 4  # at once per server: each holds connections, threads, bandwidth


@dataclass
class _Target:
    project_dir: Path
    cfg: BackendConfig
    backend: Backend[Any]
    selection: data_mod.DataSelection


class DataRunRef(BaseModel):
    id: str
    name: str
    state: str
    created_at: float


class DataVersionView(BaseModel):
    digest: str
    version: str = "content"  # "listing": data mapped to a path on the target
    size: int | None = None
    files: int | None = None
    current: bool = False  # the project's data is this version now
    staged: bool = False  # held by the target's data store
    location: str | None = None
    staged_at: float | None = None
    runs: list[DataRunRef] = Field(default_factory=list)  # newest first


class DatasetView(BaseModel):
    name: str
    kind: str  # project, local, https, s3, dvc
    source: str
    path: str  # where the job sees it
    env: str  # HPCML_DATA_<NAME>
    description: str | None = None
    mapped_to: str | None = None  # the config maps it to this path on the target
    versions: list[DataVersionView] = Field(default_factory=list)  # current first
    note: str | None = None  # e.g. why the current version is not known


class DataView(BaseModel):
    project: str
    config: str | None
    backend: str
    connection: str
    can_stage: bool
    datasets: list[DatasetView] = Field(default_factory=list)
    other_staged: list[DataVersionView] = Field(default_factory=list)  # no dataset known
    notes: list[str] = Field(default_factory=list)


class StagingView(BaseModel):
    id: str
    state: str  # "running", "done", "failed"
    progress: dict[str, Any]
    datasets: list[DatasetUse] = Field(default_factory=list)
    error: str | None = None


class DataService:
    def __init__(self, runs: RunService):
        self.runs = runs
        self._stagings: dict[str, tuple[data_mod.StagingProgress, asyncio.Task[list[DatasetUse]]]]
        self._stagings = {}

    async def _target(self, project: Path, config: str | None, root: Path | None,
                      names: list[str] | None = None) -> _Target:
        project_dir = await asyncio.to_thread(project_mod.find_project_root, project, root)
        cfg = await asyncio.to_thread(self.runs.backend_config, project_dir, config, None, root)
        backend = self.runs.registry.get(cfg.kind, cfg.data)
        selection = await asyncio.to_thread(data_mod.select, project_dir, cfg, backend, names)
        return _Target(project_dir, cfg, backend, selection)

    async def overview(self, project: Path, config: str | None = None,
                       root: Path | None = None, current: bool = True) -> DataView:
        """The project's datasets on the config's target. ``current``: also the version
        the project's local data has now (hashes remembered: fast after the first time)."""
        target = await self._target(project, config, root, [])
        project_dir, cfg, backend = target.project_dir, target.cfg, target.backend
        declared = await asyncio.to_thread(datasets_mod.load, project_dir)
        mapping: dict[str, str] = dict(cfg.data.get("Data") or {})
        can_stage = backend.supported_features().data_staging
        view = DataView(project=str(project_dir), config=config, backend=cfg.kind,
                        connection=cfg.connection_name, can_stage=can_stage)
        staged: dict[str, DataVersionView] = {}
        if can_stage:
            try:
                for s in await backend.staged_versions():
                    staged[s.digest] = DataVersionView(
                        digest=s.digest, size=s.size, files=s.files, staged=True,
                        location=s.location, staged_at=s.staged_at)
            except BackendUnavailable as exc:
                view.notes.append(f"could not list the staged data: {exc}")
        used = await self._uses(project_dir, cfg.connection_name)
        for spec in declared.values():
            ds = DatasetView(name=spec.name, kind=spec.kind, source=spec.source,
                             path=spec.path, env=spec.env_name, description=spec.description,
                             mapped_to=mapping.get(spec.name))
            versions: dict[str, DataVersionView] = {}
            if current and ds.mapped_to is None:
                if spec.kind in ("project", "local"):
                    try:
                        now, _notes = await asyncio.to_thread(
                            self.runs.data.version, spec, project_dir)
                        versions[now.digest] = DataVersionView(
                            digest=now.digest, size=now.size, files=len(now.files),
                            current=True)
                    except UserInputError as exc:
                        ds.note = str(exc)
                else:
                    ds.note = "a remote source: its version is known once it is staged"
            for use, run in used.get(spec.name, []):
                v = versions.setdefault(use.digest, DataVersionView(
                    digest=use.digest, version=use.version, size=use.size, files=use.files))
                v.runs.append(DataRunRef(id=run.id, name=run.name, state=run.state.value,
                                         created_at=run.created_at))
            for digest, v in versions.items():
                if digest in staged:
                    held = staged.pop(digest)
                    v.staged, v.location, v.staged_at = True, held.location, held.staged_at
            ds.versions = sorted(versions.values(), key=lambda v: (
                not v.current, -max([r.created_at for r in v.runs], default=0)))
            view.datasets.append(ds)
        view.other_staged = list(staged.values())
        return view

    async def _uses(self, project_dir: Path, connection: str
                    ) -> dict[str, list[tuple[DatasetUse, RunRecord]]]:
        runs, _total = await asyncio.to_thread(
            self.runs.store.list, project=str(project_dir), archived=None, limit=1000)
        out: dict[str, list[tuple[DatasetUse, RunRecord]]] = {}
        for run in runs:  # newest first
            if run.connection != connection:
                continue
            for use in run.datasets:
                out.setdefault(use.name, []).append((use, run))
        return out

    async def stage(self, project: Path, config: str | None = None,
                    names: list[str] | None = None, root: Path | None = None,
                    progress: data_mod.StagingProgress | None = None) -> list[DatasetUse]:
        """Stage datasets ahead of any run (all declared unless ``names``)."""
        target = await self._stageable(project, config, names, root)
        return await self._stage(target, progress)

    async def _stageable(self, project: Path, config: str | None, names: list[str] | None,
                         root: Path | None) -> _Target:
        target = await self._target(project, config, root, names)
        if not target.backend.supported_features().data_staging:
            raise UserInputError(f"the {target.backend.kind} backend cannot stage data yet")
        return target

    async def _stage(self, target: _Target,
                     progress: data_mod.StagingProgress | None) -> list[DatasetUse]:
        _stages, uses, _notes = await self.runs.data.stage(target.selection, target.backend,
                                                   target.project_dir, progress)
        return uses

    async def start_staging(self, project: Path, config: str | None, names: list[str] | None,
                            root: Path | None) -> StagingView:
        """:meth:`stage` in the background, followed with :meth:`staging`. Bad input
        (an unknown name, a missing source, a config that cannot stage) is raised here,
        before anything starts."""
        target = await self._stageable(project, config, names, root)
        running = sum(not task.done() for _p, task in self._stagings.values())
        if running >= MAX_RUNNING_STAGINGS:
            raise Conflict(f"{running} stagings are running (at most {MAX_RUNNING_STAGINGS} "
                           "at once): wait for one to end")
        progress = data_mod.StagingProgress()
        task = asyncio.ensure_future(self._stage(target, progress))
        staging_id = secrets.token_hex(6)
        task.add_done_callback(functools.partial(_log_failure, staging_id))
        finished = [k for k, (_p, t) in self._stagings.items() if t.done()]
        for key in finished[:-MAX_FINISHED_STAGINGS]:  # oldest first (dicts keep order)
            del self._stagings[key]
        self._stagings[staging_id] = (progress, task)
        return self.staging(staging_id)

    def staging(self, staging_id: str) -> StagingView:
        try:
            progress, task = self._stagings[staging_id]
        except KeyError:
            raise NotFound(f"no staging {staging_id!r}") from None
        view = StagingView(id=staging_id, state="running", progress=progress.as_dict())
        if task.done():
            exc = task.exception()
            if exc is None:
                view.state, view.datasets = "done", task.result()
            else:
                view.state, view.error = "failed", str(exc)
        return view

    async def collect(self, project: Path, config: str | None, max_age: float,
                      root: Path | None = None) -> list[str]:
        """Free the config target's staged versions no stored run read, staged more than
        ``max_age`` seconds ago (what a run's staging does daily with 14 days)."""
        target = await self._target(project, config, root, [])
        return await self.runs.collect_data(target.backend, target.cfg.connection_name,
                                            force=True, max_age=max_age)

    async def remove(self, project: Path, config: str | None, digest: str,
                     root: Path | None = None) -> bool:
        """Free a staged version on the config's target; refused while an active run
        of that target reads it."""
        target = await self._target(project, config, root, [])
        cfg, backend = target.cfg, target.backend
        active = await asyncio.to_thread(self.runs.store.active)
        users = [r.id for r in active if r.connection == cfg.connection_name
                 and any(u.digest == digest and u.version == "content" for u in r.datasets)]
        if users:
            raise Conflict(f"version {digest[:12]} is read by active run"
                           f"{'s' if len(users) > 1 else ''} {', '.join(users)}")
        if not await backend.remove_staged(digest):
            raise NotFound(f"version {digest[:12]} is not staged on {cfg.connection_name}")
        return True


def _log_failure(staging_id: str, task: asyncio.Future[Any]) -> None:
    """A staging's failure, logged once it ends (whether or not anyone asks for it): its
    exception taken, so asyncio does not report it as never retrieved."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.info("staging %s failed: %s", staging_id, exc)
