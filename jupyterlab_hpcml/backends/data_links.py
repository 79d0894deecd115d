"""A job's datasets laid out in its run directory (``ctx.data``): each dataset's job path a
symbolic link to where its data lies on the target — for the backends whose job script
does it as its first step, in the run directory (FirecREST: no login-node shell)."""
from __future__ import annotations

import shlex
from collections.abc import Sequence

from ..core.errors import Problem, UserInputError
from ..core.files import META_DIR, run_relpath
from ..core.job import DataStage


def data_path(stage: DataStage) -> str:
    """The dataset's job path, checked: inside the run directory, not in its bookkeeping."""
    rel = run_relpath(stage.path, f"the path of dataset {stage.name!r}")
    if not rel or rel.split("/")[0] == META_DIR:
        raise UserInputError(Problem(
            f"the path of dataset {stage.name!r} must name a place in the run directory "
            f"outside {META_DIR}/: {stage.path!r}"))
    return rel


def data_links_command(stages: Sequence[DataStage], run_dir: str | None = None,
                       exit_code: int = 1) -> str:
    """bash, run in the run directory (or anywhere, given ``run_dir``): each stage's path
    made a link to its location (parent folders made). Exits ``exit_code`` with a message
    naming the dataset when its data is gone or the code has a folder at its path. The link
    is made beside its place and renamed over it: tasks of an array sharing the directory
    never see it missing."""
    q = shlex.quote
    lines = []
    for stage in stages:
        rel, location = data_path(stage), stage.location
        if run_dir:
            rel = f"{run_dir.rstrip('/')}/{rel}"
        gone = q(f"hpcml: dataset {stage.name} is no longer at {location} on the cluster")
        taken = q(f"hpcml: the code already has a folder where dataset {stage.name} goes: {rel}")
        tmp = q(f"{rel}.hpcml-link") + '"$$"'
        lines.append(
            f"{{ [ -e {q(location)} ] || {{ echo {gone} >&2; exit {exit_code}; }}; "
            f"[ -L {q(rel)} ] || [ ! -d {q(rel)} ] || {{ echo {taken} >&2; exit {exit_code}; }}; "
            f"mkdir -p -- {q(rel.rpartition('/')[0] or '.')} && "
            f"ln -sfn -- {q(location)} {tmp} && mv -fT -- {tmp} {q(rel)}; }}")
    return " && ".join(lines) or ":"
