"""What the runs tab and the charts tab need in one request each.

- ``runs-view/rows``: a sorted, filtered page of compact rows of the top-level items (the
  table never needs whole records): single runs (``kind`` "run") and one row per sweep
  (``kind`` "sweep", its children's ``counts`` by state; the children come from
  ``sweeps/{id}``), with the total and the store's change cursor for ``runs?since=``;
- ``runs-view/metrics``: the latest value of every metric of several runs (key metrics column);
- ``runs-view/histories``: every metric history of several runs, downsampled (charts tab).
"""
from __future__ import annotations

import re

from ..core.errors import Problem, UserInputError
from ..engine.service import MAX_POINTS
from .base import HpcmlHandler, authenticated
from .runs import parse_archived, parse_states

MAX_IDS = 100
RUN_ID_RE = re.compile(r"[A-Za-z0-9_-]+")  # as in the routes (handlers/__init__.py)


class RunRowsHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        """A page of compact rows (runs and sweeps), sorted by any table column, and the
        change cursor; ``schedule``: only the runs that schedule created."""
        limit = self.int_arg("limit", 100, minimum=1, maximum=1000)
        offset = self.int_arg("offset", 0, minimum=0)
        order = self.get_query_argument("order", "desc")
        if order not in ("asc", "desc"):
            raise UserInputError(Problem("order must be 'asc' or 'desc'", key="order"))
        page = await self.engine.rows(
            sort=self.get_query_argument("sort", "submitted"), descending=order == "desc",
            states=parse_states(self.get_query_arguments("state")),
            text=self.get_query_argument("q", None) or None, archived=parse_archived(self),
            schedule=self.get_query_argument("schedule", None) or None,
            limit=limit, offset=offset,
        )
        self.write_json(page)


class _ManyRunsHandler(HpcmlHandler):
    def run_ids(self) -> list[str]:
        ids = [i for part in self.get_query_arguments("run") for i in part.split(",")]
        if not ids or len(ids) > MAX_IDS:
            raise UserInputError(Problem(f"give 1..{MAX_IDS} run ids", key="run"))
        bad = [i for i in ids if not RUN_ID_RE.fullmatch(i)]
        if bad:
            raise UserInputError(Problem(f"not a run id: {bad[0][:40]!r}", key="run"))
        return list(dict.fromkeys(ids))


class LatestMetricsHandler(_ManyRunsHandler):
    @authenticated
    async def get(self) -> None:
        """``{metrics: {run_id: {key: value}}}``; runs without an MLflow run are left out."""
        self.write_json({"metrics": await self.engine.latest_metrics(self.run_ids())})


class MetricHistoriesHandler(_ManyRunsHandler):
    @authenticated
    async def get(self) -> None:
        """Every metric history of each run: ``{runs: [{id, metrics: [{key, total, points}],
        error}]}``, each downsampled to ``max_points``."""
        max_points = self.int_arg("max_points", 1000, minimum=2, maximum=MAX_POINTS)
        runs = await self.engine.metric_histories(
            self.run_ids(), max_points, self.get_query_argument("x", "step"),
            set(self.get_query_arguments("key")))
        self.write_json({"runs": runs})
