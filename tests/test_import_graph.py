"""The package's layers, checked on its import graph (static: ``ast``, no import runs).

    core/  ←  backends/  ←  engine/  ←  faces (handlers/, app, api, cli, magics, widget, …)

Dependencies point down only:

* ``core`` imports nothing of the package outside ``core`` (stdlib and third-party only);
* ``backends`` imports nothing from ``engine`` or a face, nor tornado/IPython/the server;
* ``engine`` imports nothing from a face.

Every import counts, also one inside a function or under ``TYPE_CHECKING``: a lazy import
is still a dependency.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jupyterlab_hpcml

PACKAGE = "jupyterlab_hpcml"
ROOT = Path(jupyterlab_hpcml.__file__).parent
LAYERS = ("core", "backends", "engine")
# Top-level modules below the engine that any layer may use (no face behind them).
SHARED = ("_version", "settings")
# Third-party packages of the faces (the server, kernels, widgets).
FACE_LIBRARIES = ("tornado", "IPython", "ipykernel", "ipywidgets", "jupyter_server")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    line: int
    target: str  # the imported module, absolute and dotted


def module_name(path: Path, root: Path, package: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def imports_of(path: Path, root: Path, package: str) -> Iterator[Import]:
    """Every module ``path`` imports, absolute. ``from X import name`` yields ``X.name``
    when that is a module of the package (``from .. import engine``), else ``X``."""
    name = module_name(path, root, package)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                rel = sub.split(".")[1:]
                if sub.startswith(package + ".") and (
                    root.joinpath(*rel).with_suffix(".py").exists() or root.joinpath(*rel).is_dir()
                ):
                    yield Import(name, node.lineno, sub)
                else:
                    yield Import(name, node.lineno, target)


def part_of(module: str, package: str) -> str:
    """The layer of a module of the package: core/backends/engine, a shared helper, or
    "face" (handlers/, app, api, cli, magics, widget, the package's own __init__ …)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "face"  # the package's __init__ reaches the app and the magics
    top = parts[1]
    return top if top in LAYERS or top in SHARED else "face"


def problem(imp: Import, package: str) -> str | None:
    """Why ``imp`` breaks the layering, or None."""
    src = part_of(imp.module, package)
    library = imp.target.split(".")[0]
    if library != package:
        if src in ("core", "backends") and library in FACE_LIBRARIES:
            return f"{src} must not import {library}"
        return None
    dst = part_of(imp.target, package)
    if src == "core" and dst != "core":
        return f"core must import nothing of the package outside core (got {dst})"
    if src == "backends" and dst in ("engine", "face"):
        return f"backends must not import {'the engine' if dst == 'engine' else 'a face'}"
    if src == "engine" and dst == "face":
        return "the engine must not import a face"
    return None


def violations(root: Path, package: str) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        if "labextension" in path.parts:
            continue
        for imp in imports_of(path, root, package):
            why = problem(imp, package)
            if why:
                where = f"{path.relative_to(root.parent)}:{imp.line}"
                out.append(f"{where}: imports {imp.target}: {why}")
    return out


def test_layers_depend_downwards_only() -> None:
    found = violations(ROOT, PACKAGE)
    assert not found, "import graph breaks the layering:\n" + "\n".join(found)


def test_every_layer_is_there() -> None:
    # A renamed layer would make the check above vacuous.
    for layer in LAYERS:
        assert (ROOT / layer / "__init__.py").is_file(), layer
    assert any(part_of(m, PACKAGE) == "backends" for m in
               (module_name(p, ROOT, PACKAGE) for p in ROOT.rglob("*.py")))


def _tree(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "pkg"
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for d in [pkg, *(p for p in pkg.rglob("*") if p.is_dir())]:
        (d / "__init__.py").touch()
    return pkg


def test_the_check_finds_each_kind_of_violation(tmp_path: Path) -> None:
    pkg = _tree(tmp_path, {
        "core/a.py": "from ..engine import models\n",  # relative, a module by name
        "core/b.py": "def f():\n    import tornado.web\n",  # lazy, a face library
        "backends/c.py": "from ..engine.models import RunRecord\n",
        "backends/ssh/d.py": "from ... import cli\n",  # two levels up, a face module
        "backends/e.py": "import pkg.handlers.runs\n",  # absolute
        "backends/f.py": "from IPython import get_ipython\n",
        "engine/g.py": "from ..widget import show\n",
        "engine/models.py": "from ..backends.base import Backend\nfrom ..core import states\n",
        "backends/ok.py": ("from ..core.job import JobRef\nfrom .. import settings\n"
                           "import asyncssh\n"),
        "backends/attr.py": "from .. import __version__\n",  # the package's __init__ is a face
        "handlers/runs.py": "from ..engine import models\n",
        "widget.py": "from .engine import models\n",
        "cli.py": "",
        "settings.py": "",
    })
    found = violations(pkg, "pkg")
    where = sorted(line.split(":")[0] for line in found)
    assert where == sorted([
        "pkg/core/a.py", "pkg/core/b.py", "pkg/backends/c.py", "pkg/backends/ssh/d.py",
        "pkg/backends/e.py", "pkg/backends/f.py", "pkg/engine/g.py", "pkg/backends/attr.py",
    ]), "\n".join(found)
