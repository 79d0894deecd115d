"""Overrides of a backend config (``--set Resources.Nodes=2``, ``-s`` in the magics, a
nested dict from the REST API or the Python API), merged into the config's data before it
is validated again (``config.apply_overrides``)."""
from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from ..core.errors import Problem, UserInputError
from . import yamlio
from .config_messages import KeyPath, describe, dotted


def merge(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[KeyPath, str]:
    """Merge ``overrides`` into ``data`` (in place): ``["Resources.Nodes=2", ...]`` or a
    nested dict. Returns each path set and the override as the user wrote it (so that a
    problem found later names the override, not the file's line); ``UserInputError``
    lists every override that cannot be applied.

    List values are YAML scalars (``null`` removes the key); Environment.Variables
    values stay the literal text. In a dict, ``None`` removes the key and top-level
    dotted keys ("Resources.Nodes") are paths.
    """
    applied: dict[KeyPath, str] = {}
    problems: list[Problem] = []
    if isinstance(overrides, dict):
        _merge_dict_overrides(data, overrides, applied, problems)
    else:
        for item in overrides:
            _apply_override_item(data, item, applied, problems)
    if problems:
        raise UserInputError(problems)
    return applied


def _apply_override_item(
    data: dict[str, Any], item: Any, applied: dict[KeyPath, str], problems: list[Problem]
) -> None:
    text = item if isinstance(item, str) else repr(item)
    key_text, eq, raw = text.partition("=")
    path = tuple(part.strip() for part in key_text.split("."))
    if not isinstance(item, str) or not eq or not all(path):
        problems.append(Problem(f"override '{text}' must look like Key.Path=value"))
        return
    value = raw if path[:2] == ("Environment", "Variables") else _yaml_scalar(raw)
    if _set_path(data, path, value, problems):
        applied[path] = f"'{text}'"


def _merge_dict_overrides(
    data: dict[str, Any], overrides: dict[str, Any], applied: dict[KeyPath, str],
    problems: list[Problem], prefix: KeyPath = (),
) -> None:
    for key, value in overrides.items():
        path = prefix + tuple(str(key).split("."))
        if isinstance(value, dict) and isinstance(_get_path(data, path), dict):
            _merge_dict_overrides(data, value, applied, problems, path)
        elif _set_path(data, path, copy.deepcopy(value), problems):
            applied[path] = f"'{dotted(path)}={json.dumps(value, default=str)}'"


def _get_path(data: dict[str, Any], path: KeyPath) -> Any:
    node: Any = data
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _set_path(data: dict[str, Any], path: KeyPath, value: Any, problems: list[Problem]) -> bool:
    """Set (or, for None, remove) ``path``; intermediate mappings are created."""
    node: Any = data
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None and value is None:
            return True  # removing what is not there
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = dotted(path[: depth + 1])
            problems.append(Problem(
                f"cannot set {dotted(path)}: {where} is {describe(child)}, not a mapping",
                key=dotted(path),
            ))
            return False
        node = child
    if value is None:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return True


def _yaml_scalar(text: str) -> Any:
    if text.strip() == "":
        return ""
    try:
        value = yamlio.safe_load(text)
    except yaml.YAMLError:
        return text
    # Dates and other YAML-only types would only confuse validation: keep the text.
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return text
