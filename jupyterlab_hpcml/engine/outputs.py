"""What a run produced, read from MLflow: artifacts and metric histories."""
from __future__ import annotations

import asyncio
import posixpath
import tempfile
from pathlib import Path
from typing import Any, Literal

from ..backends.base import FileInfo
from .errors import NotFound, UserInputError
from .models import RunRecord
from .store import RunStore
from .tracking import Tracker


def safe_relpath(path: str) -> str:
    """A normalised relative path that cannot leave the artifact root."""
    if "\0" in path or path.startswith(("/", "\\")) or "\\" in path:
        raise UserInputError(f"invalid artifact path {path!r}")
    norm = posixpath.normpath(path) if path else ""
    if norm in (".", ""):
        return ""
    if norm == ".." or norm.startswith("../"):
        raise UserInputError(f"artifact path {path!r} leaves the run's artifact root")
    return norm


class RunOutputs:
    def __init__(self, store: RunStore, tracker: Tracker):
        self.store = store
        self.tracker = tracker

    async def _mlflow_run(self, run_id: str) -> tuple[RunRecord, str]:
        run = await asyncio.to_thread(self.store.get, run_id)
        if not run.mlflow_run_id:
            raise NotFound(f"run {run.id} has no MLflow run")
        return run, run.mlflow_run_id

    async def list_artifacts(self, run_id: str, path: str = "") -> list[FileInfo]:
        _, mlflow_id = await self._mlflow_run(run_id)
        return await asyncio.to_thread(self.tracker.list_artifacts, mlflow_id, safe_relpath(path))

    async def download_artifact(self, run_id: str, path: str) -> tuple[Path, tempfile.TemporaryDirectory[str]]:
        """Local copy of one artifact file; the caller cleans up the returned temp dir."""
        rel = safe_relpath(path)
        if not rel:
            raise UserInputError("give the path of an artifact file")
        _, mlflow_id = await self._mlflow_run(run_id)
        tmp = tempfile.TemporaryDirectory(prefix="hpcml-artifact-")
        try:
            local = await asyncio.to_thread(self.tracker.download_artifact, mlflow_id, rel, Path(tmp.name))
        except Exception as exc:
            tmp.cleanup()
            raise NotFound(f"artifact {rel!r} not found in run {run_id}") from exc
        local = Path(local).resolve()
        if not local.is_file() or not local.is_relative_to(Path(tmp.name).resolve()):
            tmp.cleanup()
            raise UserInputError(f"artifact {rel!r} is a directory, not a file")
        return local, tmp

    async def metric_keys(self, run_id: str) -> list[dict[str, Any]]:
        _, mlflow_id = await self._mlflow_run(run_id)
        return await asyncio.to_thread(self.tracker.metric_keys, mlflow_id)

    async def metric_history(self, run_id: str, key: str, max_points: int = 1000,
                             x: Literal["step", "time"] = "step") -> dict[str, Any]:
        if not 2 <= max_points <= 100_000:
            raise UserInputError("max_points must be between 2 and 100000")
        if x not in ("step", "time"):
            raise UserInputError("x must be 'step' or 'time'")
        _, mlflow_id = await self._mlflow_run(run_id)
        return await asyncio.to_thread(self.tracker.metric_history, mlflow_id, key, max_points, x)
