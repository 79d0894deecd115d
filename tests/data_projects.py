"""A project with a 200-file dataset folder whose job prints what it sees, for the data
tests of every backend (test_data_*.py)."""
from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
import time
from pathlib import Path
from typing import Any

from jupyterlab_hpcml.core.job import DataFile, DataVersion
from jupyterlab_hpcml.core.states import RunState
from jupyterlab_hpcml.engine.dataset_versions import ListedFile, listing_digest
from jupyterlab_hpcml.engine.requests import SubmitRequest
from jupyterlab_hpcml.engine.service import Engine

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


def write_version(root: Path, name: str, files: dict[str, bytes],
                  single: bool = False) -> DataVersion:
    """Write ``files`` under ``root`` and describe them as a version to stage (a backend's
    data tests call ``stage_data`` with it)."""
    listed = []
    for rel, data in sorted(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        listed.append(DataFile(rel, len(data), hashlib.sha256(data).hexdigest(), str(path)))
    digest = listing_digest([ListedFile(f.relpath, f.size, f.sha256) for f in listed])
    return DataVersion(name, digest, tuple(listed), single_file=single)


def archive(files: dict[str, bytes]) -> bytes:
    """A .tar.gz of ``files``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def add_remote_sources(project: Path, www: Path, url: str, s3_client: Any) -> None:
    """Datasets ``web`` (an archive on the HTTPS server at ``url``, serving ``www``) and
    ``bucket`` (an S3 prefix), and a job printing a file of each."""
    (www / "set.tar.gz").write_bytes(archive({"sub/b.csv": b"3,4\n"}))
    s3_client.create_bucket(Bucket="bucket")
    s3_client.put_object(Bucket="bucket", Key="pre/x.txt", Body=b"x")
    (project / "datasets.yaml").write_text(
        f"datasets:\n  web:\n    source: {url}/set.tar.gz\n"
        "  bucket:\n    source: s3://bucket/pre\n")
    (project / "read.py").write_text(
        "import os\nprint('web', open('data/web/sub/b.csv').read().strip())\n"
        "print('bucket', open(os.environ['HPCML_DATA_BUCKET'] + '/x.txt').read())\n")


async def run_to_end(engine: Engine, project: Path, *, timeout: float = 60,
                     **req: Any) -> tuple[str, dict[str, str]]:
    """Submit a run of ``project``; its id once FINISHED, and what its job printed."""
    run = await engine.submit(SubmitRequest(project=str(project), **req))
    return await wait_seen(engine, run.id, timeout)


async def wait_seen(engine: Engine, run_id: str, timeout: float = 60
                    ) -> tuple[str, dict[str, str]]:
    """The run's id once FINISHED, and what its job printed."""
    run = await engine.current(run_id)
    deadline = time.monotonic() + timeout
    while not run.state.terminal and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        run = await engine.current(run.id)
    assert run.state == RunState.FINISHED, (run.state, run.state_history)
    return run.id, parse_output((await engine.read_log_all(run.id, "stdout")).data)
