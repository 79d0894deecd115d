"""MLflow projects: find and load ``MLproject``, describe entry points, resolve commands.

Parsing and command building are MLflow's own (``mlflow.projects._project_spec``),
so a project behaves here as under ``mlflow run``: same file lookup, same
``{param}`` substitution, same shell quoting, same ``uri`` handling and downloads of
remote ``path`` values (a relative ``path`` stays relative: see ``resolve_command``).
What this module adds is validation that reports every problem at once, with
the file, line and key, before anything is submitted.

MLflow is imported inside functions only: the server must start fast.
"""
from __future__ import annotations

import copy
import difflib
import math
import os
import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..core.errors import Problem, UserInputError
from . import paths, yamlio
from .filecache import StatCache
from .mlflow_import import load_mlflow

ParamType = Literal["string", "float", "int", "path", "uri"]
PARAM_TYPES: tuple[str, ...] = ("string", "float", "int", "path", "uri")
ENV_KEYS: tuple[str, ...] = ("python_env", "conda_env", "docker_env")
# Files MLflow picks up as the environment even when MLproject does not name them.
IMPLICIT_ENV_FILES: tuple[tuple[str, str], ...] = (
    ("python_env", "python_env.yaml"),
    ("conda_env", "conda.yaml"),
)
_ENV_TAIL = "it is not built — the backend config's Environment decides the job environment"

_INT_RE = re.compile(r"[+-]?\d+")
_TYPE_WORDS = {
    "int": "an int",
    "float": "a float",
    "string": "a string",
    "path": "a path",
    "uri": "a URI",
}


# ---------------------------------------------------------------------------
# Specs


@dataclass
class ParameterSpec:
    name: str
    type: str
    default: str | None  # None = required

    @property
    def required(self) -> bool:
        return self.default is None

    def json_schema(self) -> dict[str, Any]:
        prop: dict[str, Any] = {"title": self.name, "x-mlflow-type": self.type}
        prop.update(_SCHEMA_BY_TYPE.get(self.type, {"type": "string"}))
        default = _typed_default(self.type, self.default)
        if default is not None:
            prop["default"] = default
        return prop

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "required": self.required,
        }


_SCHEMA_BY_TYPE: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "float": {"type": "number"},
    "int": {"type": "integer"},
    "path": {
        "type": "string",
        "format": "path",
        "description": "A file or directory (relative to the project, or absolute) "
        "or a URI that is downloaded before the run",
    },
    "uri": {
        "type": "string",
        "format": "uri",
        "description": "A URI with a scheme (s3://…, runs:/…, models:/…, file:///…), "
        "passed to the program as is",
    },
}


def _typed_default(ptype: str, default: str | None) -> Any:
    """The default as the JSON type the form expects (None when there is none)."""
    if default is None:
        return None
    if ptype == "int":
        return int(default)
    if ptype == "float":
        value = float(default)
        return value if math.isfinite(value) else None  # JSON has no inf/nan
    return default


@dataclass
class EntryPointSpec:
    name: str
    command: str
    parameters: list[ParameterSpec]

    def parameter(self, name: str) -> ParameterSpec | None:
        return next((p for p in self.parameters if p.name == name), None)

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema of the parameter form: one typed property per parameter."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.name,
            "description": f"Command: {self.command}",
            "type": "object",
            "properties": {p.name: p.json_schema() for p in self.parameters},
            "required": [p.name for p in self.parameters if p.required],
            "additionalProperties": False,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "command": self.command,
            "parameters": [p.to_dict() for p in self.parameters],
            "json_schema": self.json_schema(),
        }


@dataclass
class ProjectSpec:
    path: Path
    name: str
    mlproject_file: Path | None
    entry_points: dict[str, EntryPointSpec] = field(default_factory=dict)
    env_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "mlproject_file": str(self.mlproject_file) if self.mlproject_file else None,
            "entry_points": [ep.to_dict() for ep in self.entry_points.values()],
            "env_note": self.env_note,
        }


