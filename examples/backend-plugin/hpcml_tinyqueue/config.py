"""The plug-in's typed config: the common sections plus its own ``TinyQueue`` section.

A config selects this backend with ``Backend: tinyqueue``::

    Backend: tinyqueue
    TinyQueue:
      MaxParallel: 2      # jobs running at once; the others wait QUEUED
      KillGrace: 5        # seconds from a cancel's SIGTERM to SIGKILL
      Root: ~/tinyqueue   # queue and run directories (default: in the lab's data dir)
    Resources:
      Runtime: 1h         # a job still running then is stopped: TIMEOUT

jupyterlab-hpcml validates ``Resources``, ``Environment`` and the other common sections
with its JSON schema; ``TinyQueue`` is this model's to judge (unknown keys are refused,
so a typo is reported with its line).
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jupyterlab_hpcml.core.config_models import BackendConfigModel


class TinyQueueSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    root: str | None = Field(None, alias="Root")
    max_parallel: int = Field(1, alias="MaxParallel", ge=1, le=64)
    kill_grace: float = Field(5.0, alias="KillGrace", ge=0, le=600)


class TinyQueueConfig(BackendConfigModel):
    tinyqueue: TinyQueueSection = Field(default_factory=TinyQueueSection, alias="TinyQueue")

    @field_validator("tinyqueue", mode="before")
    @classmethod
    def _empty_section(cls, value: Any) -> Any:
        return {} if value is None else value  # "TinyQueue:" alone: the defaults
