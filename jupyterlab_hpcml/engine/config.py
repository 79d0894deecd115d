"""Compute backend config: load YAML/JSON, validate against the JSON schema, normalise.

The format is Mantik's compute backend config (UnicoreApiUrl / Firecrest / SSH,
Resources, Environment, Exclude) plus our own keys (Local, Tracking, Name). One
schema (``schema/backend-config.schema.json``) serves validation here and the
forms in the UI. This module holds the ``BackendConfig`` type, reading, parsing and
validating; its helpers each do one job: ``config_messages`` (jsonschema's errors as
problems a user can fix: file, line, dotted key, "did you mean ...?"),
``config_units`` (Runtime/MemoryPerNode), ``config_overrides`` (``--set``),
``config_redaction`` (secrets out of a stored config) and ``config_discovery`` (which
files of a project are configs).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import jsonschema
import yaml

from ..core.connections import ConnectionIdentity, connection_identity, endpoint_problems
from ..core.errors import Problem, UserInputError
from . import backend_kind, config_overrides, limits, schema_files, yamlio
from .config_discovery import CONFIG_SUFFIXES
from .config_messages import (
    Issue,
    KeyPath,
    describe,
    dotted,
    pattern_message,
    to_problems,
    translate,
    unit_message,
    variable_name_message,
)
from .config_redaction import redact
from .config_units import parse_memory, parse_runtime
from .filecache import StatCache

# "local", "ssh", "firecrest", "unicore", or an installed plug-in's kind (backend_kind.py).
BackendKind = str
TrackingMode = Literal["direct", "offline"]

# Top-level key → built-in backend kind.
BACKEND_KEYS = backend_kind.BUILTIN_KEYS
_COMMAND_KEYS = (
    "PreRunCommandOnLoginNode",
    "PostRunCommandOnLoginNode",
    "PreRunCommandOnComputeNode",
    "PostRunCommandOnComputeNode",
)
_SCHEMA_NAME = "backend-config.schema.json"

# ---------------------------------------------------------------------- schema


def schema() -> dict[str, Any]:
    """The backend config JSON schema (cached; do not mutate)."""
    return schema_files.load(_SCHEMA_NAME)


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


# ---------------------------------------------------------------- the config


@dataclass
class BackendConfig:
    """A validated backend config. ``data`` is as written (plus overrides) and may hold secrets."""

    data: dict[str, Any]
    path: Path | None
    kind: BackendKind
    resources: dict[str, Any]  # Runtime in seconds, MemoryPerNode in MiB
    environment: dict[str, Any]  # commands as lists, Python as a path string, Variables as str
    exclude: list[str]
    tracking_mode: TrackingMode
    tracking_uri: str | None
    # Where the config came from, so that overrides can still report lines of the file.
    _root: yaml.Node | None = field(default=None, repr=False, compare=False)
    _source: str | None = field(default=None, repr=False, compare=False)

    def copy(self) -> BackendConfig:
        """A copy whose data the caller may change (the YAML node tree is shared, read-only)."""
        return dataclasses.replace(
            self, data=copy.deepcopy(self.data), resources=copy.deepcopy(self.resources),
            environment=copy.deepcopy(self.environment), exclude=list(self.exclude),
        )

    def redacted(self) -> dict[str, Any]:
        """Deep copy of ``data`` with secret-looking values replaced by ``***``."""
        return cast(dict[str, Any], redact(self.data))

    @property
    def identity(self) -> ConnectionIdentity:
        """The compute system and where its secrets go (see :mod:`.connections`)."""
        return connection_identity(self.kind, self.data)

    @property
    def connection_name(self) -> str:
        """Identifies the compute system: runs with the same name share one backend."""
        return self.identity.name


def default_local_config() -> BackendConfig:
    """What runs when no config is chosen: the local backend, tracking directly."""
    return BackendConfig(
        data={}, path=None, kind="local", resources={}, environment={}, exclude=[],
        tracking_mode="direct", tracking_uri=None,
    )


_loaded: StatCache[BackendConfig] = StatCache()


def load_backend_config(path: Path) -> BackendConfig:
    """Read and validate a .yaml/.yml/.json config; ``UserInputError`` lists every problem."""
    return _loaded.get((Path(path),), lambda: _load_backend_config(path)).copy()


def _load_backend_config(path: Path) -> BackendConfig:
    source = str(path)
    text = _read_config_file(Path(path), source)
    data, root = _parse_text(text, source, is_json=Path(path).suffix.lower() == ".json")
    return _build(data, Path(path), source, root)


def parse_backend_config(data: Any, source: str = "<request>") -> BackendConfig:
    """Validate a config given as data (e.g. a REST body), or as YAML/JSON text (lines reported)."""
    root = None
    if isinstance(data, str):
        data, root = _parse_text(data, source, is_json=_is_json_text(data))
    elif data is None:
        raise UserInputError(Problem("the config is empty", file=source))
    elif not isinstance(data, dict):
        raise UserInputError(_not_a_mapping(data, source, None))
    return _build(copy.deepcopy(data), None, source, root)


def apply_overrides(
    cfg: BackendConfig, overrides: list[str] | dict[str, Any]
) -> BackendConfig:
    """A new config with ``["Resources.Nodes=2", ...]`` or a nested dict merged in
    (``config_overrides.merge``); re-validated."""
    data = copy.deepcopy(cfg.data)
    applied = config_overrides.merge(data, overrides)  # path → override as written
    source = cfg._source or (str(cfg.path) if cfg.path else None)
    return _build(data, cfg.path, source, cfg._root, applied)


# ------------------------------------------------------------ reading files


def _read_config_file(path: Path, source: str) -> str:
    if not path.exists():
        raise UserInputError(Problem("backend config file not found", file=source))
    if path.is_dir():
        raise UserInputError(Problem("is a directory, not a backend config file", file=source))
    if path.suffix.lower() not in CONFIG_SUFFIXES:
        raise UserInputError(Problem(
            f"unsupported file type '{path.suffix or path.name}': "
            "a backend config must be .yaml, .yml or .json",
            file=source,
        ))
    if not path.is_file():  # a FIFO or device would block or never end
        raise UserInputError(Problem("is not a regular file", file=source))
    try:
        with path.open("rb") as f:  # never more than the limit in memory, whatever the size
            raw = f.read(limits.MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise UserInputError(Problem(f"cannot be read: {exc.strerror}", file=source)) from None
    if len(raw) > limits.MAX_CONFIG_BYTES:
        raise UserInputError(Problem(
            f"is larger than {limits.MAX_CONFIG_BYTES} bytes: too large for a backend config",
            file=source))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserInputError(Problem("is not UTF-8 text", file=source)) from None


def _parse_text(text: str, source: str, is_json: bool) -> tuple[dict[str, Any], yaml.Node | None]:
    """Data plus the YAML node tree that knows each key's line."""
    if is_json:
        try:
            data = json.loads(text) if text.strip() else None
        except json.JSONDecodeError as exc:
            raise UserInputError(
                Problem(f"JSON syntax error: {exc.msg}", file=source, line=exc.lineno)
            ) from None
        root = _compose_for_lines(text.replace("\t", " "))  # JSON tabs are just whitespace
    else:
        data, root = _load_yaml(text, source)
    if data is None:
        raise UserInputError(Problem("the file is empty", file=source))
    if not isinstance(data, dict):
        raise UserInputError(_not_a_mapping(data, source, root))
    _check_duplicate_keys(root, source)
    return data, root


