"""Backend config → backend instance, one instance per connection (shared by all runs)."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ..core.connections import ConnectionIdentity, connection_identity
from ..core.errors import Unsupported
from ..engine.models import RunRecord
from .base import Backend, Features

# kind → "module:Class", imported on first use so start-up stays fast.
BACKEND_CLASSES: dict[str, str] = {
    "local": "jupyterlab_hpcml.backends.local:LocalBackend",
    "firecrest": "jupyterlab_hpcml.backends.firecrest:FirecrestBackend",
    "unicore": "jupyterlab_hpcml.backends.unicore:UnicoreBackend",
    "ssh": "jupyterlab_hpcml.backends.ssh.slurm:SlurmBackend",
}


def backend_class(kind: str) -> type[Backend]:
    target = BACKEND_CLASSES.get(kind)
    if target is None:
        raise Unsupported(
            f"the {kind} backend is not available in this version "
            f"(available: {', '.join(sorted(BACKEND_CLASSES))})"
        )
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class BackendRegistry:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._backends: dict[ConnectionIdentity, Backend] = {}

    def get(self, kind: str, config: dict[str, Any], connection: str | None = None) -> Backend:
        """The shared backend for the config's connection; created on first use.

        Keyed by the full connection identity computed from ``config`` (for FirecREST the
        token URL too), so a config naming another token endpoint never reuses a backend,
        or credentials, made for a different one. ``connection`` (a name) is not trusted
        for that and only accepted for older callers."""
        key = connection_identity(kind, config)
        backend = self._backends.get(key)
        if backend is None:
            backend = backend_class(kind)(config, self.data_dir)
            self._backends[key] = backend
        return backend

    def for_run(self, run: RunRecord) -> Backend:
        # The stored config is redacted (secrets only, never the identity's URLs or
        # names); backends take secrets from the environment or the lab's memory store.
        return self.get(run.backend, run.backend_config)

    def features(self) -> dict[str, Features]:
        return {
            kind: backend_class(kind)({}, self.data_dir).supported_features()
            for kind in BACKEND_CLASSES
        }

    async def close(self) -> None:
        for backend in self._backends.values():
            await backend.close()
        self._backends.clear()
