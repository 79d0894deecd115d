"""The backend config as typed models: Mantik's sections (SSH, Firecrest, UnicoreApiUrl,
Resources, Environment) plus ours (Local, Tracking, Name).

Validating what a user wrote — with file, line and "did you mean" — is the JSON schema's
job (``engine/config.py``). These models are the *typed view* of a config that passed it:
the engine parses a run's config into its backend's ``config_model`` once, and a backend
reads attributes (``cfg.ssh.hostname``, ``cfg.resources.runtime``) instead of digging in
dicts. They are tolerant of missing fields (a backend built only to list its features
gets an empty config) and of both shapes Mantik allows for the Environment (a command
as a string or a list, Python as a path or ``{Path: ...}``), which they normalise.

Field names are snake_case; the config's own spellings are the aliases, so
``model_validate`` takes a config as written and ``model_dump(by_alias=True)`` gives it
back. The configs hold no secrets (credentials never go in a config file, see
``backends/credentials.py``).

A plug-in backend declares its own model, usually a subclass of :class:`BackendConfigModel`
with one more section, as ``Backend.config_model``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

COMMAND_KEYS = (
    "PreRunCommandOnLoginNode",
    "PostRunCommandOnLoginNode",
    "PreRunCommandOnComputeNode",
    "PostRunCommandOnComputeNode",
)


class Section(BaseModel):
    """One section of a config: read-only, config spellings accepted, unknown keys kept
    out (the schema has refused them already; a redacted record may carry ``***``)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


def env_str(value: Any) -> str:
    """A config value as an environment variable's text (YAML true → "true", 2.0 → "2")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ------------------------------------------------------------------ connections


class SSHSection(Section):
    """``SSH``: a Slurm cluster reached over SSH (keys from the agent or IdentityFile)."""

    hostname: str = Field("", alias="Hostname")
    port: int | None = Field(None, alias="Port")  # None: ~/.ssh/config's, else 22
    user: str | None = Field(None, alias="User")
    identity_file: str | None = Field(None, alias="IdentityFile")
    proxy_jump: str | None = Field(None, alias="ProxyJump")
    work_dir: str | None = Field(None, alias="WorkDir")

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> Any:
        return None if value in (None, "") else int(value)

    def as_written(self) -> dict[str, Any]:
        """The keys set, in the config's spelling (for the SSH connection's options)."""
        return self.model_dump(by_alias=True, exclude_none=True)


class FirecrestSection(Section):
    """``Firecrest``: the FirecREST API, the OIDC token endpoint (client credentials) and
    the machine jobs run on."""

    api_url: str = Field("", alias="ApiUrl")
    token_url: str = Field("", alias="TokenUrl")
    machine: str = Field("", alias="Machine")
    work_dir: str | None = Field(None, alias="WorkDir")


class LocalSection(Section):
    """``Local``: jobs as processes on the Jupyter server's machine."""

    work_dir: str | None = Field(None, alias="WorkDir")
    kill_grace: float | None = Field(None, alias="KillGrace")  # seconds from SIGTERM to SIGKILL


# ------------------------------------------------------------------ what a job gets


class Resources(Section):
    """``Resources``, normalised: ``runtime`` in seconds, ``memory_per_node`` in MiB (the
    engine converts "2h" or "4G" before a backend sees them)."""

    queue: str | None = Field(None, alias="Queue")
    runtime: int | None = Field(None, alias="Runtime")
    nodes: int | None = Field(None, alias="Nodes")
    total_cpus: int | None = Field(None, alias="TotalCPUs")
    cpus_per_node: int | None = Field(None, alias="CPUsPerNode")
    gpus_per_node: int | None = Field(None, alias="GPUsPerNode")
    memory_per_node: int | None = Field(None, alias="MemoryPerNode")
    reservation: str | None = Field(None, alias="Reservation")
    node_constraints: str | None = Field(None, alias="NodeConstraints")
    qos: str | None = Field(None, alias="QoS")
    account: str | None = Field(None, alias="Account")
    # Survive preemption and the time limit: signal, checkpoint, requeue (RequeuePolicy).
    requeue: bool | None = Field(None, alias="Requeue")
    max_requeues: int | None = Field(None, alias="MaxRequeues")
    requeue_signal_seconds: int | None = Field(None, alias="RequeueSignalSeconds")

    def given(self) -> dict[str, Any]:
        """The keys set in the config, in its spelling ({"Runtime": 3600, ...})."""
        return self.model_dump(by_alias=True, exclude_none=True)


