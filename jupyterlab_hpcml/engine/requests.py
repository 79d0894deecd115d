"""Request models shared by the REST API, the CLI and the Python API."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Overrides = list[str] | dict[str, Any]


class _RunOptions(BaseModel):
    """What a submission and a re-run share."""

    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, str | int | float] = Field(default_factory=dict)
    overrides: Overrides = Field(
        default_factory=list, description='e.g. ["Resources.Nodes=2"] or {"Resources": {"Nodes": 2}}'
    )
    run_name: str | None = None
    experiment_name: str | None = None


class SubmitRequest(_RunOptions):
    project: str = Field(description="Project folder (or a file inside it)")
    entry_point: str = "main"
    backend_config: str | None = Field(
        default=None, description="Backend config file, relative to the project; default: local"
    )


class RerunRequest(_RunOptions):
    fresh_code: bool = Field(
        default=False, description="Snapshot the project again instead of reusing the run's code"
    )


class RunQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    states: list[str] | None = None
    project: str | None = None
    experiment: str | None = None
    text: str | None = None
    limit: int = Field(default=50, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)
