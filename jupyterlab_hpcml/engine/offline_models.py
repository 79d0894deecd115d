"""MLflow 3 logged models of an offline run, recreated in the main store.

``mlflow.<flavor>.log_model`` writes a model outside the run, in
``<mlruns>/<exp>/models/<model_id>/`` (meta.yaml, params/, tags/, metrics/, artifacts/),
linked to the run by ``<run>/outputs/<model_id>/meta.yaml``. The final sync recreates
each in the main store with the public client API (new model id, same name, params,
tags, type, metrics, files and status; the run as source, linked as an output at the
same step), so ``runs:/<run_id>/<name>`` resolves there as it would have with direct
tracking. The main model carries the offline id in the tag ``hpcml.offline_model_id``:
a repeated final sync (state lost, or a fault halfway) finds it instead of creating a
second one. MLflow 2 jobs save models as plain run artifacts, copied with the others.
"""
from __future__ import annotations

import asyncio
import logging
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..backends.base import Backend
from ..core.files import OFFLINE_MLRUNS, FileInfo
from . import yamlio
from .mlflow_import import load_mlflow
from .models import RunRecord
from .run_files import is_safe_relpath, list_tree, read_text, yaml_dict
from .tracking import Tracker, _is_file_store

log = logging.getLogger(__name__)

# On a main-store logged model: the offline id it copies.
OFFLINE_MODEL_TAG = "hpcml.offline_model_id"
MODEL_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class OfflineModelCopier:
    def __init__(self, tracker: Tracker):
        self.tracker = tracker

    async def copy(
        self, backend: Backend[Any], run: RunRecord, base: str, done: dict[str, str]
    ) -> None:
        """Recreate the job's logged models in the main store, linked to the run. ``done``
        (offline id → main id, kept in the sync state) is updated after each model."""
        assert run.mlflow_experiment_id and run.mlflow_run_id
        models_dir = f"{OFFLINE_MLRUNS}/{run.mlflow_experiment_id}/models"
        per_model: dict[str, list[FileInfo]] = defaultdict(list)
        for f in await list_tree(backend, run, models_dir):
            model_id, _, rest = f.path.partition("/")
            if rest and is_safe_relpath(rest):
                per_model[model_id].append(
                    FileInfo(path=rest, is_dir=False, size=f.size, mtime=f.mtime))
        if not per_model:
            return  # MLflow 2, or no model logged
        steps = await self._output_steps(backend, run, base)
        failed: list[str] = []
        for offline_id in sorted(per_model):
            if offline_id in done:
                continue
            if not MODEL_ID_RE.fullmatch(offline_id):  # MLflow's are m-<hex>; it goes into a filter
                log.warning("skipping %r in the offline models of run %s: not a model id",
                            offline_id, run.id)
                continue
            try:
                main_id = await self._copy_one(
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

    async def _output_steps(
        self, backend: Backend[Any], run: RunRecord, base: str
    ) -> dict[str, int]:
        """The run's model outputs: offline model id → step (``<run>/outputs/<id>/meta.yaml``)."""
        steps: dict[str, int] = {}
        for f in await list_tree(backend, run, f"{base}/outputs"):
            model_id, _, rest = f.path.partition("/")
            if rest != "meta.yaml":
                continue
            meta = yaml_dict(await read_text(backend, run, f"{base}/outputs/{f.path}", f))
            step = meta.get("step") if meta else 0
            steps[model_id] = step if isinstance(step, int) else 0
        return steps

    async def _copy_one(
        self, backend: Backend[Any], run: RunRecord, mdir: str, offline_id: str,
        files: list[FileInfo], step: int | None,
    ) -> str | None:
        """Copy one offline logged model; return its id in the main store (None: not copied)."""
        load_mlflow()
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus

        assert run.mlflow_experiment_id and run.mlflow_run_id
        run_id = run.mlflow_run_id
        by_path = {f.path: f for f in files}
        meta_info = by_path.get("meta.yaml")
        meta = None
        if meta_info:
            meta = yaml_dict(await read_text(backend, run, f"{mdir}/meta.yaml", meta_info))
        if meta is None:
            log.warning("logged model %s of run %s has no readable meta.yaml: not copied",
                        offline_id, run.id)
            return None
        source = meta.get("source_run_id")
        if source and source != run_id and step is None:
            # Another run of the job's own store (nested run...): that run is not copied either.
            log.info("logged model %s of run %s comes from offline run %s: not copied",
                     offline_id, run.id, source)
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
                text = await read_text(backend, run, f"{mdir}/{f.path}", f)
                offline.metrics.extend(parse_model_metric_lines(key, (text or "").encode()))
        model = await asyncio.to_thread(
            self._find_or_create_model, run.mlflow_experiment_id, offline)
        model_id: str = model.model_id
        client = self.tracker.client
        if not LoggedModelStatus.is_finalized(model.status):  # else: done by an earlier sync
            if (offline.metrics and not model.metrics
                    and not _is_file_store(self.tracker.tracking_uri)):
                await asyncio.to_thread(
                    self._log_model_metrics, run_id, model_id, offline.metrics)
            artifacts = [f for f in files if f.path.startswith("artifacts/")]
            if artifacts:
                with tempfile.TemporaryDirectory(prefix="hpcml-model-") as tmp:
                    root = Path(tmp)
                    for f in artifacts:
                        rel = PurePosixPath(f.path[len("artifacts/"):])
                        dest = root.joinpath(*rel.parts)
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        await backend.fetch(run.job_ref(), f"{mdir}/{f.path}", dest)
                    _retarget_mlmodel(
                        root / "MLmodel", offline_id, model_id, model.artifact_location)
                    await asyncio.to_thread(client.log_model_artifacts, model_id, str(root))
            if LoggedModelStatus.is_finalized(offline.status):
                await asyncio.to_thread(client.finalize_logged_model, model_id, offline.status)
        if step is not None:
            outputs = (await asyncio.to_thread(client.get_run, run_id)).outputs
            linked = outputs.model_outputs if outputs else []
            if not any(o.model_id == model_id for o in linked):
                await asyncio.to_thread(
                    client.log_outputs, run_id, [LoggedModelOutput(model_id, step)])
        log.info("logged model %s of run %s copied as %s", offline_id, run.id, model_id)
        return model_id

    def _find_or_create_model(self, experiment_id: str, offline: _OfflineModel) -> Any:
        """The main-store copy of an offline model: found by its tag, else created (PENDING)."""
        client = self.tracker.client
        found = client.search_logged_models(
            [experiment_id],
            filter_string=f"tags.`{OFFLINE_MODEL_TAG}` = '{offline.offline_id}'",
            max_results=1,
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
        load_mlflow()
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
    """Lines of a logged model's metric file:
    ``ts value step run_id [dataset_name dataset_digest]``."""
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
    """A file store's model status (an int in meta.yaml; a name in other versions) as
    LoggedModelStatus."""
    load_mlflow()
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
    backend: Backend[Any], run: RunRecord, mdir: str, sub: str, files: list[FileInfo]
) -> dict[str, str]:
    """``{key: text}`` of the files below ``<mdir>/<sub>/`` (a model's params or tags)."""
    out: dict[str, str] = {}
    prefix = f"{sub}/"
    for f in files:
        if f.path.startswith(prefix):
            value = await read_text(backend, run, f"{mdir}/{f.path}", f)
            if value is not None:
                out[f.path[len(prefix):]] = value
    return out


def _str_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
