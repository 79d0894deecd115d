"""A project's datasets: ``datasets.yaml`` beside its MLproject, read and checked.

Each dataset has a name, a *source* — a folder or file in the project, another local
path, an ``https://`` URL, an ``s3://`` URI, or a DVC-tracked path of a git repository —
and the *path* where the job sees it (relative to its working directory; the job also gets
``HPCML_DATA_<NAME>`` with the absolute path). Problems are reported as for a backend
config: file, line, dotted key, every one at once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import jsonschema

from ..core import yamlio
from ..core.errors import Problem, UserInputError
from . import schema_files
from .config_messages import describe, dotted, line_of

FILE_NAME = "datasets.yaml"
SCHEMA_NAME = "datasets.schema.json"
ENV_PREFIX = "HPCML_DATA_"
SourceKind = Literal["project", "local", "https", "s3", "dvc"]


@dataclass(frozen=True)
class DvcSource:
    repo: str
    path: str
    rev: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """One declared dataset, checked: where it comes from and where the job sees it."""

    name: str
    kind: SourceKind
    source: str  # as written (the DVC repo for kind "dvc")
    path: str  # relative to the job's working directory, normalised
    dvc: DvcSource | None = None
    description: str | None = None

    @property
    def env_name(self) -> str:
        return env_name(self.name)

    @property
    def source_text(self) -> str:
        """Where it comes from, in one line for a run's record (DVC: repo, path, revision)."""
        if self.dvc is None:
            return self.source
        return f"dvc {self.dvc.repo} {self.dvc.path}" + (f"@{self.dvc.rev}" if self.dvc.rev else "")


def env_name(name: str) -> str:
    """``digits-csv`` → ``HPCML_DATA_DIGITS_CSV``."""
    return ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", name.upper())


def source_kind(source: str) -> SourceKind:
    if source.startswith("https://"):
        return "https"
    if source.startswith("s3://"):
        return "s3"
    return "local" if PurePosixPath(source).is_absolute() else "project"


def _job_path(text: str) -> str | None:
    """``text`` as a normalised relative path inside the working directory, else None."""
    path = PurePosixPath(text)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    if path.parts[0] == ".hpcml":  # the run's own bookkeeping
        return None
    return str(path)


def load(project_dir: Path) -> dict[str, DatasetSpec]:
    """The project's datasets by name ({} without a datasets.yaml); UserInputError listing
    every problem otherwise."""
    file = project_dir / FILE_NAME
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(Problem(f"cannot read it: {exc}", file=str(file))) from None
    try:
        data = yamlio.safe_load(text)
        root = yamlio.compose(text)
    except Exception as exc:  # noqa: BLE001 - any YAML error is the user's to fix
        raise UserInputError(Problem(f"not valid YAML: {exc}", file=str(file))) from None
    validator = jsonschema.Draft202012Validator(schema_files.load(SCHEMA_NAME))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise UserInputError([
            Problem(_message(e), file=str(file), line=line_of(root, _where(e)),
                    key=dotted(_where(e)) or None)
            for e in errors])
    specs: dict[str, DatasetSpec] = {}
    problems: list[Problem] = []
    by_env: dict[str, str] = {}
    key: tuple[str, ...]
    for name, entry in (data.get("datasets") or {}).items():
        try:
            spec = _spec(name, entry)
        except ValueError as exc:
            key = ("datasets", name, str(exc.args[1]))
            problems.append(Problem(str(exc.args[0]), file=str(file), line=line_of(root, key),
                                    key=dotted(key)))
            continue
        if spec.env_name in by_env:
            key = ("datasets", name)
            problems.append(Problem(
                f"its variable {spec.env_name} is also {by_env[spec.env_name]}'s: rename one",
                file=str(file), line=line_of(root, key), key=dotted(key)))
            continue
        by_env[spec.env_name] = name
        specs[name] = spec
    paths: dict[str, str] = {}
    for spec in specs.values():
        for other_path, other in paths.items():
            if _overlap(spec.path, other_path):
                key = ("datasets", spec.name, "path")
                problems.append(Problem(
                    f"{spec.path} overlaps {other}'s {other_path}: each dataset needs a place "
                    "of its own", file=str(file), line=line_of(root, key), key=dotted(key)))
        paths[spec.path] = spec.name
    if problems:
        raise UserInputError(problems)
    return specs


def _overlap(a: str, b: str) -> bool:
    pa, pb = PurePosixPath(a).parts, PurePosixPath(b).parts
    n = min(len(pa), len(pb))
    return pa[:n] == pb[:n]


def _spec(name: str, entry: dict[str, Any]) -> DatasetSpec:
    """One dataset from its checked entry; ValueError(message, key) for what a schema
    cannot say."""
    raw = entry["source"]
    dvc = None
    if isinstance(raw, dict):
        d = raw["dvc"]
        dvc = DvcSource(repo=d["repo"], path=d["path"], rev=d.get("rev"))
        kind: SourceKind = "dvc"
        source = dvc.repo
    else:
        source = raw
        kind = source_kind(source)
        if kind == "project" and _job_path(source) is None:
            raise ValueError(f"{source!r} leaves the project: give an absolute path for data "
                             "outside it", "source")
        if source.startswith(("http://", "ftp://")):
            raise ValueError(f"{source!r}: only https:// URLs are fetched", "source")
    if "path" in entry:
        path = _job_path(entry["path"])
        if path is None:
            raise ValueError(f"{entry['path']!r} must be a relative path inside the job's "
                             "working directory (no .., not .hpcml)", "path")
    else:
        path = _job_path(source) if kind == "project" else f"data/{name}"
        assert path is not None
    return DatasetSpec(name=name, kind=kind, source=source, path=path, dvc=dvc,
                       description=entry.get("description"))


def _where(error: jsonschema.ValidationError) -> tuple[str | int, ...]:
    """The key path of an error; a bad name's is the name's own (not its mapping's)."""
    path = tuple(error.absolute_path)
    if "propertyNames" in error.schema_path and isinstance(error.instance, str):
        return (*path, error.instance)
    return path


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown key")
    if error.validator == "pattern" and error.absolute_path and \
            list(error.absolute_path)[0] == "datasets":
        return (f"dataset name {describe(error.instance)}: a letter, then letters, digits, "
                "_ . - (at most 64)")
    if error.validator == "oneOf":
        return ("source: a path or URL (text), or {dvc: {repo, path, rev}}; got "
                f"{describe(error.instance)}")
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    return f"{error.message}"
