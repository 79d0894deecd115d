"""MLflow experiments, for the experiment picker of the submit form."""
from __future__ import annotations

import asyncio
from typing import Any

from ..engine.mlflow_import import load_mlflow
from ..engine.tracking import Tracker
from .base import HpcmlHandler, authenticated

MAX_EXPERIMENTS = 1000


def list_experiments(tracker: Tracker, limit: int = MAX_EXPERIMENTS) -> list[dict[str, Any]]:
    """Active experiments, most recently updated first."""
    load_mlflow()
    from mlflow.entities import ViewType

    found = tracker.client.search_experiments(
        view_type=ViewType.ACTIVE_ONLY,
        max_results=limit,
        order_by=["last_update_time DESC"],
    )
    return [
        {"id": e.experiment_id, "name": e.name, "last_update_time": e.last_update_time}
        for e in found
    ]


class ExperimentsHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        limit = self.int_arg("limit", MAX_EXPERIMENTS, minimum=1, maximum=MAX_EXPERIMENTS)
        experiments = await asyncio.to_thread(list_experiments, self.engine.tracker, limit)
        self.write_json({"experiments": experiments})