def _is_json_text(text: str) -> bool:
    # A YAML flow mapping also starts with "{": only call it JSON if JSON can read it.
    if not text.lstrip().startswith("{"):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _load_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    loader = yamlio.SafeLoader(text)
    try:
        root = loader.get_single_node()
        return (loader.construct_document(root) if root is not None else None), root
    except yaml.YAMLError as exc:
        raise UserInputError(_yaml_problem(exc, source)) from None
    finally:
        loader.dispose()


def _compose_for_lines(text: str) -> yaml.Node | None:
    try:
        return yamlio.compose(text)
    except yaml.YAMLError:
        return None  # valid JSON that YAML cannot read: no line numbers, still validated


def _yaml_problem(exc: yaml.YAMLError, source: str) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    return Problem(message, file=source, line=mark.line + 1 if mark is not None else None)


def _not_a_mapping(data: Any, source: str, root: yaml.Node | None) -> Problem:
    line = root.start_mark.line + 1 if root is not None else None
    return Problem(
        f"the top level must be a mapping of keys (such as Resources:), got {describe(data)}",
        file=source, line=line,
    )


def _check_duplicate_keys(root: yaml.Node | None, source: str) -> None:
    problems = [
        Problem(f"duplicate key '{name}' (first given on line {first})", file=source,
                line=line, key=dotted(path))
        for path, name, line, first in _duplicate_keys(root, ())
    ]
    if problems:
        raise UserInputError(problems)


