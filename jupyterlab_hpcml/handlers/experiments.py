"""MLflow experiments, for the experiment picker of the submit form."""
from __future__ import annotations

from .base import HpcmlHandler, authenticated

MAX_EXPERIMENTS = 1000


class ExperimentsHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        limit = self.int_arg("limit", MAX_EXPERIMENTS, minimum=1, maximum=MAX_EXPERIMENTS)
        self.write_json({"experiments": await self.engine.experiments(limit)})
