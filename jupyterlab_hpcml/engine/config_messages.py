"""Backend-config problems in the user's terms: jsonschema's errors turned into
messages with the file's line, the dotted key and "did you mean ...?", and how values
and key paths are shown in them."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, cast

import jsonschema
import yaml

from ..core.errors import Problem
from . import backend_kind
from .config_units import parse_memory, parse_runtime

BackendKind = str  # a backend kind (see config.BackendConfig.kind)
KeyPath = tuple[str | int, ...]


def line_of(root: yaml.Node | None, path: KeyPath) -> int | None:
    """1-based line of the key (or list item) at ``path``, else of its nearest existing ancestor."""
    if root is None:
        return None
    node, line = root, root.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            # The last occurrence wins, as in the loaded data.
            match = [(k, v) for k, v in node.value if str(k.value) == str(part)]
            if not match:
                break
            key_node, node = match[-1]
            line = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


@dataclass
class Issue:
    key: KeyPath  # the offending key
    message: str
    at: KeyPath | None = None  # where to look for its line (default: key)


def translate(error: jsonschema.ValidationError, kind: BackendKind) -> list[Issue]:
    """One jsonschema error → issues in the user's terms."""
    path: KeyPath = tuple(error.absolute_path)
    schema_path = list(error.absolute_schema_path)
    validator = error.validator
    # jsonschema types these as "maybe unset"; an error from iter_errors has them all.
    subschema = cast(dict[str, Any], error.schema)
    instance: Any = error.instance
    expected: Any = error.validator_value
    if validator == "additionalProperties":
        allowed = list(subschema.get("properties", {}))
        extra = [k for k in instance if k not in allowed]
        return [Issue(path + (str(k),), _unknown_key_message(str(k), allowed)) for k in extra]
    if validator == "required":
        return _missing_issues(instance, expected, path, "then" in schema_path, kind)
    if validator == "not":
        # On a non-mapping, "not required" fails too; the type error already says it all.
        return [_only_one_issue(instance, expected, path)] if isinstance(instance, dict) else []
    if validator == "pattern" and "propertyNames" in schema_path:
        return [Issue(path + (instance,), variable_name_message(instance))]
    if validator == "pattern":
        return [Issue(path, pattern_message(path, instance))]
    if validator in ("type", "minimum", "maximum"):
        return [Issue(path, _type_message(path, subschema, instance))]
    if validator == "minLength":
        return [Issue(path, "must not be empty")]
    if validator == "enum":
        return [Issue(path, _choice_message(expected, instance))]
    return [Issue(path, f"is invalid ({validator}): {describe(instance)}")]


def _missing_issues(
    instance: dict[str, Any], required: list[str], path: KeyPath, conditional: bool,
    kind: BackendKind,
) -> list[Issue]:
    issues: list[Issue] = []
    for name in required:
        if name in instance:
            continue
        key = path + (name,)
        if conditional and key == ("Resources",):
            backend_key = next(k for k, v in backend_kind.BUILTIN_KEYS.items() if v == kind)
            issues.append(Issue(
                ("Resources", "Queue"),
                f"Queue is required for the {kind} backend (add a Resources section with a Queue)",
                at=(backend_key,),
            ))
        elif conditional and key == ("Resources", "Queue"):
            issues.append(Issue(key, f"Queue is required for the {kind} backend", at=path))
        elif conditional and key == ("Tracking", "Uri"):
            issues.append(Issue(key, (
                f"Uri is required when Mode is direct on the {kind} backend: the compute nodes "
                "must reach the tracking server (or use Mode: offline)"
            ), at=path))
        else:
            issues.append(Issue(key, f"{name} is required", at=path))
    return issues


def _only_one_issue(instance: dict[str, Any], forbidden: dict[str, Any], path: KeyPath) -> Issue:
    branches = forbidden.get("anyOf", [forbidden])
    names: list[str] = []
    for branch in branches:
        names += [n for n in branch.get("required", []) if n not in names]
    given = [n for n in names if n in instance]
    message = f"only one of {', '.join(names)} may be given, found {' and '.join(given)}"
    return Issue(path + (given[-1],), message)


