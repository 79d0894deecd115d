"""Log chunks by byte offset: only new bytes travel, whole UTF-8 characters only, and
the JSON answer no larger than what was asked for."""
from __future__ import annotations

from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Literal

from pydantic import BaseModel

from ..core.errors import UserInputError
from .models import RunRecord

Stream = Literal["stdout", "stderr"]
MAX_CHUNK = 4 * 1024 * 1024
INLINE_BYTES = 64 * 1024  # larger chunks are turned into answers on a worker thread


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


_BLOCK = 64 * 1024
_MAX_COST = 12  # an astral character: a surrogate pair of \uXXXX escapes


def _json_cost(text: str) -> int:
    """Bytes ``text`` takes inside a JSON string (the stdlib's ASCII-safe form: the most
    any JSON encoder takes; a control character or U+FFFD is 6, an emoji 12)."""
    return len(encode_basestring_ascii(text)) - 2


def json_prefix(text: str, budget: int) -> int:
    """How many leading characters of ``text`` fit ``budget`` bytes of JSON (one at least,
    so a reader always gets further). Encodes block by block, never much more than fits."""
    if len(text) * _MAX_COST <= budget:
        return len(text)
    pos = used = 0
    block = _BLOCK
    while block and pos < len(text):
        piece = text[pos:pos + block]
        cost = _json_cost(piece)
        if used + cost <= budget:
            pos, used = pos + len(piece), used + cost
        else:
            block //= 4  # the piece does not fit: go on in smaller pieces
    return max(pos, 1)


def to_chunk(run: RunRecord, stream: Stream, data: bytes, offset: int, size: int | None,
             budget: int | None = None) -> LogChunk:
    """The chunk for ``data`` read at ``offset``. With ``budget``, ``data`` in the JSON
    answer takes at most that many bytes (binary output grows up to 6x in JSON), and
    ``next_offset`` stops after the last byte sent, so a follower misses nothing."""
    finished = run.state.terminal and size is not None and offset + len(data) >= size
    # Hold back a split multi-byte character unless nothing more will ever come.
    keep = len(data) if finished else complete_utf8_prefix(data)
    if budget is not None and keep:
        # Invalid bytes decode to one lone surrogate each here, so a prefix of the text
        # maps back to exactly its bytes (their JSON cost is that of a U+FFFD).
        text = data[:keep].decode("utf-8", errors="surrogateescape")
        cut = json_prefix(text, budget)
        if cut < len(text):
            keep = len(text[:cut].encode("utf-8", errors="surrogateescape"))
    return LogChunk(
        stream=stream,
        data=data[:keep].decode("utf-8", errors="replace"),
        offset=offset,
        next_offset=offset + keep,
        size=size,
        running=not run.state.terminal,
    )
