"""What the server offers: backend features and the backend-config schema."""
from __future__ import annotations

from .. import __version__
from ..engine import config as config_mod
from .base import HpcmlHandler, authenticated


class FeaturesHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        features = self.engine.registry.features()
        self.write_json({
            "version": __version__,
            "backends": {k: f.model_dump() for k, f in features.items()},
        })


class ConfigSchemaHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        self.write_json(config_mod.schema())
