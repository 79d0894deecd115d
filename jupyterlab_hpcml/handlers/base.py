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

from ..engine.errors import HpcmlError, Problem, UserInputError
from ..engine.service import Engine

M = TypeVar("M", bound=BaseModel)


def _pydantic_problems(exc: ValidationError) -> list[Problem]:
    return [
        Problem(err["msg"], key=".".join(str(p) for p in err["loc"]) or None)
        for err in exc.errors()
    ]


class HpcmlHandler(APIHandler):
    @property
    def engine(self) -> Engine:
        engine: Engine = self.settings["hpcml_engine"]
        engine.start()  # the poller needs the running loop; idempotent
        return engine

    @property
    def root_dir(self) -> Path:
        return Path(self.settings.get("server_root_dir", ".")).expanduser().resolve()

    def resolve_path(self, path: str) -> Path:
        """A path the browser gave (relative to the server root) → an absolute path inside it."""
        full = (self.root_dir / path.lstrip("/")).resolve()
        if not full.is_relative_to(self.root_dir):
            raise UserInputError(Problem(f"path {path!r} is outside the server's root", key="path"))
        return full

    def relative(self, path: str | Path) -> str:
        """An absolute path as the browser sees it (relative to the root), if inside the root."""
        p = Path(path)
        return p.relative_to(self.root_dir).as_posix() if p.is_relative_to(self.root_dir) else str(p)

    def body(self, model: type[M]) -> M:
        try:
            data = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError as exc:
            raise UserInputError(f"request body is not JSON: {exc}") from exc
        return model.model_validate(data)

    def int_arg(self, name: str, default: int) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise UserInputError(Problem(f"must be an integer, got {raw!r}", key=name)) from None

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
            e = UserInputError(_pydantic_problems(e))
        problems = [p.to_dict() for p in getattr(e, "problems", [])]
        self.log.info("hpcml: %s %s → %s: %s", self.request.method, self.request.path, e.status, e)
        self.clear()
        # e.g. what the UI should ask for when credentials are missing (never a secret)
        details = getattr(e, "details", None) or {}
        self.write_json({"message": str(e), "problems": problems, **details}, status=e.status)


def authenticated(method: Any) -> Any:
    """Alias so each handler module reads the same; every method must use it."""
    return web.authenticated(method)
