"""Request bodies as JSON, refusing what would crash code further in.

Not UTF-8, NaN/Infinity, numbers out of float range, integers Python will not convert
(over 4300 digits), nesting deeper than ``limits.MAX_JSON_DEPTH`` and NUL characters in
strings are each a ``UserInputError`` (400) here instead of an exception somewhere in the
engine (500) or a run that fails to start.
"""
from __future__ import annotations

import json
import math
from typing import Any

from ..core.errors import Problem, UserInputError
from ..engine import limits

_TOO_DEEP = f"request body is nested deeper than {limits.MAX_JSON_DEPTH} levels"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _check_structure(data: Any) -> None:
    """Nesting within the limit, and no NUL in any string: no field of this API can hold
    one (paths, names, parameters, environment values, credentials), and one would only
    fail later, e.g. when a job's environment is built."""
    # Iterative: a recursive walk would itself overflow on what it is meant to refuse.
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                raise UserInputError(Problem("must not contain a NUL character",
                                             key=".".join(path) or None))
        elif isinstance(node, (dict, list)):
            if len(path) >= limits.MAX_JSON_DEPTH:
                raise UserInputError(_TOO_DEEP)
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in items:
                if isinstance(key, str) and "\x00" in key:
                    raise UserInputError(Problem("a key must not contain a NUL character",
                                                 key=".".join(path) or None))
                stack.append((child, (*path, str(key))))


def parse_json_body(raw: bytes) -> Any:
    """``raw`` as JSON (an empty body is ``{}``), or ``UserInputError``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserInputError(
            f"request body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        data = json.loads(text or "{}", parse_constant=_reject_constant,
                          parse_float=_finite_float)
    except RecursionError:
        raise UserInputError(_TOO_DEEP) from None
    except ValueError as exc:  # JSONDecodeError, a 5000-digit integer, NaN
        raise UserInputError(f"request body is not JSON: {exc}") from None
    _check_structure(data)
    return data
