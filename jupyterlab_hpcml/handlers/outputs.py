"""What a run produced: log chunks, artifacts, metric histories."""
from __future__ import annotations

import asyncio
import mimetypes
import posixpath
from urllib.parse import quote

from .base import HpcmlHandler, authenticated


class LogHandler(HpcmlHandler):
    @authenticated
    async def get(self, run_id: str, stream: str) -> None:
        """Bytes of stdout/stderr from ``offset``; ask again with ``next_offset``."""
        chunk = await self.engine.read_log(
            run_id, stream, self.int_arg("offset", 0), self.int_arg("max_bytes", 256 * 1024)
        )
        self.write_json(chunk)


class ArtifactsHandler(HpcmlHandler):
    @authenticated
    async def get(self, run_id: str) -> None:
        path = self.get_query_argument("path", "")
        files = await self.engine.list_artifacts(run_id, path)
        self.write_json({"artifacts": [f.__dict__ for f in files]})


def content_disposition(name: str) -> str:
    """``attachment`` with the name for every browser (RFC 6266): ``filename*`` in UTF-8
    (RFC 5987 percent-encoding) and an ASCII ``filename`` fallback in which quotes,
    backslashes and non-ASCII became ``_``, so no part of a name can end the value."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe=_ATTR_CHARS)}"


_ATTR_CHARS = "!#$&+-.^_`|~"  # RFC 5987 attr-char besides letters and digits


class ArtifactDownloadHandler(HpcmlHandler):
    @authenticated
    async def get(self, run_id: str) -> None:
        path = self.get_query_argument("path", "")
        src, size = await self.engine.open_artifact(run_id, path)
        with src:
            name = posixpath.basename(path)
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            self.set_header("Content-Type", ctype)
            self.set_header("Content-Length", str(size))
            self.set_header("Content-Disposition", content_disposition(name))
            while block := await asyncio.to_thread(src.read, 1 << 20):
                self.write(block)
                await self.flush()
            await self.finish()


class MetricsHandler(HpcmlHandler):
    @authenticated
    async def get(self, run_id: str) -> None:
        self.write_json({"metrics": await self.engine.metric_keys(run_id)})


class MetricHistoryHandler(HpcmlHandler):
    @authenticated
    async def get(self, run_id: str, key: str) -> None:
        history = await self.engine.metric_history(
            run_id, key, self.int_arg("max_points", 1000), self.get_query_argument("x", "step")
        )
        self.write_json(history)
