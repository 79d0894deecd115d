"""Request models shared by the REST API, the CLI and the Python API.

Strict types (no ``0`` for ``false``, no ``true`` for a parameter) and the size limits of
``engine/limits.py``: a request that passes here cannot make MLflow, SQLite or the file
system fail half-way through a submission.
"""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
)

from ..core.errors import Problem, UserInputError
from . import limits

Overrides = list[str] | dict[str, Any]


def _no_nul(value: str) -> str:
    # A NUL cannot be in a path, a command-line argument or most MLflow stores.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def check_path(value: str) -> str:
    """``value`` if the OS can take it as a path; else ValueError saying why."""
    if len(value) > limits.MAX_PATH_LENGTH:
        raise ValueError(f"is longer than {limits.MAX_PATH_LENGTH} characters")
    too_long = [p for p in value.split("/")
                if len(p.encode("utf-8", "surrogatepass")) > limits.MAX_PATH_COMPONENT_BYTES]
    if too_long:
        raise ValueError(f"has a name longer than {limits.MAX_PATH_COMPONENT_BYTES} bytes")
    return _no_nul(value)


def _param_name(value: str) -> str:
    if not value:
        raise ValueError("a parameter name must not be empty")
    if len(value) > limits.MAX_PARAM_NAME_LENGTH:
        raise ValueError(
            f"a parameter name must be at most {limits.MAX_PARAM_NAME_LENGTH} characters")
    return _no_nul(value)


def _param_value(value: Any) -> str | int | float:
    # One validator instead of a str | int | float union: one clear message per value.
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("must be a string or a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    if isinstance(value, int) and value.bit_length() > 14_000:  # str() refuses > 4300 digits
        raise ValueError("has too many digits")
    if len(str(value)) > limits.MAX_PARAM_VALUE_LENGTH:
        raise ValueError(f"must be at most {limits.MAX_PARAM_VALUE_LENGTH} characters")
    return _no_nul(value) if isinstance(value, str) else value


def _overrides(value: object) -> Overrides:
    if isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise ValueError('a list of overrides holds strings such as "Resources.Nodes=2"')
        for item in value:
            if len(item) > limits.MAX_OVERRIDE_LENGTH:
                raise ValueError(
                    f"an override must be at most {limits.MAX_OVERRIDE_LENGTH} characters")
            _no_nul(item)
    elif not isinstance(value, dict):
        raise ValueError("must be a list of \"Key.Path=value\" strings or an object")
    if len(value) > limits.MAX_OVERRIDES:
        raise ValueError(f"at most {limits.MAX_OVERRIDES} overrides")
    return value


PathText = Annotated[str, StringConstraints(max_length=limits.MAX_PATH_LENGTH),
                     AfterValidator(check_path)]
ParamName = Annotated[str, AfterValidator(_param_name)]
ParamValue = Annotated[Any, PlainValidator(_param_value)]
# Written out (not built by a function) so that type checkers see them as types.
RunName = Annotated[str, StringConstraints(max_length=limits.MAX_RUN_NAME_LENGTH),
                    AfterValidator(_no_nul)]
ExperimentName = Annotated[str, StringConstraints(max_length=limits.MAX_EXPERIMENT_NAME_LENGTH),
                           AfterValidator(_no_nul)]
DatasetName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_no_nul)]
EntryPoint = Annotated[str, StringConstraints(max_length=limits.MAX_ENTRY_POINT_LENGTH),
                       AfterValidator(_no_nul)]


def problems_of(exc: ValidationError) -> list[Problem]:
    """pydantic's errors as Problems keyed by the field's dotted path."""
    return [Problem(err["msg"].removeprefix("Value error, "),
                    key=".".join(str(p) for p in err["loc"]) or None)
            for err in exc.errors()]


