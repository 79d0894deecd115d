"""Backend kinds → backend classes, found as plug-ins; one backend instance per connection.

Every backend, the four built-ins included, is a plug-in: an entry point in the group
``jupyterlab_hpcml.backends`` whose name is the kind (what a config selects) and whose
value is ``"module:Class"``. A package installed next to this one adds a kind by declaring
one in its own ``pyproject.toml``::

    [project.entry-points."jupyterlab_hpcml.backends"]
    tinyqueue = "hpcml_tinyqueue.backend:TinyQueueBackend"

Discovery reads only the installed packages' metadata (once per process); a backend's
module is imported the first time its kind is used, so start-up stays fast and a broken
plug-in troubles only the configs that select it. See docs/backends.md.
"""
from __future__ import annotations

import functools
import importlib
import logging
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Protocol

from ..core.connections import ConnectionIdentity, connection_identity
from ..core.errors import Unsupported
from .base import Backend, Features

log = logging.getLogger(__name__)

GROUP = "jupyterlab_hpcml.backends"
AnyBackend = Backend[Any]  # one instance per connection, whatever its config model
# The distribution whose entry points win when another package claims the same kind.
OWN_DISTRIBUTION = "jupyterlab-hpcml"


@functools.cache
def available() -> dict[str, EntryPoint]:
    """Installed backend kinds (entry point name → entry point), read once per process.

    A kind claimed twice keeps this package's backend, or else the first one found, and
    the clash is logged: a plug-in cannot silently replace a built-in."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        old = found.get(ep.name)
        if old is not None and old.value != ep.value:
            keep = ep if _is_own(ep) and not _is_own(old) else old
            log.warning("backend kind %r is declared twice (%s and %s); using %s",
                        ep.name, old.value, ep.value, keep.value)
            found[ep.name] = keep
        else:
            found[ep.name] = ep
    return found


def _is_own(ep: EntryPoint) -> bool:
    dist = getattr(ep, "dist", None)
    return bool(dist and dist.name.replace("_", "-").lower() == OWN_DISTRIBUTION)


def kinds() -> list[str]:
    """The kinds a config may select, sorted."""
    return sorted(available())


def backend_class(kind: str) -> type[AnyBackend]:
    """The backend class of ``kind``, imported now (the first use of that kind)."""
    ep = available().get(kind)
    if ep is None:
        raise Unsupported(
            f"the {kind} backend is not installed (available: {', '.join(kinds())})"
        )
    return _load(ep.name, ep.value)


@functools.cache
def _load(kind: str, target: str) -> type[AnyBackend]:
    module, _, name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except Exception as exc:  # noqa: BLE001 - a broken plug-in is a clear error, not a crash
        raise Unsupported(f"the {kind} backend ({target}) cannot be loaded: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise Unsupported(f"the {kind} backend ({target}) is not a Backend subclass")
    return cls


class RunLike(Protocol):
    """What the registry needs of a run to find its backend (any run record has it)."""

    backend: str
    backend_config: dict[str, Any]


class BackendRegistry:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._backends: dict[ConnectionIdentity, AnyBackend] = {}

    def get(self, kind: str, config: dict[str, Any], connection: str | None = None) -> AnyBackend:
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

    def for_run(self, run: RunLike) -> AnyBackend:
        # The stored config is redacted (secrets only, never the identity's URLs or
        # names); backends take secrets from the environment or the lab's memory store.
        return self.get(run.backend, run.backend_config)

    def features(self) -> dict[str, Features]:
        """Every installed kind and what it can do; a plug-in that fails to load is left
        out (and logged), so one broken package does not hide the others."""
        out: dict[str, Features] = {}
        for kind in kinds():
            try:
                out[kind] = backend_class(kind)({}, self.data_dir).supported_features()
            except Exception:  # noqa: BLE001 - a plug-in's fault must not break the list
                log.exception("backend %r left out of the backend list", kind)
        return out

    async def close(self) -> None:
        for backend in self._backends.values():
            await backend.close()
        self._backends.clear()
