"""A project with a 200-file dataset folder whose job prints what it sees, for the data
tests of every backend (test_data_*.py)."""
from __future__ import annotations

import hashlib
from pathlib import Path

# The job digests what it finds at the declared path and through the variable.
READER = '''
import hashlib, os, sys
def digest(root):
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            h.update(os.path.relpath(path, root).encode() + b"\\0")
            h.update(open(path, "rb").read())
    return h.hexdigest()
print("declared", digest("data/digits"))
print("env", digest(os.environ["HPCML_DATA_DIGITS_CSV"]))
print("abs", os.path.isabs(os.environ["HPCML_DATA_DIGITS_CSV"]))
'''


def folder_digest(root: Path) -> str:
    """What READER prints for ``root``."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def add_dataset(root: Path, files: int = 200, salt: str = "") -> Path:
    """A ``digits-csv`` dataset (``files`` files, some in a subfolder) in the project at
    ``root`` (its MLproject's ``main`` runs READER); the data folder."""
    data = root / "data" / "digits"
    (data / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(files):
        folder = data / ("sub" if i % 10 == 0 else "")
        (folder / f"part-{i:03d}.csv").write_text(f"{salt}{i}," + "7," * (i + 1) + "\n")
    (root / "read.py").write_text(READER)
    (root / "datasets.yaml").write_text("datasets:\n  digits-csv:\n    source: data/digits\n")
    return data


def parse_output(text: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
