"""Checking a project before anything is submitted (``hpcml validate``): its MLproject, its
backend configs (or the one given) and, when asked for, an entry point's parameters."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import Problem, UserInputError
from . import config as config_mod
from . import config_discovery
from . import project as project_mod


@dataclass
class Validation:
    """Every problem found (none: valid), the MLproject read and the configs checked."""

    problems: list[Problem] = field(default_factory=list)
    mlproject_file: Path | None = None
    configs: list[Path] = field(default_factory=list)


def validate(project: Path, backend_config: str | None = None, entry_point: str = "main",
             parameters: Mapping[str, str] | None = None) -> Validation:
    """Check the project at or above ``project``. ``backend_config``: only that config (a
    relative path is looked up in the project), else every config found in the project.
    The entry point's command is checked when parameters or an entry point other than
    ``main`` are given, or when the project has a ``main``."""
    out = Validation()
    spec = None
    try:
        spec = project_mod.load_project(project_mod.find_project_root(project.resolve()))
        out.mlproject_file = spec.mlproject_file
    except UserInputError as exc:
        out.problems += exc.problems
    if backend_config:
        given = Path(backend_config)
        if not given.is_absolute() and spec:
            given = spec.path / given
        out.configs = [given]
    else:
        out.configs = config_discovery.find_backend_configs(spec.path) if spec else []
    for path in out.configs:
        try:
            config_mod.load_backend_config(path.resolve())
        except UserInputError as exc:
            out.problems += exc.problems
    if spec and (parameters or entry_point != "main" or "main" in spec.entry_points):
        try:
            project_mod.resolve_command(spec, entry_point, dict(parameters or {}), None)
        except UserInputError as exc:
            out.problems += exc.problems
    return out
