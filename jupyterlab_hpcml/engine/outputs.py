"""What a run produced, read from MLflow: artifacts and metric histories."""
from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Literal

from ..core.errors import NotFound, Problem, UserInputError
from ..core.files import FileInfo
from . import paths
from .models import RunRecord
from .store import RunStore
from .tracking import Tracker


def safe_relpath(path: str) -> str:
    """A normalised relative path that cannot leave the artifact root (taken literally)."""
    return paths.clean_relpath(path, "artifact path", root_name="the run's artifact root")


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

    async def open_artifact(self, run_id: str, path: str) -> tuple[BinaryIO, int]:
        """One artifact file opened for reading, and its size; the caller closes it."""
        rel = safe_relpath(path)
        if not rel:
            raise UserInputError(Problem("give the path of an artifact file", key="path"))
        _, mlflow_id = await self._mlflow_run(run_id)
        return await asyncio.to_thread(self.tracker.open_artifact, mlflow_id, rel)

    async def download_artifact(
        self, run_id: str, path: str
    ) -> tuple[Path, tempfile.TemporaryDirectory[str]]:
        """Local copy of one artifact file; the caller cleans up the returned temp dir."""
        src, _ = await self.open_artifact(run_id, path)
        tmp = tempfile.TemporaryDirectory(prefix="hpcml-artifact-")
        local = Path(tmp.name) / safe_relpath(path).rpartition("/")[2]
        try:
            with src, local.open("wb") as out:
                await asyncio.to_thread(shutil.copyfileobj, src, out, 1 << 20)
        except BaseException:
            tmp.cleanup()
            raise
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

    async def metric_values(self, run_id: str, key: str | None = None) -> list[dict[str, Any]]:
        """Every logged value of ``key`` (or of every metric), not downsampled:
        ``[{key, step, value, timestamp}]`` (epoch seconds) sorted by key, step and time."""
        _, mlflow_id = await self._mlflow_run(run_id)
        return await asyncio.to_thread(self.tracker.metric_values, mlflow_id, key)
