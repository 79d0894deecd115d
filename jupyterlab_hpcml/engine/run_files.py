"""A run's files read through its backend: the same code for local and remote run dirs."""
from __future__ import annotations

import posixpath
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from ..backends.base import Backend
from ..core.errors import NotFound
from ..core.files import FileInfo
from . import yamlio
from .models import RunRecord

READ_BYTES = 1 << 20  # per backend.read call


async def list_tree(backend: Backend[Any], run: RunRecord, relpath: str) -> list[FileInfo]:
    """Files (not directories) below ``relpath``, paths relative to it; none if it is missing."""
    try:
        infos = await backend.list_files(run.job_ref(), relpath)
    except (NotFound, FileNotFoundError):
        return []
    return [
        FileInfo(path=posixpath.normpath(i.path).lstrip("/"), is_dir=False,
                 size=i.size, mtime=i.mtime)
        for i in infos
        if not i.is_dir
    ]


async def read_text(
    backend: Backend[Any], run: RunRecord, relpath: str, info: FileInfo
) -> str | None:
    """A small file's text; None when it changed size while listed (caught mid-write)."""
    data = b""
    while True:
        chunk = await backend.read(run.job_ref(), relpath, len(data), READ_BYTES)
        if chunk.size is None:
            return None
        data += chunk.data
        if not chunk.data or chunk.next_offset >= chunk.size:
            break
    if info.size is not None and len(data) != info.size:
        return None
    return data.decode("utf-8", errors="replace")


def yaml_dict(text: str | None) -> Mapping[str, Any] | None:
    if not text:
        return None
    try:
        data = yamlio.safe_load(text)
    except Exception:  # noqa: BLE001 - a half-written or foreign file
        return None
    return data if isinstance(data, dict) else None


def is_safe_relpath(path: str) -> bool:
    rel = PurePosixPath(path)
    return not rel.is_absolute() and ".." not in rel.parts