class Apptainer(Section):
    """``Environment.Apptainer``: run the command in this image. ``type`` "local": the
    image is a project file, uploaded with the code; "remote": a path on the cluster."""

    path: str = Field("", alias="Path")
    type: Literal["local", "remote"] = Field("local", alias="Type")
    options: list[str] = Field(default_factory=list, alias="Options")

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> Any:
        return str(value or "local").lower()

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, str) else [str(v) for v in value]


class Environment(Section):
    """``Environment``: what surrounds the command — container or Python environment,
    modules, variables, and commands before/after it on the login or compute node."""

    apptainer: Apptainer | None = Field(None, alias="Apptainer")
    python: str | None = Field(None, alias="Python")  # a venv, or its bin/python
    modules: list[str] = Field(default_factory=list, alias="Modules")
    variables: dict[str, str] = Field(default_factory=dict, alias="Variables")
    pre_run_login: list[str] = Field(default_factory=list, alias="PreRunCommandOnLoginNode")
    post_run_login: list[str] = Field(default_factory=list, alias="PostRunCommandOnLoginNode")
    pre_run_compute: list[str] = Field(default_factory=list, alias="PreRunCommandOnComputeNode")
    post_run_compute: list[str] = Field(default_factory=list, alias="PostRunCommandOnComputeNode")

    @field_validator("python", mode="before")
    @classmethod
    def _python(cls, value: Any) -> Any:
        return value.get("Path") if isinstance(value, Mapping) else value

    @field_validator("modules", mode="before")
    @classmethod
    def _modules(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("variables", mode="before")
    @classmethod
    def _variables(cls, value: Any) -> Any:
        return {str(k): env_str(v) for k, v in (value or {}).items()}

    @field_validator("pre_run_login", "post_run_login", "pre_run_compute", "post_run_compute",
                     mode="before")
    @classmethod
    def _commands(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, str) else [env_str(c) for c in value]

    def given(self) -> dict[str, Any]:
        """The keys set in the config, in its spelling (for notes such as "X ignored")."""
        return self.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)


class Tracking(Section):
    """``Tracking``: "direct" (the job talks to the tracking server) or "offline" (the
    job logs to files in its run directory, copied by the engine)."""

    mode: Literal["direct", "offline"] = Field("direct", alias="Mode")
    uri: str | None = Field(None, alias="Uri")


# ------------------------------------------------------------------ whole configs


class BackendConfigModel(Section):
    """The sections every backend understands. A backend's ``config_model`` adds its
    connection section (or the whole of a plug-in's own)."""

    name: str | None = Field(None, alias="Name")
    resources: Resources = Field(default_factory=Resources, alias="Resources")
    environment: Environment = Field(default_factory=Environment, alias="Environment")
    exclude: list[str] = Field(default_factory=list, alias="Exclude")
    tracking: Tracking = Field(default_factory=Tracking, alias="Tracking")

    @field_validator("resources", "environment", "tracking", mode="before")
    @classmethod
    def _section(cls, value: Any) -> Any:
        return {} if value is None else value


class LocalConfig(BackendConfigModel):
    local: LocalSection = Field(default_factory=LocalSection, alias="Local")

    @field_validator("local", mode="before")
    @classmethod
    def _local(cls, value: Any) -> Any:
        return {} if value is None else value  # "Local:" alone is a valid config


class SSHConfig(BackendConfigModel):
    ssh: SSHSection = Field(default_factory=SSHSection, alias="SSH")


class FirecrestConfig(BackendConfigModel):
    firecrest: FirecrestSection = Field(default_factory=FirecrestSection, alias="Firecrest")


class UnicoreConfig(BackendConfigModel):
    api_url: str = Field("", alias="UnicoreApiUrl")
