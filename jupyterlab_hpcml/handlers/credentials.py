"""FirecREST/UNICORE credentials typed in the lab: kept in server memory only, never echoed."""
from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..engine.errors import Problem, UserInputError
from .base import HpcmlHandler, authenticated


class CredentialsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: str = Field(description="Project folder, as in a submission")
    backend_config: str = Field(description="Backend config file, as in a submission")
    values: dict[str, Any] = Field(description="One complete set: client_id + client_secret or "
                                   "api_key (FirecREST); username + password or token (UNICORE)")


class CredentialsHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        """The connections with credentials in memory (names only)."""
        from ..backends.credentials import MEMORY  # with httpx: not at server start-up

        self.write_json({"connections": MEMORY.known()})

    @authenticated
    async def put(self) -> None:
        """Remember credentials for the connection of a project's backend config."""
        from ..backends.credentials import MEMORY, checked_values

        req = self.body(CredentialsRequest)
        cfg = await asyncio.to_thread(
            self.engine.runs.backend_config, self.resolve_path(req.project), req.backend_config)
        values = checked_values(cfg.kind, req.values)
        MEMORY.set(cfg.connection_name, values)
        self.write_json({"connection": cfg.connection_name, "kind": cfg.kind, "fields": sorted(values)})

    @authenticated
    async def delete(self) -> None:
        connection = self.get_query_argument("connection", None)
        if not connection:
            raise UserInputError(Problem("give the connection to forget", key="connection"))
        from ..backends.credentials import MEMORY

        MEMORY.forget(connection)
        self.set_status(204)
        self.finish()
