"""Resources units: Runtime (durations) and MemoryPerNode (sizes) as Mantik and Slurm
write them, to seconds and MiB. No I/O, no messages beyond what is accepted."""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

# Same grammar as $defs.runtime/memory in the schema (which spells case-insensitivity
# with character classes, as JSON Schema patterns have no flags); tests keep them in step.
_UNIT = r"(?:d(?:ays?)?|h(?:rs?|ours?)?|m(?:ins?|inutes?)?|s(?:ecs?|econds?)?)"
_RUNTIME_UNITS_RE = re.compile(rf"(?:[0-9]+(?:\.[0-9]+)? *{_UNIT} *)+", re.IGNORECASE)
_RUNTIME_PART_RE = re.compile(rf"([0-9]+(?:\.[0-9]+)?) *({_UNIT}) *", re.IGNORECASE)
_RUNTIME_CLOCK_RE = re.compile(  # Slurm: D-HH[:MM[:SS]], HH:MM:SS, MM:SS
    r"(?P<d>[0-9]+)-(?P<dh>[01]?[0-9]|2[0-3])(?::(?P<dm>[0-5][0-9])(?::(?P<ds>[0-5][0-9]))?)?"
    r"|(?P<a>[0-9]+):(?P<b>[0-5][0-9])(?::(?P<c>[0-5][0-9]))?"
)
_PLAIN_NUMBER_RE = re.compile(r"0*[1-9][0-9]*")
_MEMORY_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?) *([kmgt])(?:i?b)?", re.IGNORECASE)
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_UNIT_MIB = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}

_RUNTIME_HINT = (
    "must be a duration such as 1h30m, 90min, 01:30:00, 1-02:00:00 (days-hours:minutes:seconds), "
    "2d, or a number of seconds"
)
_MEMORY_HINT = "must be a size such as 64G, 64GB, 64GiB, 65536M, 512MiB, or a number of MiB"


def parse_runtime(value: str | int) -> int:
    """Seconds of a Runtime value; ``ValueError`` says what is accepted."""
    return _checked("Runtime", value, _runtime_seconds, "at least 1 second", _RUNTIME_HINT)


def parse_memory(value: str | int) -> int:
    """MiB of a MemoryPerNode value (binary units: 1G = 1024M); ``ValueError`` if invalid."""
    return _checked("MemoryPerNode", value, _memory_mib, "at least 1 MiB", _MEMORY_HINT)


def _checked(name: str, value: Any, convert: Callable[[str], int | None], minimum: str,
             hint: str) -> int:
    """``ValueError("<name> must be ...")``: the caller adds the value as it shows values."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{name} {hint}")
    result = value if isinstance(value, int) else convert(value)
    if result is None:
        raise ValueError(f"{name} {hint}")
    if result < 1:
        raise ValueError(f"{name} must be {minimum}")
    return int(result)


def _runtime_seconds(text: str) -> int | None:
    if _PLAIN_NUMBER_RE.fullmatch(text):
        return int(text)
    clock = _RUNTIME_CLOCK_RE.fullmatch(text)
    if clock:
        g = {k: int(v) for k, v in clock.groupdict().items() if v is not None}
        if "d" in g:
            return g["d"] * 86400 + g["dh"] * 3600 + g.get("dm", 0) * 60 + g.get("ds", 0)
        if "c" in g:  # HH:MM:SS
            return g["a"] * 3600 + g["b"] * 60 + g["c"]
        return g["a"] * 60 + g["b"]  # MM:SS, as Slurm reads it
    if _RUNTIME_UNITS_RE.fullmatch(text):
        total = sum(
            float(num) * _UNIT_SECONDS[unit[0].lower()]
            for num, unit in _RUNTIME_PART_RE.findall(text)
        )
        return round(total)
    return None


def _memory_mib(text: str) -> int | None:
    if _PLAIN_NUMBER_RE.fullmatch(text):
        return int(text)
    match = _MEMORY_RE.fullmatch(text)
    if not match:
        return None
    return math.ceil(float(match.group(1)) * _UNIT_MIB[match.group(2).lower()])
