"""Offline tracking: copy what a job wrote into its own MLflow file store into the main store.

The job logs into ``<run_dir>/.hpcml/mlruns`` (see ``tracking.offline_store_files``).
Metric files there are append-only text (``"<timestamp> <value> <step>\\n"`` per line),
so each sync reads only the bytes after the offset it reached last time, through
``Backend.read``, whatever the backend. Params are written once; tags may change
(re-read when their size/mtime changes); artifacts are copied once, at the end.

MLflow 3 logged models (``mlflow.<flavor>.log_model``) live outside the run, in
``<mlruns>/<exp>/models/<model_id>/`` (meta.yaml, params/, tags/, metrics/, artifacts/),
linked to the run by ``<run>/outputs/<model_id>/meta.yaml``. The final sync recreates
each in the main store with the public client API (new model id, same name, params,
tags, type, metrics, files and status; the run as source, linked as an output at the
same step), so ``runs:/<run_id>/<name>`` resolves there as it would have with direct
tracking. The main model carries the offline id in the tag ``hpcml.offline_model_id``:
a repeated final sync (state lost, or a fault halfway) finds it instead of creating a
second one. MLflow 2 jobs save models as plain run artifacts: copied with the others.

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
"""
from __future__ import annotations

import asyncio
import logging
import posixpath
import re
import tempfile
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..backends.base import OFFLINE_MLRUNS, Backend, FileInfo
from . import yamlio
from .errors import NotFound
from .models import RunRecord
from .tracking import Tracker, _is_file_store, offline_run_path

log = logging.getLogger(__name__)

