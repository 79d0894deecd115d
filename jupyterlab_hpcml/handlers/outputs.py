"""What a run produced: log chunks, artifacts, metric histories."""
from __future__ import annotations

import asyncio
import mimetypes
import posixpath

from .base import HpcmlHandler, authenticated


class LogHandler(HpcmlHandler):
    @authenticated
    async def get(self, run_id: str, stream: str) -> None:
        """Bytes of stdout/stderr from ``offset``; ask again with ``next_offset``."""
        chunk = await self.engine.runs.read_log(
            run_id, stream, self.int_arg("offset", 0), self.int_arg("max_bytes", 256 * 1024)
        )
        self.write_json(chunk)


class ArtifactsHandler(HpcmlHandler):
    @authenticated
    async def get(self, run_id: str) -> None:
        files = await self.engine.outputs.list_artifacts(run_id, self.get_query_argument("path", ""))
        self.write_json({"artifacts": [f.__dict__ for f in files]})


class ArtifactDownloadHandler(HpcmlHandler):
    @authenticated
    async def get(self, run_id: str) -> None:
        path = self.get_query_argument("path", "")
        local, tmp = await self.engine.outputs.download_artifact(run_id, path)
        try:
            ctype = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
            self.set_header("Content-Type", ctype)
            self.set_header(
                "Content-Disposition", f'attachment; filename="{posixpath.basename(path)}"'
            )
            with local.open("rb") as f:
                while block := await asyncio.to_thread(f.read, 1 << 20):
                    self.write(block)
                    await self.flush()
            await self.finish()
        finally:
            tmp.cleanup()


class MetricsHandler(HpcmlHandler):
    @authenticated
    async def get(self, run_id: str) -> None:
        self.write_json({"metrics": await self.engine.outputs.metric_keys(run_id)})


class MetricHistoryHandler(HpcmlHandler):
    @authenticated
    async def get(self, run_id: str, key: str) -> None:
        history = await self.engine.outputs.metric_history(
            run_id, key, self.int_arg("max_points", 1000), self.get_query_argument("x", "step")
        )
        self.write_json(history)
