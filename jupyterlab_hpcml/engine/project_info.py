"""What the lab shows of a project: entry points with parameter schemas, and every
backend config found in it (with its problems, if invalid)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.errors import UserInputError
from . import config as config_mod
from . import config_discovery, paths
from . import project as project_mod


def describe_configs(project_dir: Path, root: Path) -> list[dict[str, Any]]:
    """Each backend config found in the project, with its problems if it is invalid.

    A config that links out of ``root`` (the server's root) is listed with that
    problem and is not read: its content is none of the lab's business.
    """
    root_real = paths.real(root)
    out = []
    for path in config_discovery.find_backend_configs(project_dir):
        entry: dict[str, Any] = {"path": path.relative_to(project_dir).as_posix(),
                                 "kind": None, "connection": None, "config": None}
        if not paths.is_inside(root_real, paths.real(path)):
            entry["problems"] = [{"message": "links outside the server's root; not read",
                                  "file": entry["path"], "line": None, "key": None}]
            out.append(entry)
            continue
        try:
            cfg = config_mod.load_backend_config(path)
            entry.update(kind=cfg.kind, connection=cfg.connection_name, config=cfg.redacted(),
                         problems=[])
        except UserInputError as exc:
            entry.update(problems=[p.to_dict() for p in exc.problems])
        out.append(entry)
    return out


def describe_project(project_dir: Path, root: Path) -> dict[str, Any]:
    spec = project_mod.load_project(project_dir)
    return {**spec.to_dict(), "backend_configs": describe_configs(project_dir, root)}