READ_BYTES = 1 << 20  # per backend.read call
MAX_READS_PER_FILE = 256  # per sync: bounds a sync even while a job writes furiously
RUN_NAME_TAG = "mlflow.runName"
OFFLINE_MODEL_TAG = "hpcml.offline_model_id"  # on a main-store logged model: the offline id it copies
MODEL_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def parse_metric_lines(key: str, data: bytes) -> list[tuple[str, float, int, int]]:
    """``(key, value, timestamp, step)`` for each complete line of a file-store metric file."""
    rows: list[tuple[str, float, int, int]] = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        parts = line.split()
        # 3 fields, 2 in very old stores (no step), 5 with dataset name/digest (dropped here:
        # they come with a logged model, whose own metric files keep them; see _sync_models).
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
    """Copies what a job appended to its offline file store into the main store, reading only new bytes."""

    def __init__(self, tracker: Tracker, read_bytes: int = READ_BYTES):
        self.tracker = tracker
        self.read_bytes = read_bytes

    async def sync(
        self, backend: Backend, run: RunRecord, state: dict[str, Any], final: bool = False
    ) -> dict[str, Any]:
        if not (run.mlflow_experiment_id and run.mlflow_run_id):
            return state
        base = offline_run_path(run.mlflow_experiment_id, run.mlflow_run_id)
        state.setdefault("metrics", {})
        state.setdefault("params", [])
        state.setdefault("tags", {})
        await self._sync_params(backend, run, base, state, final)
        await self._sync_tags(backend, run, base, state)
        await self._sync_metrics(backend, run, base, state)
        if final and not state.get("artifacts_done"):
            await self._sync_artifacts(backend, run, base)
            state["artifacts_done"] = True
        if final and not state.get("models_done"):
            await self._sync_models(backend, run, base, state)
            state["models_done"] = True
        return state

    # ------------------------------------------------------------------ metrics

    async def _sync_metrics(self, backend: Backend, run: RunRecord, base: str, state: dict[str, Any]) -> None:
        offsets: dict[str, int] = state["metrics"]
        for f in await _list(backend, run, f"{base}/metrics"):
            key = f.path
            offset = offsets.get(key, 0)
            if f.size is not None and f.size <= offset:
                continue  # nothing new: no read at all
            await self._sync_metric(backend, run, f"{base}/metrics/{key}", key, offset, offsets)

    async def _sync_metric(
        self, backend: Backend, run: RunRecord, relpath: str, key: str, offset: int, offsets: dict[str, int]
    ) -> None:
        assert run.mlflow_run_id
        pending = b""  # bytes of an incomplete line: reads may end anywhere (short SFTP reads)
        pos = offset
        for _ in range(MAX_READS_PER_FILE):
            chunk = await backend.read(run, relpath, pos, self.read_bytes)
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
        self, backend: Backend, run: RunRecord, base: str, state: dict[str, Any], final: bool
    ) -> None:
        assert run.mlflow_run_id
        done: list[str] = state["params"]
        new: dict[str, str] = {}
        for f in await _list(backend, run, f"{base}/params"):
            if f.path in done:
                continue
            value = await _read_whole(backend, run, f"{base}/params/{f.path}", f)
            # Empty: maybe caught between create and write; empty values are taken at the end.
            if value is None or (value == "" and not final):
                continue
            new[f.path] = value
        if new:
            await asyncio.to_thread(self.tracker.log_params, run.mlflow_run_id, new)
            done.extend(new)

    async def _sync_tags(self, backend: Backend, run: RunRecord, base: str, state: dict[str, Any]) -> None:
        assert run.mlflow_run_id
        seen: dict[str, list[Any]] = state["tags"]
        changed = [f for f in await _list(backend, run, f"{base}/tags") if seen.get(f.path) != [f.size, f.mtime]]
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
            value = await _read_whole(backend, run, f"{base}/tags/{f.path}", f)
            if value is None:
                continue  # being rewritten: next time
            if f.path not in protected and not f.path.startswith("hpcml."):
                new[f.path] = value
            read[f.path] = [f.size, f.mtime]
        if new:
            await asyncio.to_thread(self.tracker.set_tags, run.mlflow_run_id, new)
        seen.update(read)  # only once copied

    # ------------------------------------------------------------------ artifacts

    async def _sync_artifacts(self, backend: Backend, run: RunRecord, base: str) -> None:
        assert run.mlflow_run_id
        files = await _list(backend, run, f"{base}/artifacts")
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
                await backend.fetch(run, f"{base}/artifacts/{f.path}", dest)
            await asyncio.to_thread(self.tracker.log_artifacts, run.mlflow_run_id, root)

    # ------------------------------------------------------------------ logged models (MLflow 3)

    async def _sync_models(self, backend: Backend, run: RunRecord, base: str, state: dict[str, Any]) -> None:
        """Recreate the job's logged models in the main store, linked to the run (see the module doc)."""
        assert run.mlflow_experiment_id and run.mlflow_run_id
        models_dir = f"{OFFLINE_MLRUNS}/{run.mlflow_experiment_id}/models"
        per_model: dict[str, list[FileInfo]] = defaultdict(list)
        for f in await _list(backend, run, models_dir):
            model_id, _, rest = f.path.partition("/")
            if rest and _is_safe_relpath(rest):
                per_model[model_id].append(FileInfo(path=rest, is_dir=False, size=f.size, mtime=f.mtime))
        if not per_model:
            return  # MLflow 2, or no model logged
        steps = await self._output_steps(backend, run, base)
        done: dict[str, str] = state.setdefault("models", {})
        failed: list[str] = []
        for offline_id in sorted(per_model):
            if offline_id in done:
                continue
            if not MODEL_ID_RE.fullmatch(offline_id):  # MLflow's are m-<hex>; it goes into a filter
                log.warning("skipping %r in the offline models of run %s: not a model id", offline_id, run.id)
                continue
            try:
                main_id = await self._sync_model(
                    backend, run, f"{models_dir}/{offline_id}", offline_id, per_model[offline_id],
                    steps.get(offline_id),
                )
            except Exception:  # one bad model must not keep the others out
                log.exception("logged model %s of run %s not copied", offline_id, run.id)
                failed.append(offline_id)
                continue
            if main_id:
                done[offline_id] = main_id
        if failed:
            raise RuntimeError(f"logged model(s) {', '.join(failed)} of run {run.id} not copied")

    async def _output_steps(self, backend: Backend, run: RunRecord, base: str) -> dict[str, int]:
        """The run's model outputs: offline model id → step (``<run>/outputs/<id>/meta.yaml``)."""
        steps: dict[str, int] = {}
        for f in await _list(backend, run, f"{base}/outputs"):
            model_id, _, rest = f.path.partition("/")
            if rest != "meta.yaml":
                continue
            meta = _yaml_dict(await _read_whole(backend, run, f"{base}/outputs/{f.path}", f))
            step = meta.get("step") if meta else 0
            steps[model_id] = step if isinstance(step, int) else 0
        return steps

    async def _sync_model(
        self, backend: Backend, run: RunRecord, mdir: str, offline_id: str,
        files: list[FileInfo], step: int | None,
    ) -> str | None:
        """Copy one offline logged model; return its id in the main store (None: not copied)."""
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus

        assert run.mlflow_experiment_id and run.mlflow_run_id
        run_id = run.mlflow_run_id
        by_path = {f.path: f for f in files}
        meta_info = by_path.get("meta.yaml")
        meta = _yaml_dict(await _read_whole(backend, run, f"{mdir}/meta.yaml", meta_info)) if meta_info else None
        if meta is None:
            log.warning("logged model %s of run %s has no readable meta.yaml: not copied", offline_id, run.id)
            return None
        source = meta.get("source_run_id")
        if source and source != run_id and step is None:
            # Another run of the job's own store (nested run...): that run is not copied either.
            log.info("logged model %s of run %s comes from offline run %s: not copied", offline_id, run.id, source)
            return None
        offline = _OfflineModel(
            offline_id=offline_id,
            name=_str_or_none(meta.get("name")),
            model_type=_str_or_none(meta.get("model_type")),
            status=_model_status(meta.get("status")),
            source_run_id=run_id if source == run_id else None,
            params=await _read_text_files(backend, run, mdir, "params", files),
            tags=await _read_text_files(backend, run, mdir, "tags", files),
        )
        for f in files:
            if f.path.startswith("metrics/"):
                key = f.path[len("metrics/"):]
                text = await _read_whole(backend, run, f"{mdir}/{f.path}", f)
                offline.metrics.extend(parse_model_metric_lines(key, (text or "").encode()))
        model = await asyncio.to_thread(self._find_or_create_model, run.mlflow_experiment_id, offline)
        client = self.tracker.client
        if not LoggedModelStatus.is_finalized(model.status):  # else: done by an earlier sync
            if offline.metrics and not model.metrics and not _is_file_store(self.tracker.tracking_uri):
                await asyncio.to_thread(self._log_model_metrics, run_id, model.model_id, offline.metrics)
            artifacts = [f for f in files if f.path.startswith("artifacts/")]
            if artifacts:
                with tempfile.TemporaryDirectory(prefix="hpcml-model-") as tmp:
                    root = Path(tmp)
                    for f in artifacts:
                        rel = PurePosixPath(f.path[len("artifacts/"):])
                        dest = root.joinpath(*rel.parts)
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        await backend.fetch(run, f"{mdir}/{f.path}", dest)
                    _retarget_mlmodel(root / "MLmodel", offline_id, model.model_id, model.artifact_location)
                    await asyncio.to_thread(client.log_model_artifacts, model.model_id, str(root))
            if LoggedModelStatus.is_finalized(offline.status):
                await asyncio.to_thread(client.finalize_logged_model, model.model_id, offline.status)
        if step is not None:
            outputs = (await asyncio.to_thread(client.get_run, run_id)).outputs
            if not any(o.model_id == model.model_id for o in (outputs.model_outputs if outputs else [])):
                await asyncio.to_thread(client.log_outputs, run_id, [LoggedModelOutput(model.model_id, step)])
        log.info("logged model %s of run %s copied as %s", offline_id, run.id, model.model_id)
        return model.model_id

    def _find_or_create_model(self, experiment_id: str, offline: _OfflineModel) -> Any:
        """The main-store copy of an offline model: found by its tag, else created (PENDING)."""
        client = self.tracker.client
        found = client.search_logged_models(
            [experiment_id], filter_string=f"tags.`{OFFLINE_MODEL_TAG}` = '{offline.offline_id}'", max_results=1
        )
        if found:
            return found[0]
        return client.create_logged_model(
            experiment_id,
            name=offline.name,
            source_run_id=offline.source_run_id,
            tags={**offline.tags, OFFLINE_MODEL_TAG: offline.offline_id},
            params=offline.params,
            model_type=offline.model_type,
        )

    def _log_model_metrics(self, run_id: str, model_id: str, rows: list[_ModelMetric]) -> None:
        """Model metrics are logged through the run, as MLflow does; the run's copy of each line
        is an exact duplicate of one the metric sync sent, which SQL stores drop (a file store
        would not: the caller skips it there)."""
        from mlflow.entities import Metric

        metrics = [
            Metric(r.key, r.value, r.timestamp, r.step, model_id=model_id,
                   dataset_name=r.dataset_name, dataset_digest=r.dataset_digest, run_id=run_id)
            for r in rows
        ]
        for i in range(0, len(metrics), 1000):
            self.tracker.client.log_batch(run_id, metrics=metrics[i : i + 1000])


