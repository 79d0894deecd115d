"""Project introspection: entry points, parameter schemas, backend configs."""
from __future__ import annotations

from .base import HpcmlHandler, authenticated


class ProjectHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        """The project at (or above) ``path``: entry points with parameter JSON Schemas, configs."""
        start = self.resolve_path(self.get_query_argument("path", ""))
        root = await self.engine.find_project(start, self.root_dir)
        data = await self.engine.describe_project(root, self.root_dir)
        data["path"] = self.relative(root)
        self.write_json(data)
