"""FirecREST/UNICORE credentials typed in the lab: kept in server memory only, never echoed.

Every answer says where a stored secret is sent (``secret_sent_to``, with the connection's
``api_url`` and, for FirecREST, ``token_url``): credentials are kept per connection
identity, so they only ever go to the endpoints of the config they were entered for.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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
        self.write_json({"connections": self.engine.credentials()})

    @authenticated
    async def put(self) -> None:
        """Remember credentials for the connection of a project's backend config."""
        req = self.body(CredentialsRequest)
        self.write_json(await self.engine.set_credentials(
            self.resolve_path(req.project), req.backend_config, req.values, self.root_dir))

    @authenticated
    async def delete(self) -> None:
        self.engine.forget_credentials(self.get_query_argument("connection", ""))
        self.set_status(204)
        self.finish()
