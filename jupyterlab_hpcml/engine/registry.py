"""Registered models: a run's logged model as a version of a named model, aliases,
descriptions — MLflow's own model registry (the embedded store or a tracking server),
nothing of ours beside it.

A run's model is named by its artifact path (``model`` by default): an MLflow 3 logged
model of that name whose source is the run (registered as ``models:/<model_id>``), else
the run's artifact folder (``runs:/<run id>/<path>``, MLflow 2's way). Every call blocks:
the engine runs them in threads.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from ..core.errors import Conflict, NotFound, Problem, UserInputError
from .mlflow_import import load_mlflow
from .models import DeploymentRecord, RunRecord

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .tracking import Tracker

# MLflow's own rules for an alias: letters, digits, _ and -, not "latest", not v<digits>.
_ALIAS = re.compile(r"[A-Za-z0-9_-]{1,255}")
_RESERVED_ALIAS = re.compile(r"(latest|v\d+)", re.IGNORECASE)


class ModelVersionView(BaseModel):
    name: str
    version: str
    source: str  # models:/<model_id> or runs:/<run>/<path>
    mlflow_run_id: str | None = None
    model_id: str | None = None
    aliases: list[str] = Field(default_factory=list)
    description: str | None = None
    created_at: float | None = None  # epoch seconds
    status: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class ModelVersionDetail(BaseModel):
    """A version with where it came from and where it runs."""

    version: ModelVersionView
    run: RunRecord | None = None  # the hpcml run that logged it (None: not one of ours)
    metrics: dict[str, float] = Field(default_factory=dict)  # the source run's latest
    flavors: list[str] = Field(default_factory=list)
    servable: bool = False  # MLflow's scoring server can load it (python_function)
    input_example: Any | None = None  # a request body for /invocations, saved with the model
    deployments: list[DeploymentRecord] = Field(default_factory=list)


class RegisteredModelView(BaseModel):
    name: str
    description: str | None = None
    aliases: dict[str, str] = Field(default_factory=dict)  # alias → version
    versions: list[ModelVersionView] = Field(default_factory=list)  # newest first
    updated_at: float | None = None


def check_alias(alias: str) -> str:
    if not _ALIAS.fullmatch(alias) or _RESERVED_ALIAS.fullmatch(alias):
        raise UserInputError(Problem(
            f"alias {alias!r}: letters, digits, _ and - (not 'latest' or v<number>)",
            key="alias"))
    return alias


def _version(mv: Any) -> ModelVersionView:
    # MLflow's stores do not all fill ModelVersion.model_id: the source says it too.
    model_id = getattr(mv, "model_id", None) or (
        mv.source.removeprefix("models:/") if mv.source.startswith("models:/") else None)
    return ModelVersionView(
        name=mv.name, version=str(mv.version), source=mv.source, mlflow_run_id=mv.run_id or None,
        model_id=model_id, aliases=list(mv.aliases or []),
        description=mv.description or None,
        created_at=mv.creation_timestamp / 1000 if mv.creation_timestamp else None,
        status=str(mv.status) if mv.status else None)


class Registry:
    def __init__(self, tracker: Tracker):
        self.tracker = tracker

    @property
    def client(self) -> Any:
        return self.tracker.client

    def model_source(self, run: RunRecord, path: str = "model") -> tuple[str, str | None]:
        """(source URI, logged model id or None) of the run's model at ``path``."""
        if not run.mlflow_run_id:
            raise Conflict(f"run {run.id} has no MLflow run (yet)")
        mlflow_run = self.client.get_run(run.mlflow_run_id)
        for model in self.tracker._logged_models(mlflow_run):
            if model.name == path:
                return f"models:/{model.model_id}", model.model_id
        names = {e.path for e in self.tracker.list_artifacts(run.mlflow_run_id)}
        if path in names:
            return f"runs:/{run.mlflow_run_id}/{path}", None
        raise NotFound(f"run {run.id} logged no model at {path!r}")

    def register(self, run: RunRecord, name: str, *, path: str = "model",
                 alias: str | None = None, description: str | None = None
                 ) -> ModelVersionView:
        """A new version of ``name`` (created when missing) from the run's model."""
        load_mlflow()
        from mlflow.exceptions import MlflowException

        if alias is not None:
            check_alias(alias)
        source, model_id = self.model_source(run, path)
        try:
            self.client.create_registered_model(name)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise UserInputError(Problem(f"model name {name!r}: {exc.message}",
                                             key="name")) from None
        with self.tracker.as_process_default():
            mv = self._call(self.client.create_model_version, name, source,
                            run_id=run.mlflow_run_id, description=description,
                            tags={"hpcml.run_id": run.id}, model_id=model_id)
        if alias is not None:
            self._call(self.client.set_registered_model_alias, name, alias, str(mv.version))
        return self.version(name, str(mv.version))

    def download_uri(self, name: str, version: str) -> str:
        """Where the version's files are (asked of this registry, not the process's)."""
        return str(self._lookup(self.client.get_model_version_download_uri, name, version))

    def version(self, name: str, version: str) -> ModelVersionView:
        return _version(self._lookup(self.client.get_model_version, name, version))

    def set_alias(self, name: str, alias: str, version: str) -> ModelVersionView:
        """Point ``alias`` at ``version`` (moved from wherever it pointed)."""
        check_alias(alias)
        self.version(name, version)  # NotFound for an unknown model or version
        self._call(self.client.set_registered_model_alias, name, alias, version)
        return self.version(name, version)

    def list_models(self) -> list[RegisteredModelView]:
        out = []
        token = None
        while True:
            page = self.client.search_registered_models(page_token=token)
            out += [self._model(m, versions=False) for m in page]
            token = page.token
            if not token:
                return out

    def get_model(self, name: str) -> RegisteredModelView:
        return self._model(self._lookup(self.client.get_registered_model, name), versions=True)

    def _model(self, m: Any, *, versions: bool) -> RegisteredModelView:
        view = RegisteredModelView(
            name=m.name, description=m.description or None,
            aliases={a: str(v) for a, v in (m.aliases or {}).items()},
            updated_at=m.last_updated_timestamp / 1000 if m.last_updated_timestamp else None)
        if versions:
            found = self._call(self.client.search_model_versions,
                               f"name = '{_quoted(m.name)}'", order_by=["version_number DESC"])
            # MLflow's version search leaves aliases out: the model's own map has them.
            by_version: dict[str, list[str]] = {}
            for alias, version in view.aliases.items():
                by_version.setdefault(version, []).append(alias)
            view.versions = [_version(mv).model_copy(update={
                "aliases": sorted(by_version.get(str(mv.version), []))}) for mv in found]
        return view

    def _lookup(self, func: Any, name: str, *args: Any) -> Any:
        """A read by name: a name MLflow refuses (``/``, ``:``, blank) names nothing: 404."""
        try:
            return self._call(func, name, *args)
        except UserInputError as exc:
            raise NotFound(f"no registered model {name[:100]!r}: {exc}") from None

    @staticmethod
    def _call(func: Any, *args: Any, **kwargs: Any) -> Any:
        """``func(*args)`` of MLflow's client, its refusals as ours (404, 400, 409)."""
        load_mlflow()
        from mlflow.exceptions import MlflowException

        try:
            return func(*args, **kwargs)
        except MlflowException as exc:
            code = getattr(exc, "error_code", "")
            if code == "RESOURCE_DOES_NOT_EXIST":
                raise NotFound(exc.message) from None
            if code == "INVALID_PARAMETER_VALUE":
                raise UserInputError(Problem(exc.message[:500])) from None
            if code == "RESOURCE_ALREADY_EXISTS":
                raise Conflict(exc.message) from None
            raise


def _quoted(name: str) -> str:
    """A name inside MLflow's filter string's single quotes."""
    return name.replace("\\", "\\\\").replace("'", "\\'")
