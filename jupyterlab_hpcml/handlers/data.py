"""Datasets: a project's datasets and their versions on a config's target, staging ahead
of a run (in the background, with progress), and freeing a staged version."""
from __future__ import annotations

from typing import Any

from ..engine.requests import DataStageRequest
from ..engine.service import DataView
from .base import HpcmlHandler, authenticated


def _config(handler: HpcmlHandler) -> str | None:
    return handler.get_query_argument("config", None) or None


def data_json(handler: HpcmlHandler, view: DataView) -> dict[str, Any]:
    data = view.model_dump(mode="json")
    data["project_relpath"] = handler.relative(view.project)
    return data


class DataHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        """``?project=P&config=C``: the project's datasets on C's target (default: local)."""
        project = self.resolve_path(self.get_query_argument("project", ""))
        view = await self.engine.data_overview(project, _config(self), root=self.root_dir)
        self.write_json(data_json(self, view))


class DataStageHandler(HpcmlHandler):
    @authenticated
    async def post(self) -> None:
        """Start staging (202); follow it at ``data/stage/{id}``."""
        req = self.body(DataStageRequest)
        req.project = str(self.resolve_path(req.project))
        view = await self.engine.start_staging(req, root=self.root_dir)
        self.write_json(view.model_dump(mode="json"), status=202)


class DataStagingHandler(HpcmlHandler):
    @authenticated
    async def get(self, staging_id: str) -> None:
        self.write_json(self.engine.staging(staging_id).model_dump(mode="json"))


class DataVersionHandler(HpcmlHandler):
    @authenticated
    async def delete(self, digest: str) -> None:
        """``?project=P&config=C``: free the version on C's target (409 while in use)."""
        project = self.resolve_path(self.get_query_argument("project", ""))
        await self.engine.remove_data_version(project, _config(self), digest,
                                              root=self.root_dir)
        self.write_json({"digest": digest, "deleted": True})
