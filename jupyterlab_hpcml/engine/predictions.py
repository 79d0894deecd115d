"""Batch inference (``hpcml predict``): a run that scores an input with a registered model
version and logs the predictions as its artifacts (see ``model_jobs``). The input is the
run's dataset ``input``, so it is staged, versioned and recorded like any data; the run's
MLflow tags name the model version it used."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from . import model_jobs, paths
from . import project as project_mod
from .models import RunRecord
from .registry import Registry
from .requests import PredictRequest, SubmitRequest
from .runs import RunService

EXPERIMENT = "hpcml-predictions"


async def predict(runs: RunService, registry: Registry, data_dir: Path, req: PredictRequest,
                  *, root: Path | None = None) -> RunRecord:
    """Check everything (nothing is created on bad input), then submit the scoring run."""
    model = await asyncio.to_thread(model_jobs.fetch, registry, req.model_uri,
                                    data_dir / "models")
    model_jobs.check_servable(model)
    project_dir = None
    if req.project:
        project_dir = await asyncio.to_thread(project_mod.find_project_root,
                                              Path(req.project), root)
    dataset = await asyncio.to_thread(_input_dataset, req.input, project_dir, root)
    cfg = await asyncio.to_thread(runs.backend_config, project_dir, req.backend_config,
                                  req.overrides, root)
    job_dir = await asyncio.to_thread(model_jobs.job_project, model, data_dir / "model-jobs",
                                      dataset=dataset)
    submit = SubmitRequest(
        project=str(job_dir), entry_point=model_jobs.PREDICT_ENTRY,
        parameters={"output": req.output, "drop": ",".join(req.drop_columns)},
        backend_config=str(cfg.path) if cfg.path else None,
        overrides=req.overrides, experiment_name=EXPERIMENT,
        run_name=req.run_name or f"predict {model.version.name} v{model.version.version}")
    return await runs.submit(submit, tags={
        "hpcml.model.name": model.version.name, "hpcml.model.version": model.version.version,
        "hpcml.model.uri": model.uri, "hpcml.predict.input": req.input[:500]})


def _input_dataset(input_ref: str, project_dir: Path | None, root: Path | None
                   ) -> dict[str, Any]:
    if root is None:
        return model_jobs.input_dataset(input_ref, project_dir)
    # A file the lab names: relative to the server's root, judged by where it really is.
    return model_jobs.input_dataset(
        input_ref, project_dir, lambda ref: paths.confine(root, ref, "input", key="input"))
