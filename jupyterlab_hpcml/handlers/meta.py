"""What the server offers: backend features and the backend-config schema."""
from __future__ import annotations

from .. import __version__
from .base import HpcmlHandler, authenticated


class FeaturesHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        self.write_json({"version": __version__, "backends": await self.engine.features()})


class ConfigSchemaHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        self.write_json(self.engine.config_schema())
