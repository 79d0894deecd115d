"""Offline tracking: copy what a job wrote into its own MLflow file store into the main store.

The job logs into ``<run_dir>/.hpcml/mlruns`` (see ``tracking.offline_store_files``).
Metric files there are append-only text (``"<timestamp> <value> <step>\\n"`` per line),
so each sync reads only the bytes after the offset it reached last time, through
``Backend.read``, whatever the backend. Params are written once; tags may change
(re-read when their size/mtime changes); artifacts are copied once, at the end.

MLflow 3 logged models are recreated in the main store at the end (``offline_models``).

The sync state is a JSON-able dict kept by the caller between calls::

    {"metrics": {"loss": 1234, "eval/acc": 88},   # byte offset reached per metric file
     "params": ["lr", "epochs"],                   # params copied
     "tags": {"note": [12, 1700000000.0]},         # [size, mtime] of each tag file seen
     "protected_tags": ["hpcml.run_id", ...],      # the main run's own tags: never overwritten
     "artifacts_done": true,
     "models": {"m-<offline id>": "m-<main id>"},  # logged models copied
     "models_done": true}

It is updated IN PLACE after each successful write to the main store (and returned),
so a caller that keeps the dict after an exception never logs a line twice.

Listing the store's params/tags/metrics (and artifacts, at the end) is ONE
``Backend.list_files_many`` call per sync, and a poll pass lists the stores of all its
running runs with one call (``OfflineSync.list_runs``): remote work per pass does not grow
with the number of running runs, only with what they wrote.
"""
from __future__ import annotations

import asyncio
import logging
import posixpath
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from ..backends.base import Backend
from ..core.errors import NotFound, UserInputError
from ..core.files import FileInfo
from .models import RunRecord
from .offline_models import OfflineModelCopier
from .run_files import READ_BYTES, read_text
from .tracking import Tracker, offline_run_path

log = logging.getLogger(__name__)

MAX_READS_PER_FILE = 256  # per sync: bounds a sync even while a job writes furiously
RUN_NAME_TAG = "mlflow.runName"
LIVE_DIRS = ("params", "tags", "metrics")  # what a sync of a running run lists
FINAL_DIRS = (*LIVE_DIRS, "artifacts")  # and of an ended run

# A run's offline store listed: subdirectory ("metrics", ...) → files below it (relative).
Listing = dict[str, list[FileInfo]]


def parse_metric_lines(key: str, data: bytes) -> list[tuple[str, float, int, int]]:
    """``(key, value, timestamp, step)`` for each complete line of a file-store metric file."""
    rows: list[tuple[str, float, int, int]] = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        parts = line.split()
        # 3 fields, 2 in very old stores (no step), 5 with dataset name/digest (dropped here:
        # they come with a logged model, whose own metric files keep them; see offline_models).
        if len(parts) not in (2, 3, 5):
            if parts:
                log.warning("skipping malformed line of metric %s: %r", key, line[:200])
            continue
        try:
            ts, value = int(parts[0]), float(parts[1])
            step = int(parts[2]) if len(parts) >= 3 else 0
        except ValueError:
            log.warning("skipping malformed line of metric %s: %r", key, line[:200])
            continue
        rows.append((key, value, ts, step))
    return rows


