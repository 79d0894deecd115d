"""The one place where engine errors become HTTP answers.

Handlers stay thin: parse the request, call the engine, write JSON. A user
mistake is a 4xx JSON body ``{"message", "problems"}``; only bugs are 500s.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel, ValidationError
from tornado import web

from ..core.errors import HpcmlError, NotFound, Problem, TooLarge, UserInputError
from ..engine import limits
from ..engine.requests import check_path, problems_of
from ..engine.service import Engine
from .jsonbody import parse_json_body

M = TypeVar("M", bound=BaseModel)


@web.stream_request_body
class HpcmlHandler(APIHandler):
    """Bodies are streamed so that one over ``limits.MAX_BODY_BYTES`` is refused (413)
    without being held in memory; read them with :meth:`body`."""

    _body: bytearray | None = None
    _body_too_large = False
    max_body_bytes = limits.MAX_BODY_BYTES  # a handler passing bodies on may take more

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        self._body = bytearray()
        length = self.request.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > self.max_body_bytes:
            # Answered before the body is read; tornado reads and drops what follows.
            raise TooLarge(f"request body is larger than {self.max_body_bytes} bytes")

    def data_received(self, chunk: bytes) -> None:
        if self._body is None or self._finished or self._body_too_large:
            return
        if len(self._body) + len(chunk) > self.max_body_bytes:
            self._body_too_large, self._body = True, bytearray()  # chunked: no Content-Length
        else:
            self._body += chunk

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:  # RFC 9110: a 405 lists what the resource supports
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        super().write_error(status_code, **kwargs)

    @classmethod
    def allowed_methods(cls) -> list[str]:
        base = web.RequestHandler
        return [m for m in cls.SUPPORTED_METHODS
                if getattr(cls, m.lower(), None) is not getattr(base, m.lower(), None)]

    @property
    def engine(self) -> Engine:
        engine: Engine = self.settings["hpcml_engine"]
        engine.start()  # the poller needs the running loop; idempotent
        return engine

    @property
    def root_dir(self) -> Path:
        # Resolved once per application: a resolve is a system call per path component,
        # and listings ask for every run on a page (`relative`).
        root: Path | None = self.settings.get("hpcml_root_dir")
        if root is None:
            root = Path(self.settings.get("server_root_dir", ".")).expanduser().resolve()
            self.settings["hpcml_root_dir"] = root
        return root

    def resolve_path(self, path: str) -> Path:
        """A path the browser gave (relative to the server root) → an absolute path inside it."""
        try:
            check_path(path)  # NUL, over-long names: the OS would raise, a 500
        except ValueError as exc:
            raise UserInputError(Problem(f"path {path[:80]!r}: {exc}", key="path")) from None
        full = (self.root_dir / path.lstrip("/")).resolve()
        if not full.is_relative_to(self.root_dir):
            raise UserInputError(Problem(f"path {path!r} is outside the server's root", key="path"))
        return full

    def relative(self, path: str | Path) -> str:
        """An absolute path as the browser sees it (relative to the root), if inside the root."""
        p, root = Path(path), self.root_dir
        return p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p)

    def raw_body(self) -> bytes:
        if self._body_too_large:
            raise TooLarge(f"request body is larger than {self.max_body_bytes} bytes")
        return bytes(self._body or b"")

    def body(self, model: type[M]) -> M:
        return model.model_validate(parse_json_body(self.raw_body()))

    def int_arg(self, name: str, default: int, minimum: int = -limits.MAX_QUERY_INT - 1,
                maximum: int = limits.MAX_QUERY_INT) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise UserInputError(
                Problem(f"must be an integer, got {raw[:40]!r}", key=name)) from None
        if not minimum <= value <= maximum:
            raise UserInputError(Problem(f"must be between {minimum} and {maximum}", key=name))
        return value

    def write_json(self, data: Any, status: int = 200) -> None:
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json")
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def _handle_request_exception(self, e: BaseException) -> None:
        if self._finished or not isinstance(e, (HpcmlError, ValidationError)):
            super()._handle_request_exception(e)
            return
        if isinstance(e, ValidationError):
            e = UserInputError(problems_of(e))
        problems = [p.to_dict() for p in getattr(e, "problems", [])]
        self.log.info("hpcml: %s %s → %s: %s", self.request.method, self.request.path, e.status, e)
        self.clear()
        # e.g. what the UI should ask for when credentials are missing (never a secret)
        details = getattr(e, "details", None) or {}
        self.write_json({"message": str(e), "problems": problems, **details}, status=e.status)


class ApiNotFoundHandler(HpcmlHandler):
    """Any path under the API that no route matches (e.g. a run id with other characters)."""

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        if not self.current_user:
            raise web.HTTPError(403)
        raise NotFound(f"no such API path: {self.request.path}")


def authenticated(method: Any) -> Any:
    """Alias so each handler module reads the same; every method must use it."""
    return web.authenticated(method)
