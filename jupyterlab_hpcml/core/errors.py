"""Errors the engine raises for user mistakes and backend faults.

Handlers map them to HTTP statuses in one place (``handlers/base.py``); the CLI
prints their message. Anything else escaping the engine is a bug (HTTP 500).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Problem:
    """One thing wrong with a user's input, precise enough to fix it."""

    message: str
    file: str | None = None
    line: int | None = None
    key: str | None = None  # dotted key path, e.g. "Resources.Nodes"

    def __str__(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}"
        parts = [p for p in (where, self.key) if p]
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message

    def to_dict(self) -> dict[str, str | int | None]:
        return {"message": self.message, "file": self.file, "line": self.line, "key": self.key}


class HpcmlError(Exception):
    """Base class; ``status`` is the HTTP status a handler answers with."""

    status = 500


@dataclass
class UserInputError(HpcmlError):
    """Bad project, config, parameter or request. Carries every problem found."""

    problems: list[Problem] = field(default_factory=list)
    status = 400

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class TooLarge(UserInputError):
    """A request body or a file over one of the limits in ``engine/limits.py``."""

    status = 413


class NotFound(HpcmlError):
    status = 404


class Conflict(HpcmlError):
    """The request is valid but not in the run's current state (e.g. cancel a finished run)."""

    status = 409


class Unsupported(HpcmlError):
    """The backend cannot do this (see ``Backend.supported_features``)."""

    status = 400


class BackendUnavailable(HpcmlError):
    """The backend could not be reached; runs become UNKNOWN, never FAILED."""

    status = 503


class UpstreamFailed(HpcmlError):
    """A service the lab passes a request on to (a deployment's model server) failed."""

    status = 502


class UpstreamTimeout(HpcmlError):
    """A service the lab passes a request on to did not answer in time."""

    status = 504