class OfflineSync:
    """Copies what a job appended to its offline file store into the main store, reading
    only new bytes."""

    def __init__(self, tracker: Tracker, read_bytes: int = READ_BYTES):
        self.tracker = tracker
        self.read_bytes = read_bytes
        self.models = OfflineModelCopier(tracker)

    async def list_runs(self, backend: Backend[Any], runs: list[RunRecord],
                        final: bool = False) -> dict[str, Listing | BaseException]:
        """The offline stores of ``runs`` listed by one ``list_files_many`` call: run id →
        its listing, or the error that stopped it."""
        dirs = FINAL_DIRS if final else LIVE_DIRS
        stores = [(r, offline_run_path(r.mlflow_experiment_id, r.mlflow_run_id)) for r in runs
                  if r.mlflow_experiment_id and r.mlflow_run_id]
        results = await backend.list_files_many(
            [(r.job_ref(), f"{base}/{d}") for r, base in stores for d in dirs])
        out: dict[str, Listing | BaseException] = {}
        for i, (run, _) in enumerate(stores):
            listing: Listing = {}
            for j, d in enumerate(dirs):
                found = results[i * len(dirs) + j]
                if isinstance(found, BaseException):
                    out[run.id] = found
                    break
                listing[d] = [
                    FileInfo(path=posixpath.normpath(f.path).lstrip("/"), is_dir=False, size=f.size,
                             mtime=f.mtime)
                    for f in found if not f.is_dir
                ]
            else:
                out[run.id] = listing
        return out

    async def sync(
        self, backend: Backend[Any], run: RunRecord, state: dict[str, Any], final: bool = False,
        listing: Listing | None = None,
    ) -> dict[str, Any]:
        """Copy what is new. ``listing``: the store as a poll pass listed it (else listed here)."""
        if not (run.mlflow_experiment_id and run.mlflow_run_id):
            return state
        base = offline_run_path(run.mlflow_experiment_id, run.mlflow_run_id)
        if listing is None or (final and "artifacts" not in listing):
            found = (await self.list_runs(backend, [run], final=final))[run.id]
            if isinstance(found, BaseException):
                raise found
            listing = found
        state.setdefault("metrics", {})
        state.setdefault("params", [])
        state.setdefault("tags", {})
        await self._sync_params(backend, run, base, state, final, listing["params"])
        await self._sync_tags(backend, run, base, state, listing["tags"])
        await self._sync_metrics(backend, run, base, state, listing["metrics"])
        if final and not state.get("artifacts_done"):
            await self._sync_artifacts(backend, run, base, listing["artifacts"])
            state["artifacts_done"] = True
        if final and not state.get("models_done"):
            await self.models.copy(backend, run, base, state.setdefault("models", {}))
            state["models_done"] = True
        return state

    # ------------------------------------------------------------------ metrics

    async def _sync_metrics(self, backend: Backend[Any], run: RunRecord, base: str,
                            state: dict[str, Any], files: list[FileInfo]) -> None:
        offsets: dict[str, int] = state["metrics"]
        for f in files:
            key = f.path
            offset = offsets.get(key, 0)
            if f.size is not None and f.size <= offset:
                continue  # nothing new: no read at all
            await self._sync_metric(backend, run, f"{base}/metrics/{key}", key, offset, offsets)

    async def _sync_metric(
        self, backend: Backend[Any], run: RunRecord, relpath: str, key: str, offset: int,
        offsets: dict[str, int],
    ) -> None:
        assert run.mlflow_run_id
        pending = b""  # bytes of an incomplete line: reads may end anywhere (short SFTP reads)
        pos = offset
        for _ in range(MAX_READS_PER_FILE):
            chunk = await backend.read(run.job_ref(), relpath, pos, self.read_bytes)
            if chunk.size is None:
                return  # no such file (any more)
            pending += chunk.data
            pos += len(chunk.data)
            end = pending.rfind(b"\n")
            if end >= 0:
                rows = await asyncio.to_thread(parse_metric_lines, key, pending[: end + 1])
                if rows:
                    await asyncio.to_thread(self.tracker.log_metrics, run.mlflow_run_id, rows)
                # Advance only past complete lines, and only once they are in the main store;
                # a partial last line is read again next time.
                offset += end + 1
                offsets[key] = offset
                pending = pending[end + 1 :]
            if not chunk.data or pos >= chunk.size:
                return
        log.info("metric %s of run %s: more to read, continuing next sync", key, run.id)

    # ------------------------------------------------------------------ params and tags

    async def _sync_params(
        self, backend: Backend[Any], run: RunRecord, base: str, state: dict[str, Any], final: bool,
        files: list[FileInfo],
    ) -> None:
        assert run.mlflow_run_id
        done: list[str] = state["params"]
        new: dict[str, str] = {}
        for f in files:
            if f.path in done:
                continue
            value = await read_text(backend, run, f"{base}/params/{f.path}", f)
            # Empty: maybe caught between create and write; empty values are taken at the end.
            if value is None or (value == "" and not final):
                continue
            new[f.path] = value
        if new:
            await asyncio.to_thread(self.tracker.log_params, run.mlflow_run_id, new)
            done.extend(new)

    async def _sync_tags(self, backend: Backend[Any], run: RunRecord, base: str,
                         state: dict[str, Any], files: list[FileInfo]) -> None:
        assert run.mlflow_run_id
        seen: dict[str, list[Any]] = state["tags"]
        changed = [f for f in files if seen.get(f.path) != [f.size, f.mtime]]
        if not changed:
            return
        if "protected_tags" not in state:
            # The main run's tags before any copy are the engine's (hpcml.*, source, entry point):
            # the job must not overwrite them. Its run name may change, like in MLflow.
            own = await asyncio.to_thread(self.tracker.get_tags, run.mlflow_run_id)
            state["protected_tags"] = sorted(k for k in own if k != RUN_NAME_TAG)
        protected = set(state["protected_tags"])
        new: dict[str, str] = {}
        read: dict[str, list[Any]] = {}
        for f in changed:
            value = await read_text(backend, run, f"{base}/tags/{f.path}", f)
            if value is None:
                continue  # being rewritten: next time
            if f.path not in protected and not f.path.startswith("hpcml."):
                new[f.path] = value
            read[f.path] = [f.size, f.mtime]
        if new:
            await asyncio.to_thread(self.tracker.set_tags, run.mlflow_run_id, new)
        seen.update(read)  # only once copied

    # ------------------------------------------------------------------ artifacts

    async def _sync_artifacts(self, backend: Backend[Any], run: RunRecord, base: str,
                              files: list[FileInfo]) -> None:
        assert run.mlflow_run_id
        if not files:
            return
        with tempfile.TemporaryDirectory(prefix="hpcml-artifacts-") as tmp:
            root = Path(tmp)
            for f in files:
                rel = PurePosixPath(f.path)
                if rel.is_absolute() or ".." in rel.parts:
                    log.warning("skipping artifact outside the artifact dir: %r", f.path)
                    continue
                dest = root.joinpath(*rel.parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    await backend.fetch(run.job_ref(), f"{base}/artifacts/{f.path}", dest)
                except (NotFound, UserInputError) as exc:
                    # One file the backend cannot fetch (gone, a name it cannot handle) must
                    # not cost the others: they are copied, this one is left out (logged).
                    log.warning("run %s: artifact %r not copied: %s", run.id, f.path, exc)
                    dest.unlink(missing_ok=True)
            await asyncio.to_thread(self.tracker.log_artifacts, run.mlflow_run_id, root)
