"""Log chunks by byte offset: only new bytes travel, whole UTF-8 characters only, and
the JSON answer no larger than what was asked for; and the last N lines of a log (the
one implementation every face uses)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from json.encoder import encode_basestring_ascii
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
            need = (1 if byte < 0x80 else 2 if byte >> 5 == 0b110
                    else 3 if byte >> 4 == 0b1110 else 4)
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


# ---------------------------------------------------------------------- the last N lines

TAIL_STEP = 64 * 1024  # first read back from the end; each further read doubles
MAX_TAIL_BYTES = 16 * 1024 * 1024  # a tail never holds more (its first line is cut then)

# (offset, max_bytes) → (the bytes there, the file's size now or None if it does not exist)
Reader = Callable[[int, int], Awaitable[tuple[bytes, "int | None"]]]


def last_lines(text: str, n: int) -> str:
    """The last ``n`` lines of ``text``; a line ends with ``\n`` (as for ``tail -n``: a
    carriage return of a progress bar does not end one), the last may lack it."""
    if n <= 0 or not text:
        return ""
    start = _tail_start(text, "\n", n)
    return text[start:]


def _tail_start(data: str | bytes, newline: str | bytes, n: int) -> int:
    """Index where the last ``n`` lines of ``data`` begin (0 when it has no more);
    a newline as the very last character ends the last line, it starts none."""
    end = len(data) - 1 if data[-1:] == newline else len(data)
    pos = end
    for _ in range(n):
        pos = data.rfind(newline, 0, pos)  # type: ignore[arg-type]
        if pos < 0:
            return 0
    return pos + 1


async def _read_range(read: Reader, offset: int, n: int) -> bytes:
    """``n`` bytes from ``offset`` in as many reads as the backend needs (some cap a
    read); fewer only if the file is shorter now."""
    parts, got = [], 0
    while got < n:
        block, _ = await read(offset + got, n - got)
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


async def read_tail(read: Reader, lines: int, step: int = TAIL_STEP,
                    limit: int = MAX_TAIL_BYTES) -> tuple[int, bytes, int | None]:
    """(offset, bytes from there to the end, size) holding the last ``lines`` lines of a
    file read through ``read``: blocks are read back from the end, each twice the last,
    until enough newlines are in or the file's start is reached, so a short tail of a
    long log costs one or two reads and a line longer than a block is still whole.
    Past ``limit`` bytes the tail starts at the first whole character within it."""
    _, size = await read(0, 1)
    if not size or lines <= 0:
        return size or 0, b"", size
    start, data = size, b""
    while start > 0 and len(data) < limit:
        want = min(step, start, limit - len(data))
        block = await _read_range(read, start - want, want)
        if len(block) < want:  # truncated meanwhile (a log never shrinks otherwise)
            _, now = await read(0, 1)
            return now or 0, b"", now
        start, data = start - want, block + data
        step *= 2
        cut = _tail_start(data, b"\n", lines)
        if cut > 0:  # a newline before the first of the lines: the tail is complete
            return start + cut, data[cut:], size
    if start > 0:  # over the limit: drop a character split at the cut
        skip = next((i for i, b in enumerate(data[:4]) if b & 0xC0 != 0x80), 0)
        return start + skip, data[skip:], size
    return 0, data, size
