"""Sweeps: submit, preview, list, get (with children), cancel, re-run the failed."""
from __future__ import annotations

from typing import Any

from ..core.errors import Problem, UserInputError
from ..engine.models import SweepRecord, SweepView
from ..engine.requests import SweepRequest, SweepRerunRequest
from .base import HpcmlHandler, authenticated
from .runs import run_json


def sweep_json(handler: HpcmlHandler, sweep: SweepRecord) -> dict[str, Any]:
    """A sweep as the API shows it; a view's children as runs are shown."""
    data = sweep.model_dump(mode="json", exclude={"children"})
    data["project_relpath"] = handler.relative(sweep.project_path)
    if isinstance(sweep, SweepView):
        data["children"] = [run_json(handler, child) for child in sweep.children]
    return data


def _sweep_request(handler: HpcmlHandler) -> SweepRequest:
    req = handler.body(SweepRequest)
    req.project = str(handler.resolve_path(req.project))
    return req


class SweepsHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        """Sweeps newest first, with their children's counts by state."""
        limit = self.int_arg("limit", 100)
        offset = self.int_arg("offset", 0)
        if not 1 <= limit <= 1000 or offset < 0:
            raise UserInputError(Problem("limit must be 1..1000 and offset >= 0", key="limit"))
        sweeps = await self.engine.list_sweeps(limit=limit, offset=offset)
        self.write_json({"sweeps": [sweep_json(self, s) for s in sweeps]})

    @authenticated
    async def post(self) -> None:
        """Submit a sweep: every child created, then submitted."""
        sweep = await self.engine.submit_sweep(_sweep_request(self), root=self.root_dir)
        self.write_json(sweep_json(self, sweep), status=201)


class SweepPreviewHandler(HpcmlHandler):
    @authenticated
    async def post(self) -> None:
        """How many runs a definition makes (its first points), checked; creates nothing."""
        preview = await self.engine.preview_sweep(_sweep_request(self), root=self.root_dir)
        self.write_json(preview.model_dump(mode="json"))


class SweepHandler(HpcmlHandler):
    @authenticated
    async def get(self, sweep_id: str) -> None:
        self.write_json(sweep_json(self, await self.engine.get_sweep(sweep_id)))


class SweepCancelHandler(HpcmlHandler):
    @authenticated
    async def post(self, sweep_id: str) -> None:
        self.write_json(sweep_json(self, await self.engine.cancel_sweep(sweep_id)))


class SweepRerunHandler(HpcmlHandler):
    @authenticated
    async def post(self, sweep_id: str) -> None:
        sweep = await self.engine.rerun_sweep(sweep_id, self.body(SweepRerunRequest),
                                              root=self.root_dir)
        self.write_json(sweep_json(self, sweep), status=201)
