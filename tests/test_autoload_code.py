"""The lab's autoload snippet (TypeScript) is the one the magics module documents."""
from __future__ import annotations

import re
from pathlib import Path

from jupyterlab_hpcml.magics import AUTOLOAD_CODE


def test_frontend_snippet_matches_the_python_one() -> None:
    ts = (Path(__file__).parents[1] / "src" / "kernels" / "sessions.ts").read_text()
    body = ts[ts.index("AUTOLOAD_CODE ="):ts.index(";", ts.index("AUTOLOAD_CODE ="))]
    pieces = re.findall(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", body)
    text = "".join(a or b for a, b in pieces).encode().decode("unicode_escape")
    assert text == AUTOLOAD_CODE
