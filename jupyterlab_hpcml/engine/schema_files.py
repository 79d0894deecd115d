"""The JSON schemas in ``schema/``, found where they are installed (one lookup for all)."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, cast


@functools.cache
def load(name: str) -> dict[str, Any]:
    """``schema/<name>`` (cached; do not mutate)."""
    here = Path(__file__).resolve().parent
    candidates = (
        here.parent / "schemas" / name,  # wheel: force-included by pyproject
        here.parents[1] / "schema" / name,  # editable install / source tree
    )
    for candidate in candidates:
        if candidate.is_file():
            return cast(dict[str, Any], json.loads(candidate.read_text(encoding="utf-8")))
    raise RuntimeError(f"{name} not found (looked in {', '.join(map(str, candidates))})")
