"""A notebook cell (any Python source) as a run of a project (``%%hpc_submit``).

The engine submits a cell run as any other run (``RunService.submit`` with a ``Cell``):
it parses the project's MLproject, takes the snapshot with the files below added (the
project on disk is not changed), reads the MLproject back from that snapshot (as for a
re-run) and runs entry point ``hpcml_cell``. This module only makes those files:

- ``hpcml_cell.py``: line 1 loads the parameters, the cell body follows from line 2 on,
  so line numbers in tracebacks are the cell's;
- ``hpcml_params.py``: reads ``--name value`` arguments into ``params``, typed;
- ``MLproject``: the project's, with the entry point ``hpcml_cell`` added.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import Problem, UserInputError
from ..core.snapshots import Snapshot
from . import snapshot as snapshot_mod
from .project import ProjectSpec
from .requests import SubmitRequest

ENTRY_POINT = "hpcml_cell"
SCRIPT = "hpcml_cell.py"
PARAMS_MODULE = "hpcml_params"

ParamValue = str | int | float


@dataclass(frozen=True)
class Cell:
    """The source of a cell run; ``header`` (the ``%%hpc_submit`` line) is kept as a
    comment on the script's first line."""

    code: str
    header: str = ""


_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


def param_type(value: ParamValue) -> str:
    """The MLflow type of a cell parameter: int and float when the value looks like one."""
    if isinstance(value, bool):
        return "string"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if _INT_RE.fullmatch(value):
        return "int"
    if _FLOAT_RE.fullmatch(value):
        return "float"
    return "string"


_PARAMS_MODULE = '''\
"""Parameters of a %%hpc_submit cell, written by jupyterlab-hpcml.

The run's command is `python hpcml_cell.py --name value ...`; this module reads those
arguments into `params` (typed as below). hpcml_cell.py starts with
`from hpcml_params import params; globals().update(params)`.
"""
import sys

TYPES = {types!r}
_CAST = {{"int": int, "float": float}}

params = {{}}
_args = sys.argv[1:]
for _i in range(0, len(_args) - 1, 2):
    _name = _args[_i][2:] if _args[_i].startswith("--") else None
    if _name in TYPES:
        params[_name] = _CAST.get(TYPES[_name], str)(_args[_i + 1])
'''


def check(cell: Cell, parameters: Mapping[str, ParamValue]) -> None:
    """Every problem of the cell and its parameter names, before anything is stored."""
    problems = [Problem(f"parameter name {name!r} must be a name like 'learning_rate'", key="-P")
                for name in parameters if not name.isidentifier()]
    try:
        compile(cell.code, SCRIPT, "exec", dont_inherit=True)
    except SyntaxError as exc:
        problems.append(Problem(
            f"the cell must be plain Python (no magics or !commands): {exc.msg} "
            f"(line {(exc.lineno or 0) + 1} of the cell)"))
    if problems:
        raise UserInputError(problems)


def values(parameters: Mapping[str, ParamValue]) -> dict[str, str]:
    """The parameter values a cell run is submitted with (its entry point's defaults too)."""
    return {name: str(value) for name, value in parameters.items()}


def cell_files(cell: Cell, parameters: Mapping[str, ParamValue],
               mlproject: Mapping[str, Any]) -> dict[str, bytes]:
    """The files a cell run adds to (or replaces in) the project's snapshot; ``mlproject``
    is the project's MLproject as parsed YAML."""
    check(cell, parameters)
    types = {name: param_type(value) for name, value in parameters.items()}
    defaults = values(parameters)
    header = " ".join(cell.header.split())
    first = (f"from {PARAMS_MODULE} import params; globals().update(params)"
             f"  # %%hpc_submit {header}".rstrip())
    code = cell.code
    script = first + "\n" + code + ("" if code.endswith("\n") else "\n")
    data = dict(mlproject)
    entry_points = dict(data.get("entry_points") or {})
    entry_points[ENTRY_POINT] = {
        "parameters": {name: {"type": t, "default": defaults[name]} for name, t in types.items()},
        "command": " ".join(["python", SCRIPT, *(f"--{name} {{{name}}}" for name in types)]),
    }
    data["entry_points"] = entry_points
    return {
        SCRIPT: script.encode(),
        f"{PARAMS_MODULE}.py": _PARAMS_MODULE.format(types=types).encode(),
        "MLproject": yaml.safe_dump(data, sort_keys=False).encode(),
    }


def files_for_project(cell: Cell, parameters: Mapping[str, ParamValue],
                      mlproject_file: Path) -> dict[str, bytes]:
    """``cell_files`` for the project whose (already validated) MLproject is this file."""
    mlproject = yaml.safe_load(mlproject_file.read_text(encoding="utf-8"))
    return cell_files(cell, parameters, mlproject)


def snapshot(cell: Cell, req: SubmitRequest, project: ProjectSpec, object_dir: Path,
             manifest_dir: Path, exclude: Sequence[str]) -> tuple[Snapshot, SubmitRequest]:
    """The project's snapshot with the cell's files, and the request of the cell run
    (entry point ``hpcml_cell``, the parameter values as given)."""
    assert project.mlproject_file is not None  # a loaded project always has one
    files = files_for_project(cell, req.parameters, project.mlproject_file)
    snap = snapshot_mod.take_snapshot(project.path, object_dir, manifest_dir, exclude,
                                      add=files, drop=[project.mlproject_file.name])
    return snap, req.model_copy(update={"project": str(project.path), "entry_point": ENTRY_POINT,
                                        "parameters": values(req.parameters)})