def to_problems(
    issues: list[Issue], source: str | None, root: yaml.Node | None, overridden: dict[KeyPath, str]
) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for issue in issues:
        key = dotted(issue.key)
        if (key, issue.message) in seen:
            continue
        seen.add((key, issue.message))
        override = _override_for(issue.key, overridden)
        if override is not None:  # the file's line would point at the wrong value
            problems.append(Problem(f"{issue.message} (override {override})", file=source, key=key))
        else:
            line = line_of(root, issue.at if issue.at is not None else issue.key)
            problems.append(Problem(issue.message, file=source, line=line, key=key))
    problems.sort(key=lambda p: (p.line is None, p.line or 0, p.key or ""))
    return problems


def _override_for(key: KeyPath, overridden: dict[KeyPath, str]) -> str | None:
    for path, text in overridden.items():
        shorter = min(len(path), len(key))
        if path[:shorter] == key[:shorter]:
            return text
    return None


_TYPE_WORDS = {
    "integer": "an integer", "number": "a number", "string": "a string",
    "object": "a mapping", "array": "a list", "boolean": "true/false", "null": "empty",
}


def _type_message(path: KeyPath, subschema: dict[str, Any], value: Any) -> str:
    name = _last_name(path)
    if name in ("Runtime", "MemoryPerNode"):  # the parser knows the formats
        return _parser_message(name, value)
    if name == "Port":
        return pattern_message(path, value)
    types = subschema.get("type", [])
    types = [types] if isinstance(types, str) else types
    words = [_TYPE_WORDS.get(t, t) for t in types if t != "null"]
    expected = " or ".join(filter(None, [", ".join(words[:-1]), words[-1]]))
    low, high = subschema.get("minimum"), subschema.get("maximum")
    if low is not None and high is not None:
        expected += f" between {low} and {high}"
    elif low is not None:
        expected += f" ≥ {low}"
    return f"must be {expected}, got {describe(value)}"


def pattern_message(path: KeyPath, value: Any) -> str:
    name = _last_name(path)
    if name in ("Runtime", "MemoryPerNode"):
        return _parser_message(name, value)
    if name in ("UnicoreApiUrl", "ApiUrl", "TokenUrl"):
        return f"must be an http:// or https:// URL, got {describe(value)}"
    if name == "Uri":
        return ("must be a URI with a scheme, e.g. https://mlflow.example.org, "
                f"got {describe(value)}")
    if name == "Port":
        return f"must be a port number between 1 and 65535, got {describe(value)}"
    if name == "Type":
        return _choice_message(["local", "remote"], value)
    if name == "Path" and "Apptainer" in path:
        return ("must be an absolute path on the cluster when Type is remote, "
                f"got {describe(value)}")
    if name in ("Hostname", "ProxyJump"):
        return f"must not contain spaces, got {describe(value)}"
    return f"has an invalid format: {describe(value)}"


def _parser_message(name: str, value: Any) -> str:
    try:
        (parse_runtime if name == "Runtime" else parse_memory)(value)
    except ValueError as exc:
        return unit_message(exc, name, value)
    return f"is invalid: {describe(value)}"  # schema and parser disagree: should not happen


def unit_message(exc: ValueError, name: str, value: Any) -> str:
    # Problem.key already names the key; "Runtime must be ..." → "must be ..., got ...".
    message = str(exc)
    message = message[len(name) + 1:] if message.startswith(name + " ") else message
    return f"{message}, got {describe(value)}"


def _unknown_key_message(key: str, allowed: list[str]) -> str:
    suggestion = _did_you_mean(key, allowed)
    if suggestion:
        return f"unknown key '{key}' — did you mean '{suggestion}'?"
    return f"unknown key '{key}' (allowed here: {', '.join(allowed)})"


def _choice_message(choices: list[Any], value: Any) -> str:
    listed = ", ".join(f"'{c}'" for c in choices)
    message = f"must be one of {listed}, got {describe(value)}"
    suggestion = _did_you_mean(str(value), [str(c) for c in choices])
    return message + (f" — did you mean '{suggestion}'?" if suggestion else "")


def variable_name_message(name: Any) -> str:
    return (f"'{name}' is not a valid environment variable name "
            "(letters, digits and _, not starting with a digit)")


def _did_you_mean(word: str, options: list[str]) -> str | None:
    by_lower = {o.lower(): o for o in options}
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def describe(value: Any) -> str:
    """A short rendering of a value for messages (no huge reprs)."""
    if value is None:
        return "nothing (empty value)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return str(value)


def _last_name(path: KeyPath) -> str:
    return next((str(p) for p in reversed(path) if isinstance(p, str)), "")


def dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
