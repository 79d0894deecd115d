"""The data the engine passes around: run records, states, code identity.

Pydantic models so that the store, the REST API, the CLI's ``--json`` and the
Python API all serialise a run the same way.
"""
from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..core.job import JobRef
from ..core.states import RunState

TrackingMode = Literal["direct", "offline"]


class StateChange(BaseModel):
    state: RunState
    at: float = Field(default_factory=time.time)  # epoch seconds
    message: str | None = None


class CodeIdentity(BaseModel):
    """What code ran: git commit + hash of uncommitted changes, and always a content hash."""

    git_commit: str | None = None
    git_dirty_hash: str | None = None  # sha256 of the uncommitted diff (None when clean)
    content_hash: str  # sha256 over the snapshot manifest (paths + file hashes)


class RunRecord(BaseModel):
    """Everything needed to show, follow and reproduce a run. Never holds secrets."""

    id: str
    name: str
    project_path: str  # absolute path of the project on the submitting machine
    project_name: str
    entry_point: str
    command: str  # resolved shell command, parameters quoted
    parameters: dict[str, str] = Field(default_factory=dict)
    backend: str  # "local" | "ssh" | "firecrest" | "unicore"
    connection: str | None = None  # which cluster/connection (host, API URL, machine)
    config_path: str | None = None
    backend_config: dict[str, Any] = Field(default_factory=dict)  # with overrides, secrets redacted
    # As given, for re-runs.
    config_overrides: list[str] | dict[str, Any] = Field(default_factory=list)
    resources: dict[str, Any] = Field(default_factory=dict)
    tracking_mode: TrackingMode = "direct"
    backend_job_id: str | None = None
    run_dir: str | None = None  # where the job runs, as the backend sees it
    state: RunState = RunState.SUBMITTING
    state_history: list[StateChange] = Field(default_factory=list)
    exit_code: int | None = None
    cancel_requested: bool = False
    mlflow_experiment_id: str | None = None
    mlflow_experiment_name: str | None = None
    mlflow_run_id: str | None = None
    code: CodeIdentity | None = None
    snapshot_id: str | None = None  # manifest id in the local object store (re-run same code)
    rerun_of: str | None = None
    # Who is submitting: a SUBMITTING run whose submitter died is resolved, never resubmitted.
    submitter_host: str | None = None
    submitter_pid: int | None = None
    notes: list[str] = Field(default_factory=list)  # e.g. "Resources.GPUsPerNode ignored locally"
    archived: bool = False  # hidden from default listings; reversible (RunService.archive)
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)

    def job_ref(self) -> JobRef:
        """The run's job as a backend knows it (the job id is "" before it has one)."""
        return JobRef(self.id, self.backend_job_id or "", self.run_dir or "")

    @property
    def started_at(self) -> float | None:
        return next((c.at for c in self.state_history if c.state == RunState.RUNNING), None)

    @property
    def ended_at(self) -> float | None:
        return next((c.at for c in self.state_history if c.state.terminal), None)


class DeleteResult(BaseModel):
    """What deleting a run removed and what it kept (and why), for every face to show."""

    id: str
    run_dir_removed: bool = False
    mlflow_run_deleted: bool = False
    snapshot_removed: bool = False
    kept: list[str] = Field(default_factory=list)  # human notes: what stayed and where
