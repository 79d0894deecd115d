"""Log chunks by byte offset: only new bytes travel, whole UTF-8 characters only."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from .errors import UserInputError
from .models import RunRecord

Stream = Literal["stdout", "stderr"]
MAX_CHUNK = 4 * 1024 * 1024


class LogChunk(BaseModel):
    stream: Stream
    data: str
    offset: int
    next_offset: int
    size: int | None  # bytes in the file now (None: not created yet)
    running: bool  # the run may still write more


def complete_utf8_prefix(data: bytes) -> int:
    """Length of ``data`` without a trailing, incomplete UTF-8 sequence."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte or ASCII
            need = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return len(data) if need <= back else len(data) - back
    return len(data)


def check_request(stream: str, offset: int, max_bytes: int) -> None:
    if stream not in ("stdout", "stderr"):
        raise UserInputError(f"stream must be 'stdout' or 'stderr', got {stream!r}")
    if offset < 0:
        raise UserInputError("offset must be >= 0")
    if not 0 < max_bytes <= MAX_CHUNK:
        raise UserInputError(f"max_bytes must be between 1 and {MAX_CHUNK}")


def to_chunk(run: RunRecord, stream: Stream, data: bytes, offset: int, size: int | None) -> LogChunk:
    finished = run.state.terminal and size is not None and offset + len(data) >= size
    # Hold back a split multi-byte character unless nothing more will ever come.
    keep = len(data) if finished else complete_utf8_prefix(data)
    return LogChunk(
        stream=stream,
        data=data[:keep].decode("utf-8", errors="replace"),
        offset=offset,
        next_offset=offset + keep,
        size=size,
        running=not run.state.terminal,
    )
