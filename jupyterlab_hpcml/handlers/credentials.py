"""FirecREST/UNICORE credentials typed in the lab: kept in server memory only, never echoed.

Every answer says where a stored secret is sent (``secret_sent_to``, with the connection's
``api_url`` and, for FirecREST, ``token_url``): credentials are kept per connection
identity, so they only ever go to the endpoints of the config they were entered for.
"""
from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..core.errors import Problem, UserInputError
from ..engine.requests import PathText
from .base import HpcmlHandler, authenticated


class CredentialsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: PathText = Field(description="Project folder, as in a submission")
    backend_config: PathText = Field(description="Backend config file, as in a submission")
    values: dict[str, Any] = Field(description="One complete set: client_id + client_secret or "
                                   "api_key (FirecREST); username + password or token (UNICORE)")


class CredentialsHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        """The connections with credentials in memory: names, field names and the endpoints
        their secrets go to; never a value."""
        from ..backends.credentials import MEMORY, describe  # with httpx: not at start-up

        self.write_json({"connections": [describe(identity, fields)
                                         for identity, fields in MEMORY.entries()]})

    @authenticated
    async def put(self) -> None:
        """Remember credentials for the connection of a project's backend config."""
        from ..backends.credentials import MEMORY, checked_values, describe

        req = self.body(CredentialsRequest)
        cfg = await asyncio.to_thread(
            self.engine.runs.backend_config, self.resolve_path(req.project), req.backend_config,
            (), self.root_dir)
        values = checked_values(cfg.kind, req.values)
        MEMORY.set(cfg.identity, values)
        self.write_json(describe(cfg.identity, list(values)))

    @authenticated
    async def delete(self) -> None:
        connection = self.get_query_argument("connection", None)
        if not connection:
            raise UserInputError(Problem("give the connection to forget", key="connection"))
        from ..backends.credentials import MEMORY

        MEMORY.forget(connection)
        self.set_status(204)
        self.finish()
