"""Which backend a config selects, and the check of a plug-in's own config sections.

A built-in backend is known by its section (``SSH``, ``Firecrest``, ``UnicoreApiUrl``,
``Local``; none: local). Any backend, a plug-in's in particular, is selected by name with
a top-level ``Backend: <kind>`` (the kind is the plug-in's entry-point name). A plug-in's
settings live in the top-level sections its typed ``config_model`` declares beyond the
common ones (Resources, Environment, Tracking, ...): the JSON schema, which knows only the
built-ins, leaves those to the plug-in's model, which judges them here.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from ..backends import registry
from ..core.config_models import BackendConfigModel
from ..core.errors import HpcmlError

KeyPath = tuple[str | int, ...]
Issue = tuple[KeyPath, str]  # (key path in the config, message)

# Top-level key → built-in kind, in the order used when (wrongly) several are given.
BUILTIN_KEYS: dict[str, str] = {
    "UnicoreApiUrl": "unicore",
    "Firecrest": "firecrest",
    "SSH": "ssh",
    "Local": "local",
}
SELECT_KEY = "Backend"


def select(data: Mapping[str, Any]) -> tuple[str, list[Issue]]:
    """The kind ``data`` selects, and problems with the selection (an unknown or
    uninstalled kind, a ``Backend`` that contradicts a built-in's section)."""
    detected = next((kind for key, kind in BUILTIN_KEYS.items() if key in data), None)
    named = data.get(SELECT_KEY)
    if not isinstance(named, str) or not named:
        return detected or "local", []  # a non-string is the schema's to report
    if detected is not None and named != detected:
        key = next(k for k, v in BUILTIN_KEYS.items() if v == detected)
        return detected, [((SELECT_KEY,), f"says {named}, but the config has a {key} "
                                          f"section, which is the {detected} backend's")]
    if detected is None and named in BUILTIN_KEYS.values() and named != "local":
        key = next(k for k, v in BUILTIN_KEYS.items() if v == named)
        return named, [((SELECT_KEY,), f"the {named} backend needs its {key} section "
                                       "(where and how to reach the system)")]
    if named not in registry.available():
        installed = ", ".join(registry.kinds())
        return "local", [((SELECT_KEY,), f"no backend {named!r} is installed (installed: "
                                         f"{installed}); a plug-in backend is installed "
                                         "with pip next to jupyterlab-hpcml")]
    try:
        registry.backend_class(named)  # imported now: a broken plug-in is named here
    except HpcmlError as exc:
        return "local", [((SELECT_KEY,), str(exc))]
    return named, []


def own_keys(kind: str) -> set[str]:
    """Top-level keys that belong to the plug-in ``kind`` (none for a built-in): the
    sections of its ``config_model`` that the common model does not have."""
    if kind in BUILTIN_KEYS.values():
        return set()
    model = _model(kind)
    if model is None:
        return set()
    common = {f.alias or n for n, f in BackendConfigModel.model_fields.items()}
    return {f.alias or n for n, f in model.model_fields.items()} - common


def own_issues(kind: str, data: Mapping[str, Any]) -> list[Issue]:
    """What the plug-in's typed model finds wrong in its own sections."""
    keys = own_keys(kind)
    model = _model(kind)
    if not keys or model is None:
        return []
    try:
        model.model_validate({k: v for k, v in data.items() if k in keys})
    except ValidationError as exc:
        return [(tuple(err["loc"]), err["msg"].removeprefix("Value error, "))
                for err in exc.errors() if err["loc"] and err["loc"][0] in keys]
    return []


def _model(kind: str) -> type[BaseModel] | None:
    try:
        return registry.backend_class(kind).config_model
    except HpcmlError:
        return None  # not installed or broken: ``select`` has said so
