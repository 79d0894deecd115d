"""What the runs tab and the charts tab need in one request each.

- ``runs-view/rows``: a sorted, filtered page of compact run rows (the table never needs
  whole records), with the total and the store's change cursor for ``runs?since=``;
- ``runs-view/metrics``: the latest value of every metric of several runs (key metrics column);
- ``runs-view/histories``: every metric history of several runs, downsampled (charts tab).
"""
from __future__ import annotations

import asyncio
import math
import re
from typing import Any

from ..core.errors import HpcmlError, Problem, UserInputError
from ..engine.store import ROW_SORTS
from .base import HpcmlHandler, authenticated
from .runs import parse_archived, parse_states

MAX_IDS = 100
RUN_ID_RE = re.compile(r"[A-Za-z0-9_-]+")  # as in the routes (handlers/__init__.py)
MAX_POINTS = 100_000


class RunRowsHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        """A page of compact run rows, sorted by any table column, and the change cursor."""
        limit = self.int_arg("limit", 100, minimum=1, maximum=1000)
        offset = self.int_arg("offset", 0, minimum=0)
        sort = self.get_query_argument("sort", "submitted")
        if sort not in ROW_SORTS:
            raise UserInputError(Problem(f"unknown sort {sort!r}; allowed: {', '.join(ROW_SORTS)}",
                                         key="sort"))
        order = self.get_query_argument("order", "desc")
        if order not in ("asc", "desc"):
            raise UserInputError(Problem("order must be 'asc' or 'desc'", key="order"))
        states = parse_states(self.get_query_arguments("state"))
        page = await asyncio.to_thread(
            self.engine.store.rows, sort=sort, descending=order == "desc", states=states,
            text=self.get_query_argument("q", None) or None, archived=parse_archived(self),
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
        outputs = self.engine.outputs
        out: dict[str, dict[str, float | None]] = {}
        for run_id in self.run_ids():
            try:
                keys = await outputs.metric_keys(run_id)
            except HpcmlError:
                continue
            except Exception as exc:  # MLflow run deleted, tracking store down: skip the row
                self.log.debug("hpcml: no metrics for %s: %s", run_id, exc)
                continue
            out[run_id] = {m["key"]: m["value"] for m in keys}
        self.write_json({"metrics": out})


def sql_metric_history(client: Any, mlflow_run_id: str, key: str, max_points: int,
                       x: str) -> dict[str, Any] | None:
    """The same answer as ``Tracker.metric_history``, read with one SQL query when the
    tracking store is MLflow's SQL store: ``get_metric_history`` builds an ORM object per
    point (about 2 s for 100,000 points), the query takes a few tens of ms. None when the
    store is another kind (file store, REST server): the caller uses MLflow's API then."""
    from ..engine.downsample import downsample

    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    engine = getattr(store, "engine", None)
    if engine is None or not hasattr(store, "ManagedSessionMaker"):
        return None
    from sqlalchemy import text

    order = "timestamp, step" if x == "time" else "step, timestamp"
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT step, timestamp, value, is_nan FROM metrics "
                 f"WHERE run_uuid = :run AND key = :key ORDER BY {order}"),
            {"run": mlflow_run_id, "key": key},
        ).all()
    xs = [r[1] / 1000.0 for r in rows] if x == "time" else [r[0] for r in rows]
    ys = [math.nan if r[3] else r[2] for r in rows]
    return {"key": key, "total": len(rows), "points": downsample(xs, ys, max_points)}


async def metric_history(handler: HpcmlHandler, run_id: str, key: str, max_points: int,
                         x: str) -> dict[str, Any]:
    """One metric history: the SQL fast path where it applies, else the engine's."""
    engine = handler.engine
    if 2 <= max_points <= MAX_POINTS and x in ("step", "time"):
        record = await asyncio.to_thread(engine.store.get, run_id)
        if record.mlflow_run_id:
            try:
                fast = await asyncio.to_thread(sql_metric_history, engine.tracker.client,
                                               record.mlflow_run_id, key, max_points, x)
            except Exception as exc:  # schema differs in some MLflow version: the slow path
                handler.log.debug("hpcml: SQL metric history failed, using MLflow's: %s", exc)
                fast = None
            if fast is not None:
                return fast
    return await engine.outputs.metric_history(run_id, key, max_points, x)  # type: ignore[arg-type]


class MetricHistoriesHandler(_ManyRunsHandler):
    @authenticated
    async def get(self) -> None:
        """Every metric history of each run: ``{runs: [{id, metrics: [{key, total, points}],
        error}]}``, each downsampled to ``max_points``."""
        max_points = self.int_arg("max_points", 1000, minimum=2, maximum=MAX_POINTS)
        x = self.get_query_argument("x", "step")
        if x not in ("step", "time"):
            raise UserInputError(Problem("x must be 'step' or 'time'", key="x"))
        only = set(self.get_query_arguments("key"))
        outputs = self.engine.outputs
        answer = []
        for run_id in self.run_ids():
            entry: dict[str, Any] = {"id": run_id, "metrics": [], "error": None}
            try:
                keys = [m["key"] for m in await outputs.metric_keys(run_id)]
                for key in keys:
                    if not only or key in only:
                        entry["metrics"].append(
                            await metric_history(self, run_id, key, max_points, x))
            except UserInputError:
                raise
            except HpcmlError as exc:
                entry["error"] = str(exc)
            except Exception as exc:
                entry["error"] = f"metrics unavailable: {exc}"
            answer.append(entry)
        self.write_json({"runs": answer})
