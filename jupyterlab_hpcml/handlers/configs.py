"""Write edited sections (Resources, Environment) back into a project's backend config file
(the sidebar's "Save to config file"); the editing itself is engine/config_edit.py."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..engine.requests import PathText
from .base import HpcmlHandler, authenticated


class SaveConfigRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: PathText = Field(
        description="Project folder (or a file in it), relative to the server root")
    path: PathText = Field(
        description="Config file, relative to the project (as GET /project lists it)")
    sections: dict[str, dict[str, Any] | None] = Field(
        description="Top-level sections to write (Resources, Environment); null removes one"
    )


class SaveConfigHandler(HpcmlHandler):
    @authenticated
    async def post(self) -> None:
        """Write edited Resources/Environment into a config file; answer the project's configs."""
        req = self.body(SaveConfigRequest)
        engine = self.engine
        root = await engine.find_project(self.resolve_path(req.project), self.root_dir)
        rel = await engine.save_config_sections(root, req.path, req.sections)
        configs = await engine.describe_configs(root, self.root_dir)
        saved = next(c for c in configs if c["path"] == rel)
        self.write_json({"config": saved, "backend_configs": configs})