@dataclass
class _ModelMetric:
    key: str
    value: float
    timestamp: int
    step: int
    dataset_name: str | None = None
    dataset_digest: str | None = None


@dataclass
class _OfflineModel:
    """What the job's file store holds about one logged model."""

    offline_id: str
    name: str | None
    model_type: str | None
    status: Any  # LoggedModelStatus
    source_run_id: str | None
    params: dict[str, str]
    tags: dict[str, str]
    metrics: list[_ModelMetric] = field(default_factory=list)


def parse_model_metric_lines(key: str, data: bytes) -> list[_ModelMetric]:
    """Lines of a logged model's metric file: ``ts value step run_id [dataset_name dataset_digest]``."""
    rows: list[_ModelMetric] = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) not in (4, 6):
            if parts:
                log.warning("skipping malformed line of model metric %s: %r", key, line[:200])
            continue
        try:
            row = _ModelMetric(key, float(parts[1]), int(parts[0]), int(parts[2]))
        except ValueError:
            log.warning("skipping malformed line of model metric %s: %r", key, line[:200])
            continue
        if len(parts) == 6:
            row.dataset_name, row.dataset_digest = parts[4], parts[5]
        rows.append(row)
    return rows


def _model_status(value: Any) -> Any:
    """A file store's model status (an int in meta.yaml; a name in other versions) as LoggedModelStatus."""
    from mlflow.entities import LoggedModelStatus

    try:
        if isinstance(value, int):
            return LoggedModelStatus.from_int(value)
        return LoggedModelStatus(str(value).upper())
    except Exception:  # noqa: BLE001 - unknown: left PENDING, as an unfinished upload
        return LoggedModelStatus.PENDING


