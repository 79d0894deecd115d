"""Registered models: list, show, register a run's model, move an alias, a version's
lineage and deployments."""
from __future__ import annotations

from typing import Any

from ..engine.requests import AliasRequest, PredictRequest, RegisterRequest
from ..engine.service import ModelVersionDetail
from .base import HpcmlHandler, authenticated
from .runs import run_json


class ModelsHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        models = await self.engine.list_models()
        self.write_json({"models": [m.model_dump(mode="json") for m in models]})

    @authenticated
    async def post(self) -> None:
        """Register a run's logged model as a new version of ``name``."""
        req = self.body(RegisterRequest)
        version = await self.engine.register_model(
            req.run_id, req.name, path=req.path, alias=req.alias, description=req.description)
        self.write_json(version, status=201)


class ModelHandler(HpcmlHandler):
    @authenticated
    async def get(self, name: str) -> None:
        self.write_json(await self.engine.get_model(name))


class ModelAliasHandler(HpcmlHandler):
    @authenticated
    async def put(self, name: str, alias: str) -> None:
        req = self.body(AliasRequest)
        self.write_json(await self.engine.set_model_alias(name, alias, req.version))


def version_json(handler: HpcmlHandler, detail: ModelVersionDetail) -> dict[str, Any]:
    data = detail.model_dump(mode="json", exclude={"run"})
    data["run"] = run_json(handler, detail.run) if detail.run else None
    return data


class ModelVersionHandler(HpcmlHandler):
    @authenticated
    async def get(self, name: str, version: str) -> None:
        self.write_json(version_json(self, await self.engine.model_version(name, version)))


class PredictHandler(HpcmlHandler):
    @authenticated
    async def post(self) -> None:
        """Batch inference: a run scoring ``input`` with the model (201: the run)."""
        req = self.body(PredictRequest)
        if req.project is not None:
            req.project = str(self.resolve_path(req.project))
        run = await self.engine.predict(req, root=self.root_dir)
        self.write_json(run_json(self, run), status=201)
