"""Runs: list, submit, get, cancel, re-run, delete, archive."""
from __future__ import annotations

import json
import math
from typing import Any

from ..core.errors import Problem, UserInputError
from ..core.states import RunState
from ..engine.models import RunRecord
from ..engine.requests import RerunRequest, SubmitRequest
from ..engine.service import RunJson
from .base import HpcmlHandler, authenticated


def _extras(handler: HpcmlHandler, run_id: str, project_path: str, started_at: float | None,
            ended_at: float | None) -> dict[str, Any]:
    """What the API adds to a stored record."""
    progress = handler.engine.upload_progress(run_id)
    return {
        "project_relpath": handler.relative(project_path),
        "started_at": started_at,
        "ended_at": ended_at,
        "upload_progress": {"sent": progress[0], "total": progress[1]} if progress else None,
        "staging_progress": handler.engine.staging_progress(run_id),
    }


def run_json(handler: HpcmlHandler, run: RunRecord) -> dict[str, Any]:
    data = run.model_dump(mode="json")
    data.update(_extras(handler, run.id, run.project_path, run.started_at, run.ended_at))
    return data


def run_json_text(handler: HpcmlHandler, run: RunJson) -> str:
    """``json.dumps(run_json(...))`` of the same run (as parsed JSON), spliced from the
    stored text: listings serve many runs, and validating and re-encoding each was most
    of a page's cost."""
    extras = json.dumps(_extras(handler, run.id, run.project_path, run.started_at,
                                run.ended_at))
    return f"{run.json[:-1]},{extras[1:]}"


def write_runs(handler: HpcmlHandler, runs: list[RunJson], total: int) -> None:
    """``{"runs": [...], "total": n}`` from runs read as JSON text."""
    handler.set_header("Content-Type", "application/json")
    handler.finish(f'{{"runs":[{",".join(run_json_text(handler, r) for r in runs)}],'
                   f'"total":{int(total)}}}')


def parse_states(raw: list[str]) -> list[RunState] | None:
    names = [s.strip().upper() for part in raw for s in part.split(",")]
    if "" in names:
        raise UserInputError(Problem("empty state in the filter", key="state"))
    try:
        return [RunState(n) for n in names] or None
    except ValueError:
        allowed = ", ".join(s.value for s in RunState)
        raise UserInputError(
            Problem(f"unknown state in {names}; allowed: {allowed}", key="state")) from None


# `archived` query values → the store's filter (False: hide archived, None: both, True: only).
_ARCHIVED = {"false": False, "true": None, "only": True}
_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def parse_archived(handler: HpcmlHandler) -> bool | None:
    raw = handler.get_query_argument("archived", "false").lower()
    if raw not in _ARCHIVED:
        raise UserInputError(Problem(f"archived must be false, true or only, got {raw!r}",
                                     key="archived"))
    return _ARCHIVED[raw]


def bool_arg(handler: HpcmlHandler, name: str) -> bool:
    raw = handler.get_query_argument(name, "false").lower()
    if raw not in _BOOLS:
        raise UserInputError(Problem(f"must be true or false, got {raw!r}", key=name))
    return _BOOLS[raw]


class RunsHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        """Runs newest first, paged and filtered."""
        limit = self.int_arg("limit", 50)
        offset = self.int_arg("offset", 0)
        if not 1 <= limit <= 1000 or offset < 0:
            raise UserInputError(Problem("limit must be 1..1000 and offset >= 0", key="limit"))
        states = parse_states(self.get_query_arguments("state"))
        archived = parse_archived(self)  # checked with `since` too, which lists archived runs
        since = self.get_query_argument("since", None)
        engine = self.engine
        if since is not None:
            try:
                cursor = float(since)
                if not math.isfinite(cursor):
                    raise ValueError(since)
            except ValueError:
                raise UserInputError(
                    Problem(f"must be a number, got {since!r}", key="since")) from None
            changed = await engine.changed_since_json(cursor)
            write_runs(self, changed, len(changed))
            return
        runs, total = await engine.list_runs_json(
            states=states,
            project=self.get_query_argument("project", None),
            experiment=self.get_query_argument("experiment", None),
            text=self.get_query_argument("q", None),
            archived=archived,
            limit=limit,
            offset=offset,
        )
        write_runs(self, runs, total)

    @authenticated
    async def post(self) -> None:
        """Submit a run."""
        req = self.body(SubmitRequest)
        req.project = str(self.resolve_path(req.project))
        run = await self.engine.submit(req, root=self.root_dir)  # the lab's world only
        self.write_json(run_json(self, run), status=201)


class RunHandler(HpcmlHandler):
    @authenticated
    async def get(self, run_id: str) -> None:
        self.write_json(run_json(self, await self.engine.get(run_id)))

    @authenticated
    async def delete(self, run_id: str) -> None:
        """Delete an ended run (409 while active); ``delete_mlflow=true`` also its MLflow run."""
        delete_mlflow = bool_arg(self, "delete_mlflow")
        self.write_json(await self.engine.delete(run_id, delete_mlflow=delete_mlflow))


class ArchiveHandler(HpcmlHandler):
    @authenticated
    async def post(self, run_id: str) -> None:
        self.write_json(run_json(self, await self.engine.set_archived(run_id, True)))


class UnarchiveHandler(HpcmlHandler):
    @authenticated
    async def post(self, run_id: str) -> None:
        self.write_json(run_json(self, await self.engine.set_archived(run_id, False)))


class CancelHandler(HpcmlHandler):
    @authenticated
    async def post(self, run_id: str) -> None:
        run = await self.engine.cancel(run_id)
        self.write_json(run_json(self, run))


class RerunHandler(HpcmlHandler):
    @authenticated
    async def post(self, run_id: str) -> None:
        run = await self.engine.rerun(run_id, self.body(RerunRequest), root=self.root_dir)
        self.write_json(run_json(self, run), status=201)