# ---------------------------------------------------------------------------
# Finding the project


def _mlproject_files(directory: Path) -> list[Path]:
    """``MLproject`` files in ``directory``, matched case-insensitively as MLflow does."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(directory / n for n in names if n.lower() == "mlproject")


def find_project_root(path: Path, root: Path | None = None) -> Path:
    """The nearest folder at or above ``path`` that contains an ``MLproject`` file.

    With ``root`` (the server's root, for the lab) ``path`` must lie inside it, the
    search stops there and an MLproject linking out of it is refused. The CLI and the
    Python API pass none: they act for the user on their own machine.
    """
    root_real = paths.real(root) if root is not None else None
    if root_real is not None:
        path = paths.confine(root_real, path, "project", key="project")
    path = Path(path).expanduser()
    if not path.exists():
        raise UserInputError(Problem(f"no such file or directory: {path}", file=str(path)))
    start = path.resolve()
    if not start.is_dir():
        start = start.parent
    for folder in (start, *start.parents):
        if found := _mlproject_files(folder):
            if root_real is not None and not all(
                paths.is_inside(root_real, paths.real(f)) for f in found
            ):
                raise UserInputError(Problem(
                    "the MLproject file links outside the server's root", key="project"))
            return folder
        if folder == root_real:
            break
    raise UserInputError(
        Problem(
            f"no MLproject file in {start} or any folder above it"
            + (" inside the server's root" if root_real is not None else ""),
            file=str(path),
        )
    )


def _the_mlproject(project_dir: Path) -> Path:
    found = [f for f in _mlproject_files(project_dir) if f.is_file()]
    if not found:
        raise UserInputError(Problem(f"no MLproject file in {project_dir}", file=str(project_dir)))
    if len(found) > 1:
        # MLflow would take whichever os.listdir returns first: ambiguous.
        names = ", ".join(f.name for f in found)
        raise UserInputError(
            Problem(f"several MLproject files ({names}); keep one", file=str(found[0]))
        )
    return found[0]


# ---------------------------------------------------------------------------
# YAML with line numbers


class _Lines:
    """Finds the line of a key path in the composed YAML node tree."""

    def __init__(self, root: yaml.Node | None):
        self.root = root

    def line(self, *keys: Any) -> int | None:
        """1-based line of the deepest key of ``keys`` that exists."""
        node, line = self.root, None
        for key in keys:
            if not isinstance(node, yaml.MappingNode):
                break
            pair = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if pair is None:
                break
            line = pair[0].start_mark.line + 1
            node = pair[1]
        if line is None and self.root is not None:
            line = self.root.start_mark.line + 1
        return line


def _duplicate_keys(
    node: yaml.Node | None, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, int]]:
    """(dotted key, line) for every key given twice in one mapping: YAML keeps the last silently."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            key = str(k.value)
            if key in seen:
                yield ".".join((*path, key)), k.start_mark.line + 1
            seen.add(key)
            yield from _duplicate_keys(v, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(item, path)


def _parse_yaml(file: Path) -> tuple[Any, _Lines]:
    try:
        text = file.read_text(encoding="utf-8")
        tree = yamlio.compose(text)
        data = yamlio.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        detail = getattr(exc, "problem", None) or str(exc)
        raise UserInputError(
            Problem(
                f"invalid YAML: {detail}",
                file=str(file),
                line=mark.line + 1 if mark is not None else None,
            )
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(Problem(f"cannot read MLproject: {exc}", file=str(file))) from None
    lines = _Lines(tree)
    dups = [
        Problem(f"duplicate key '{key.rsplit('.', 1)[-1]}'", file=str(file), line=line, key=key)
        for key, line in _duplicate_keys(tree)
    ]
    if dups:
        raise UserInputError(dups)
    return data, lines


# ---------------------------------------------------------------------------
# Validation of the MLproject structure (before MLflow sees it: its loader
# assumes a well-formed file and fails with AttributeError otherwise)


class _Checker:
    def __init__(self, file: Path, lines: _Lines):
        self.file = file
        self.lines = lines
        self.problems: list[Problem] = []

    def add(self, message: str, *keys: Any) -> None:
        self.problems.append(
            Problem(
                message,
                file=str(self.file),
                line=self.lines.line(*keys),
                key=".".join(str(k) for k in keys) or None,
            )
        )

    def check(self, data: Any) -> None:
        if not isinstance(data, dict):
            what = "empty" if data is None else f"a {type(data).__name__}"
            self.add(f"MLproject must be a mapping (name, entry_points, …), but it is {what}")
            return
        if "name" in data and not isinstance(data["name"], (str, type(None))):
            self.add("'name' must be a string", "name")
        eps = data.get("entry_points")
        if "entry_points" not in data:
            self.add("MLproject has no 'entry_points'")
        elif not isinstance(eps, dict):
            self.add("'entry_points' must be a mapping of entry point names to "
                     "{command, parameters}", "entry_points")
        elif not eps:
            self.add("'entry_points' is empty; declare at least one entry point", "entry_points")
        else:
            for name, ep in eps.items():
                self.check_entry_point(name, ep)
        self.check_env(data)

    def check_env(self, data: dict[str, Any]) -> None:
        # MLflow's loader calls .get() on these without checking their type.
        for key in ENV_KEYS:
            value = data.get(key)
            if key == "docker_env" and value is not None and not isinstance(value, dict):
                self.add("'docker_env' must be a mapping with an 'image'", key)
            elif key != "docker_env" and value is not None and not isinstance(value, str):
                self.add(f"'{key}' must be the name of a file in the project", key)

    def check_entry_point(self, name: Any, ep: Any) -> None:
        keys = ("entry_points", name)
        if not isinstance(name, str):
            self.add(f"entry point name {name!r} must be a string", *keys)
            return
        if not isinstance(ep, dict):
            self.add(f"entry point '{name}' must be a mapping with 'command' and 'parameters'",
                     *keys)
            return
        params = ep.get("parameters", {})
        if not isinstance(params, dict):
            self.add(f"'parameters' of entry point '{name}' must be a mapping", *keys, "parameters")
            params = {}
        for pname, pdef in params.items():
            self.check_parameter(name, pname, pdef)
        command = ep.get("command")
        if "command" not in ep:
            self.add(f"entry point '{name}' has no 'command'", *keys)
        elif not isinstance(command, str) or not command.strip():
            self.add(f"'command' of entry point '{name}' must be a non-empty string",
                     *keys, "command")
        else:
            self.check_command(name, command, [p for p in params if isinstance(p, str)])

    def check_parameter(self, ep: str, name: Any, pdef: Any) -> None:
        keys = ("entry_points", ep, "parameters", name)
        if not isinstance(name, str) or not name.isidentifier():
            self.add(f"parameter name {name!r} must be a name like 'learning_rate'", *keys)
            return
        if isinstance(pdef, str):
            ptype, default, has_default = pdef, None, False
            type_keys: tuple[Any, ...] = keys
        elif isinstance(pdef, dict):
            ptype = pdef.get("type", "string")
            default, has_default = pdef.get("default"), "default" in pdef
            type_keys = (*keys, "type")
        else:
            self.add(
                f"parameter '{name}' must be a type name (e.g. 'float') or a mapping "
                "with 'type' and 'default'",
                *keys,
            )
            return
        if ptype not in PARAM_TYPES:
            self.add(
                f"parameter '{name}' has unknown type {ptype!r}; use one of: "
                + ", ".join(PARAM_TYPES),
                *type_keys,
            )
            return
        if has_default and default is not None:
            error = _default_error(ptype, default)
            if error:
                self.add(f"default of parameter '{name}' {error}", *keys, "default")

    def check_command(self, ep: str, command: str, declared: list[str]) -> None:
        keys = ("entry_points", ep, "command")
        try:
            fields = list(string.Formatter().parse(command))
        except ValueError as exc:
            self.add(f"command of entry point '{ep}' is not a valid template: {exc} "
                     "(write {{ and }} for literal braces)", *keys)
            return
        for _, fname, spec, conversion in fields:
            if fname is None:
                continue
            if fname not in declared:
                self.add(
                    f"command of entry point '{ep}' uses {{{fname}}}, which is not a declared "
                    "parameter (write {{ and }} for literal braces)",
                    *keys,
                )
            elif spec or conversion:
                # A conversion such as !r would wrap the already shell-quoted value
                # in new quotes and undo MLflow's quoting.
                self.add(f"command of entry point '{ep}' must use plain {{{fname}}} "
                         "without conversions or format specs", *keys)


def _default_error(ptype: str, default: Any) -> str | None:
    """Why ``default`` does not fit ``ptype`` (None when it does)."""
    if isinstance(default, (list, dict)):
        return f"must be a single value, not a {type(default).__name__}"
    if ptype == "string":
        return None
    if ptype in ("path", "uri") and not isinstance(default, str):
        return f"must be {_TYPE_WORDS[ptype]} string, got {default!r}"
    error = _value_error(ptype, default)
    return None if error is None else f"must be {_TYPE_WORDS[ptype]}, got {_show(default)}"


# ---------------------------------------------------------------------------
# Values


def _show(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)


def _value_error(ptype: str, value: Any) -> str | None:
    """Why ``value`` is not a valid ``ptype`` (None when it is). Bools are never numbers."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        if ptype == "string" and isinstance(value, bool):
            return None
        return "wrong type"
    if ptype == "int":
        if isinstance(value, float):
            return None if value.is_integer() else "not an int"
        if isinstance(value, str) and not _INT_RE.fullmatch(value):
            return "not an int"
    elif ptype == "float" and isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return "not a float"
        if value != value.strip() or "_" in value:
            return "not a float"
    elif ptype == "uri" and not _is_uri(str(value)):
        return "not a URI"
    return None


def _is_uri(value: str) -> bool:
    load_mlflow()
    from mlflow.utils.data_utils import is_uri

    return bool(value) and is_uri(value)


def _normalise(ptype: str, value: Any) -> str:
    """The string MLflow substitutes: ints from 3.0 become '3'; everything else str()."""
    if ptype == "int" and isinstance(value, float):
        return str(int(value))
    return str(value)


def _closest_first(name: str, choices: list[str]) -> list[str]:
    """``choices`` ordered by similarity to ``name`` (stable for ties)."""
    ratio = {c: difflib.SequenceMatcher(None, name, c).ratio() for c in choices}
    return sorted(choices, key=lambda c: -ratio[c])


def _quoted_list(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names) if names else "(none)"


# ---------------------------------------------------------------------------
# Loading


_loaded: StatCache[ProjectSpec] = StatCache()


def load_project(project_dir: Path) -> ProjectSpec:
    """Load and validate the ``MLproject`` of ``project_dir``; every problem is reported."""
    project_dir = Path(project_dir).expanduser().resolve()
    if not project_dir.is_dir():
        raise UserInputError(Problem(f"not a folder: {project_dir}", file=str(project_dir)))
    file = _the_mlproject(project_dir)
    # The folder's own stat too: environment files appearing in it change the env note.
    spec = _loaded.get((file, project_dir), lambda: _load_project_file(project_dir, file))
    return copy.deepcopy(spec)


def _load_project_file(project_dir: Path, file: Path) -> ProjectSpec:
    data, lines = _parse_yaml(file)
    checker = _Checker(file, lines)
    checker.check(data)
    mlflow_project = None
    if isinstance(data, dict):
        mlflow_project = _load_with_mlflow(project_dir, file, checker)
    if checker.problems:
        raise UserInputError(checker.problems)
    return _to_spec(project_dir, file, data, mlflow_project)


def _load_with_mlflow(project_dir: Path, file: Path, checker: _Checker) -> Any:
    """MLflow's own loader; its complaints become problems of the file."""
    load_mlflow()
    from mlflow.exceptions import MlflowException
    from mlflow.projects import _project_spec

    try:
        return _project_spec.load_project(str(project_dir))
    except MlflowException as exc:
        checker.problems.append(Problem(str(exc.message), file=str(file)))
    except Exception:
        # A malformed file MLflow trips over; our checks already explain it.
        if not checker.problems:
            raise
    return None


def _to_spec(project_dir: Path, file: Path, data: dict[str, Any],
             mlflow_project: Any) -> ProjectSpec:
    entry_points: dict[str, EntryPointSpec] = {}
    for name, ep in mlflow_project._entry_points.items():
        params = [
            ParameterSpec(
                name=p.name,
                type=p.type,
                default=None if p.default is None else _normalise(p.type, p.default),
            )
            for p in ep.parameters.values()
        ]
        entry_points[name] = EntryPointSpec(name=name, command=ep.command, parameters=params)
    return ProjectSpec(
        path=project_dir,
        name=mlflow_project.name or project_dir.name,
        mlproject_file=file,
        entry_points=entry_points,
        env_note=_env_note(project_dir, data),
    )


def _env_note(project_dir: Path, data: dict[str, Any]) -> str | None:
    """MLflow would build the declared environment; we do not, and say so."""
    for key in ENV_KEYS:
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, dict):  # docker_env: {image: …}
            what = f"{key} (image '{value.get('image')}')"
        else:
            what = f"{key} '{value}'"
        return f"MLproject declares {what}; {_ENV_TAIL}"
    for key, filename in IMPLICIT_ENV_FILES:
        if (project_dir / filename).is_file():
            return f"the project has {filename}, which MLflow uses as its {key}; {_ENV_TAIL}"
    return None


# ---------------------------------------------------------------------------
# Resolving a command


def resolve_command(
    project: ProjectSpec,
    entry_point: str,
    parameters: Mapping[str, Any],
    storage_dir: Path | None,
) -> tuple[str, dict[str, str]]:
    """The shell command for ``entry_point`` and the full parameter values as strings.

    Values are checked against their declared types first (all problems at once);
    MLflow's ``EntryPoint.compute_command`` then substitutes and shell-quotes them.
    A relative local ``path`` value names a file of the project and stays relative in
    the command: every backend starts the job in the run's working copy of the project,
    so it resolves there, wherever the job runs (MLflow would make it absolute against
    the current directory, and this server's project folder does not exist on a
    cluster). Remote ``path`` URIs are downloaded by MLflow into
    ``storage_dir/param_<i>`` (``storage_dir`` must exist). The returned values are the
    ones given (not downloaded paths), as MLflow logs them.
    """
    ep = _entry_point(project, entry_point)
    values = _check_values(project, ep, parameters)
    load_mlflow()
    from mlflow.exceptions import MlflowException
    from mlflow.projects._project_spec import EntryPoint

    remote = _remote_paths(ep, values)
    # Only remote `path` values are MLflow's to handle (download); local ones are
    # substituted as they are, checked above.
    mlflow_ep = EntryPoint(
        ep.name,
        {p.name: {"type": "string" if p.type == "path" and p.name not in remote else p.type,
                  "default": p.default} for p in ep.parameters},
        ep.command,
    )
    if storage_dir and remote:
        Path(storage_dir).mkdir(parents=True, exist_ok=True)  # MLflow makes only param_<i>/
    try:
        command = mlflow_ep.compute_command(
            _job_paths(ep, values), str(storage_dir) if storage_dir else None
        )
    except (MlflowException, OSError) as exc:
        # Only fetching remote `path` values can fail here; MLflow's message may not
        # say which parameter it was fetching.
        detail = str(exc.message if isinstance(exc, MlflowException) else exc)
        if remote:
            detail = f"could not fetch path parameter {_quoted_list(remote)}: {detail}"
        key = f"parameters.{remote[0]}" if len(remote) == 1 else None
        raise UserInputError(Problem(detail, key=key)) from None
    return command, values


def _remote_paths(ep: EntryPointSpec, values: dict[str, str]) -> list[str]:
    """Names of ``path`` parameters whose value is a URI MLflow downloads."""
    return [
        p.name for p in ep.parameters
        if p.type == "path" and p.name in values and _local_path(values[p.name]) is None
    ]


def _entry_point(project: ProjectSpec, name: str) -> EntryPointSpec:
    ep = project.entry_points.get(name)
    if ep is None:
        available = _closest_first(name, list(project.entry_points))
        raise UserInputError(
            Problem(
                f"unknown entry point '{name}'; available: {_quoted_list(available)}",
                file=str(project.mlproject_file) if project.mlproject_file else None,
                key="entry_point",
            )
        )
    return ep


def _check_values(
    project: ProjectSpec, ep: EntryPointSpec, given: Mapping[str, Any]
) -> dict[str, str]:
    """Typed, complete values as strings; a None value counts as not given."""
    problems: list[Problem] = []
    declared = [p.name for p in ep.parameters]
    for name in given:
        if ep.parameter(name) is None:
            problems.append(
                Problem(
                    f"entry point '{ep.name}' has no parameter '{name}'; declared: "
                    + _quoted_list(_closest_first(name, declared)),
                    key=f"parameters.{name}",
                )
            )
    values: dict[str, str] = {}
    for p in ep.parameters:
        value = given.get(p.name)
        if value is None:
            if p.default is None:
                problems.append(
                    Problem(f"parameter '{p.name}' is required ({p.type}, no default)",
                            key=f"parameters.{p.name}")
                )
            else:
                values[p.name] = p.default
            continue
        if _value_error(p.type, value) is not None:
            problems.append(
                Problem(
                    f"parameter '{p.name}' must be {_TYPE_WORDS[p.type]}, got {_show(value)}",
                    key=f"parameters.{p.name}",
                )
            )
            continue
        values[p.name] = _normalise(p.type, value)
    problems.extend(_missing_paths(project, ep, values))
    if problems:
        raise UserInputError(problems)
    return values


def _local_path(value: str) -> str | None:
    """The local filesystem path of a ``path`` value (None for remote URIs)."""
    load_mlflow()
    from mlflow.utils.file_utils import get_local_path_or_none

    local: str | None = get_local_path_or_none(value)
    return local


def _job_paths(ep: EntryPointSpec, values: dict[str, str]) -> dict[str, str]:
    """Local ``path`` values as the job's command line has them: the local path of a
    ``file:`` URI, a relative path unchanged (the job's working directory is the run's
    copy of the project)."""
    out = dict(values)
    for p in ep.parameters:
        if p.type != "path" or p.name not in out:
            continue
        local = _local_path(out[p.name])
        if local is not None:
            out[p.name] = local
    return out


def _leaves_project(local: str) -> bool:
    """Whether a relative path points outside the project (so outside the run's copy)."""
    return not os.path.isabs(local) and os.path.normpath(local).split(os.sep)[0] == os.pardir


def _missing_paths(
    project: ProjectSpec, ep: EntryPointSpec, values: dict[str, str]
) -> list[Problem]:
    """Local ``path`` values that do not exist (MLflow would stop at the first one)."""
    problems = []
    for p in ep.parameters:
        if p.type != "path" or p.name not in values:
            continue
        local = _local_path(values[p.name])
        if local is not None and _leaves_project(local):
            problems.append(
                Problem(
                    f"parameter '{p.name}' is a path, but '{values[p.name]}' leaves the "
                    "project: a relative path names a file of the project (the job reads it "
                    "in its copy of the project); give a file elsewhere as an absolute path",
                    key=f"parameters.{p.name}",
                )
            )
        elif local is not None and not (project.path / local).exists():
            problems.append(
                Problem(
                    f"parameter '{p.name}' is a path, but '{values[p.name]}' does not exist "
                    f"(relative paths start at {project.path})",
                    key=f"parameters.{p.name}",
                )
            )
    return problems