def _retarget_mlmodel(path: Path, old_id: str, new_id: str, artifact_location: str) -> None:
    """Point a copied model's MLmodel at its main-store id, as MLflow writes it when logging
    (loaders use ``model_id`` e.g. to link traces); left as it is if it does not parse."""
    if not path.is_file():
        return
    try:
        data = yamlio.safe_load(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - the model's own file; copied unchanged
        log.warning("MLmodel of logged model %s does not parse: copied unchanged", old_id)
        return
    if not isinstance(data, dict) or data.get("model_id") != old_id:
        return
    data["model_id"] = new_id
    if data.get("model_uuid") == old_id:
        data["model_uuid"] = new_id
    if "artifact_path" in data:
        data["artifact_path"] = artifact_location
    path.write_text(yamlio.safe_dump(data, default_flow_style=False), encoding="utf-8")


async def _read_text_files(
    backend: Backend, run: RunRecord, mdir: str, sub: str, files: list[FileInfo]
) -> dict[str, str]:
    """``{key: text}`` of the files below ``<mdir>/<sub>/`` (a model's params or tags)."""
    out: dict[str, str] = {}
    prefix = f"{sub}/"
    for f in files:
        if f.path.startswith(prefix):
            value = await _read_whole(backend, run, f"{mdir}/{f.path}", f)
            if value is not None:
                out[f.path[len(prefix):]] = value
    return out


def _yaml_dict(text: str | None) -> Mapping[str, Any] | None:
    if not text:
        return None
    try:
        data = yamlio.safe_load(text)
    except Exception:  # noqa: BLE001 - a half-written or foreign file
        return None
    return data if isinstance(data, dict) else None


def _str_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _is_safe_relpath(path: str) -> bool:
    rel = PurePosixPath(path)
    return not rel.is_absolute() and ".." not in rel.parts


async def _list(backend: Backend, run: RunRecord, relpath: str) -> list[FileInfo]:
    """Files (not directories) below ``relpath``, paths relative to it; none if it is missing."""
    try:
        infos = await backend.list_files(run, relpath)
    except (NotFound, FileNotFoundError):
        return []
    return [
        FileInfo(path=posixpath.normpath(i.path).lstrip("/"), is_dir=False, size=i.size, mtime=i.mtime)
        for i in infos
        if not i.is_dir
    ]


async def _read_whole(backend: Backend, run: RunRecord, relpath: str, info: FileInfo) -> str | None:
    """A small file's text; None when it changed size while listed (caught mid-write)."""
    data = b""
    while True:
        chunk = await backend.read(run, relpath, len(data), READ_BYTES)
        if chunk.size is None:
            return None
        data += chunk.data
        if not chunk.data or chunk.next_offset >= chunk.size:
            break
    if info.size is not None and len(data) != info.size:
        return None
    return data.decode("utf-8", errors="replace")
