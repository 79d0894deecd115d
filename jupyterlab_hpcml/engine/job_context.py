"""Run record + backend config → the typed job context a backend gets (``core/job.py``).

The config is parsed into the backend's ``config_model`` once per submission, from the
validated and normalised config (Runtime in seconds, Memory in MiB); after a restart,
from what the record kept (redacted, without secrets: the typed sections hold none).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..backends.base import Backend
from ..core.config_models import BackendConfigModel, Resources
from ..core.errors import Problem, UserInputError
from ..core.job import JobContext, RequeuePolicy, ServiceSpec
from .config import BackendConfig
from .models import RunRecord

log = logging.getLogger(__name__)


def job_config(backend: Backend[Any], cfg: BackendConfig) -> BackendConfigModel:
    """The submission's config as the backend's typed model."""
    data = {**cfg.data, "Resources": cfg.resources, "Environment": cfg.environment}
    try:
        return backend.parse_config(data)
    except ValidationError as exc:  # a plug-in's model stricter than the schema
        raise UserInputError([
            Problem(err["msg"], key=".".join(str(p) for p in err["loc"]) or None)
            for err in exc.errors()
        ]) from None


CHECKPOINT_DIR = ".hpcml/checkpoint"


def checkpoint_dir(run_dir: str | None, task: int | None = None) -> str:
    """``$HPCML_CHECKPOINT_DIR``: a directory of the run's own that survives requeues
    (an array task's own in the shared directory); relative when the run dir is unknown."""
    rel = CHECKPOINT_DIR if task is None else f"{CHECKPOINT_DIR}.{task}"
    return f"{run_dir.rstrip('/')}/{rel}" if run_dir else rel


def requeue_policy(resources: Resources) -> RequeuePolicy | None:
    """``Resources.Requeue``/``MaxRequeues``/``RequeueSignalSeconds`` → the context's
    requeue policy (None: not asked for; unset keys take RequeuePolicy's defaults)."""
    if not resources.requeue:
        return None
    default = RequeuePolicy()
    return RequeuePolicy(
        max_requeues=default.max_requeues if resources.max_requeues is None
        else resources.max_requeues,
        signal_before_end=default.signal_before_end if resources.requeue_signal_seconds is None
        else resources.requeue_signal_seconds,
    )


def job_name(run: RunRecord) -> str:
    return f"hpcml-{run.project_name}-{run.entry_point}"


def context(run: RunRecord, config: BackendConfigModel, run_dir: str | None = None,
            env: Mapping[str, str] | None = None) -> JobContext[BackendConfigModel]:
    """The context of ``run``'s job; ``env`` only while submitting (never stored)."""
    return JobContext(
        run_id=run.id,
        run_name=run.name,
        project_name=run.project_name,
        entry_point=run.entry_point,
        job_name=job_name(run),
        command=run.command,
        config=config,
        project_path=run.project_path,
        run_dir=run_dir if run_dir is not None else run.run_dir,
        env=dict(env or {}),
        requeue=requeue_policy(config.resources),
        service=ServiceSpec(health_path="/ping") if run.service else None,
    )


def recorded_context(run: RunRecord, backend: Backend[Any]) -> JobContext[BackendConfigModel]:
    """The context rebuilt from the record alone (after a restart, in another process):
    its config as recorded, its run directory as ``prepare`` answered, no env."""
    data = {**run.backend_config, "Resources": run.resources}
    try:
        config = backend.parse_config(data)
    except ValidationError as exc:  # an old record the model no longer reads: names and ids suffice
        log.warning("run %s: recorded config not readable as %s (%s)", run.id,
                    type(backend).config_model.__name__, exc.error_count())
        config = backend.parse_config({})
    return context(run, config)