def _duplicate_keys(node: yaml.Node | None, path: KeyPath) -> list[tuple[KeyPath, str, int, int]]:
    found: list[tuple[KeyPath, str, int, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            name, line = str(key_node.value), key_node.start_mark.line + 1
            if name in seen:
                found.append((path + (name,), name, line, seen[name]))
            seen.setdefault(name, line)
            found.extend(_duplicate_keys(value_node, path + (name,)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found.extend(_duplicate_keys(item, path + (index,)))
    return found


# ---------------------------------------------------------------- validation


def _build(
    data: dict[str, Any], path: Path | None, source: str | None, root: yaml.Node | None,
    overridden: dict[KeyPath, str] | None = None,
) -> BackendConfig:
    kind, selection = backend_kind.select(data)
    # A plug-in's own sections are judged by its typed model, the rest by the schema.
    own = backend_kind.own_keys(kind)
    issues = [Issue(key, message) for key, message in selection]
    issues += _schema_issues({k: v for k, v in data.items() if k not in own}, kind)
    issues += [Issue(key, message) for key, message in backend_kind.own_issues(kind, data)]
    issues += _value_issues(data, {i.key for i in issues})
    if issues:
        raise UserInputError(to_problems(issues, source, root, overridden or {}))
    tracking = data.get("Tracking") or {}
    # The schema allows only "direct" and "offline" (checked above).
    mode = cast(TrackingMode, tracking.get("Mode") or ("direct" if kind == "local" else "offline"))
    return BackendConfig(
        data=data, path=path, kind=kind,
        resources=_normalise_resources(data.get("Resources") or {}),
        environment=_normalise_environment(data.get("Environment") or {}),
        exclude=list(data.get("Exclude") or []),
        tracking_mode=mode, tracking_uri=tracking.get("Uri"),
        _root=root, _source=source,
    )


def _schema_issues(data: dict[str, Any], kind: BackendKind) -> list[Issue]:
    issues: list[Issue] = []
    for error in _validator().iter_errors(data):
        issues.extend(translate(error, kind))
    return issues


def _value_issues(data: dict[str, Any], already: set[KeyPath]) -> list[Issue]:
    """What the schema lets through but Python rejects (zero durations, port range)."""
    issues: list[Issue] = []
    resources = data.get("Resources")
    if isinstance(resources, dict):
        for name, parse in (("Runtime", parse_runtime), ("MemoryPerNode", parse_memory)):
            key = ("Resources", name)
            if name in resources and key not in already:
                try:
                    parse(resources[name])
                except ValueError as exc:
                    issues.append(Issue(key, unit_message(exc, name, resources[name])))
    environment = data.get("Environment")
    variables = environment.get("Variables") if isinstance(environment, dict) else None
    if isinstance(variables, dict):  # YAML allows `1: x`; propertyNames only checks strings
        issues += [Issue(("Environment", "Variables", str(k)), variable_name_message(k))
                   for k in variables if not isinstance(k, str)]
    # URLs that would carry a secret in clear text (http:// off loopback) or hold one.
    issues += [Issue(key, message) for key, message in endpoint_problems(data)
               if key not in already]
    ssh = data.get("SSH")
    port = ssh.get("Port") if isinstance(ssh, dict) else None
    if isinstance(port, str) and ("SSH", "Port") not in already:
        if not 1 <= int(port or 0) <= 65535:
            issues.append(Issue(("SSH", "Port"), pattern_message(("SSH", "Port"), port)))
    return issues


# ---------------------------------------------------------------- normalising


def _normalise_resources(resources: dict[str, Any]) -> dict[str, Any]:
    out = dict(resources)
    if "Runtime" in out:
        out["Runtime"] = parse_runtime(out["Runtime"])
    if "MemoryPerNode" in out:
        out["MemoryPerNode"] = parse_memory(out["MemoryPerNode"])
    for key, value in out.items():
        if isinstance(value, float) and value.is_integer():  # JSON Schema counts 2.0 as integer
            out[key] = int(value)
    return out


def _normalise_environment(environment: dict[str, Any]) -> dict[str, Any]:
    """One shape per key, so backends need not handle Mantik's alternatives."""
    out = copy.deepcopy(environment)
    for key in _COMMAND_KEYS:
        if out.get(key) is not None:
            value = out[key]
            out[key] = [value] if isinstance(value, str) else [_env_str(c) for c in value]
    apptainer = out.get("Apptainer")
    if isinstance(apptainer, dict):
        apptainer["Type"] = str(apptainer.get("Type") or "local").lower()
        if isinstance(apptainer.get("Options"), str):
            apptainer["Options"] = [apptainer["Options"]]
    if isinstance(out.get("Python"), dict):
        out["Python"] = out["Python"]["Path"]
    if isinstance(out.get("Variables"), dict):
        out["Variables"] = {k: _env_str(v) for k, v in out["Variables"].items()}
    return out


def _env_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