class _Request(BaseModel):
    """A request model that raises ``UserInputError`` (as the REST API answers it, the CLI
    prints it and the Python API documents it) instead of pydantic's ValidationError."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise UserInputError(problems_of(exc)) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise UserInputError(problems_of(exc)) from None


class _RunOptions(_Request):
    """What a submission and a re-run share."""

    model_config = ConfigDict(extra="forbid", strict=True)

    parameters: Annotated[dict[ParamName, ParamValue],
                          Field(max_length=limits.MAX_PARAMETERS)] = Field(default_factory=dict)
    overrides: Annotated[Any, PlainValidator(_overrides)] = Field(
        default_factory=list,
        description='e.g. ["Resources.Nodes=2"] or {"Resources": {"Nodes": 2}}',
    )
    run_name: RunName | None = None
    experiment_name: ExperimentName | None = None
    data: Annotated[list[DatasetName], Field(max_length=limits.MAX_PARAMETERS)] | None = Field(
        default=None, description="The datasets of datasets.yaml to stage; default: all of "
        "them; [] for none")


class SubmitRequest(_RunOptions):
    project: PathText = Field(description="Project folder (or a file inside it)")
    entry_point: EntryPoint = "main"
    backend_config: PathText | None = Field(
        default=None, description="Backend config file, relative to the project; default: local"
    )


class DataStageRequest(_Request):
    """Stage a project's datasets on a config's target ahead of a run."""

    model_config = ConfigDict(extra="forbid", strict=True)

    project: PathText = Field(description="Project folder (or a file inside it)")
    backend_config: PathText | None = Field(
        default=None, description="Backend config file, relative to the project; default: local")
    names: Annotated[list[DatasetName], Field(max_length=limits.MAX_PARAMETERS)] | None = Field(
        default=None, description="The datasets to stage; default: all declared")


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


MAX_SWEEP_ROWS = 10_000  # the same bound as a sweep's points (engine/sweep_spec.py)
Row = Annotated[dict[ParamName, ParamValue], Field(max_length=limits.MAX_PARAMETERS)]


class SweepRequest(SubmitRequest):
    """A sweep: ``parameters`` values may be override texts (``0.1,0.01``, ``range(0,5)``,
    ``interval(1e-4,1e-1)``...); grid by default, ``random`` points, or ``rows``."""

    random: Annotated[int, Field(ge=1, le=MAX_SWEEP_ROWS)] | None = Field(
        default=None, description="Draw this many random points instead of the grid")
    seed: int | None = Field(default=None, description="Seed of the random draw (recorded)")
    rows: Annotated[list[Row], Field(max_length=MAX_SWEEP_ROWS)] | None = Field(
        default=None, description="The points, one object of parameter values each")
    rows_source: PathText | None = Field(default=None, description="Where the rows came from")
    max_parallel: Annotated[int, Field(ge=1, le=MAX_SWEEP_ROWS)] | None = Field(
        default=None, description="Children running at once (default: no cap)")


class SweepRerunRequest(_Request):
    model_config = ConfigDict(extra="forbid", strict=True)

    failed: bool = Field(default=True, description="Re-run only the failed children")
    parameters: Annotated[dict[ParamName, ParamValue],
                          Field(max_length=limits.MAX_PARAMETERS)] = Field(default_factory=dict)
    overrides: Annotated[Any, PlainValidator(_overrides)] = Field(default_factory=list)


TimeText = Annotated[str, StringConstraints(max_length=100), AfterValidator(_no_nul)]
CronText = Annotated[str, StringConstraints(max_length=200), AfterValidator(_no_nul)]
ZoneName = Annotated[str, StringConstraints(max_length=100), AfterValidator(_no_nul)]


class When(_Request):
    """When a schedule fires: ``cron`` (five fields or @hourly/@daily/...) or one time
    ``at`` (ISO 8601), in ``timezone`` (IANA; default: the server's)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    cron: CronText | None = Field(default=None, description="e.g. 0 3 * * * or @daily")
    at: TimeText | None = Field(default=None, description="One time, e.g. 2026-12-24T18:00")
    timezone: ZoneName | None = Field(default=None, description="e.g. Europe/Zurich")


class ScheduleRequest(SubmitRequest, When):
    """A schedule: a submission (``run_name`` is a template: ``{schedule}``, ``{n}``,
    ``{time:%Y%m%d-%H%M}``) and when it fires, with its policies."""

    name: RunName | None = Field(default=None, description="Default: project and entry point")
    overlap: Literal["skip", "allow", "cancel-previous"] = "skip"
    catch_up: Literal["latest", "none", "all"] = "latest"
    catch_up_limit: Annotated[int, Field(ge=1, le=1000)] = 10
    end: TimeText | None = Field(default=None, description="No firing after this time")
    max_runs: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    code: Literal["fresh", "pinned"] = Field(
        default="fresh", description="Snapshot the project at each firing, or once now")


ModelUri = Annotated[str, StringConstraints(max_length=1000), AfterValidator(_no_nul)]
DeploymentName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


class DeployRequest(_Request):
    """Serve a registered model version (``models:/<name>/<version>`` or ``@<alias>``) on
    the target of ``project``'s ``backend_config`` (default: this machine)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model_uri: ModelUri = Field(description="models:/<name>/<version> or models:/<name>@<alias>")
    name: DeploymentName | None = Field(
        default=None, description="The deployment's name (default: from the model's name)")
    project: PathText | None = Field(
        default=None, description="A project folder whose backend config to use")
    backend_config: PathText | None = Field(
        default=None, description="Backend config file, relative to the project; default: local")
    replicas: Annotated[int, Field(ge=1, le=8)] = 1
    overrides: Annotated[Any, PlainValidator(_overrides)] = Field(
        default_factory=list, description='e.g. ["Resources.GPUsPerNode=1"]')


class PredictRequest(_Request):
    """Score ``input`` (a dataset of ``project`` or a file or folder) with a registered model
    version, as a run on the target of ``backend_config``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model_uri: ModelUri
    input: PathText = Field(description="A dataset name of the project, or a file or folder")
    project: PathText | None = None
    backend_config: PathText | None = None
    output: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,100}$")] = \
        "predictions.csv"
    drop_columns: Annotated[list[Annotated[str, StringConstraints(max_length=200),
                                           AfterValidator(_no_nul)]],
                            Field(max_length=1000)] = Field(
        default_factory=list, description="Input columns the model does not see (a label)")
    run_name: RunName | None = None
    overrides: Annotated[Any, PlainValidator(_overrides)] = Field(default_factory=list)


class RegisterRequest(_Request):
    """Register a run's logged model (artifact path ``path``) as a version of ``name``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    run_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    name: Annotated[str, StringConstraints(min_length=1, max_length=256),
                    AfterValidator(_no_nul)]
    path: Annotated[str, StringConstraints(min_length=1, max_length=255),
                    AfterValidator(check_path)] = "model"
    alias: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,255}$")] | None = None
    description: Annotated[str, StringConstraints(max_length=5000),
                           AfterValidator(_no_nul)] | None = None


class AliasRequest(_Request):
    model_config = ConfigDict(extra="forbid", strict=True)

    version: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,12}$")] = Field(
        description="The version the alias points to")
