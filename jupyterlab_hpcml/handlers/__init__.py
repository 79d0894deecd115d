"""REST API under /hpcml/api/ (documented in docs/openapi.yaml)."""
from __future__ import annotations

from .configs import SaveConfigHandler
from .credentials import CredentialsHandler
from .data import DataHandler, DataStageHandler, DataStagingHandler, DataVersionHandler
from .deployments import (
    DeploymentHandler,
    DeploymentsHandler,
    DeploymentStopHandler,
    InvocationsHandler,
)
from .experiments import ExperimentsHandler
from .meta import ConfigSchemaHandler, FeaturesHandler
from .models import (
    ModelAliasHandler,
    ModelHandler,
    ModelsHandler,
    ModelVersionHandler,
    PredictHandler,
)
from .outputs import (
    ArtifactDownloadHandler,
    ArtifactsHandler,
    LogHandler,
    MetricHistoryHandler,
    MetricsHandler,
)
from .projects import ProjectHandler
from .runs import (
    ArchiveHandler,
    CancelHandler,
    RerunHandler,
    RunHandler,
    RunsHandler,
    UnarchiveHandler,
)
from .runs_view import LatestMetricsHandler, MetricHistoriesHandler, RunRowsHandler
from .schedules import (
    ScheduleHandler,
    SchedulePauseHandler,
    SchedulePreviewHandler,
    ScheduleResumeHandler,
    ScheduleRunNowHandler,
    SchedulesHandler,
)
from .sweeps import (
    SweepCancelHandler,
    SweepHandler,
    SweepPreviewHandler,
    SweepRerunHandler,
    SweepsHandler,
)

RUN = r"(?P<run_id>[A-Za-z0-9_-]+)"
SWEEP = r"(?P<sweep_id>[A-Za-z0-9_-]+)"
SCHEDULE = r"(?P<schedule_id>[A-Za-z0-9_-]+)"
MODEL = r"(?P<name>[^/:]+)"  # URL-encoded; MLflow refuses / and : in a model's name
DEPLOYMENT = r"(?P<name>[a-z0-9][a-z0-9-]{0,62})"

# (path relative to /hpcml/api, handler)
HANDLERS = [
    (r"features", FeaturesHandler),
    (r"schema/backend-config", ConfigSchemaHandler),
    (r"project", ProjectHandler),
    (r"runs", RunsHandler),
    (rf"runs/{RUN}", RunHandler),
    (rf"runs/{RUN}/cancel", CancelHandler),
    (rf"runs/{RUN}/rerun", RerunHandler),
    (rf"runs/{RUN}/archive", ArchiveHandler),
    (rf"runs/{RUN}/unarchive", UnarchiveHandler),
    (rf"runs/{RUN}/logs/(?P<stream>[a-z]+)", LogHandler),
    (rf"runs/{RUN}/artifacts", ArtifactsHandler),
    (rf"runs/{RUN}/artifacts/download", ArtifactDownloadHandler),
    (rf"runs/{RUN}/metrics", MetricsHandler),
    (rf"runs/{RUN}/metrics/(?P<key>.+)", MetricHistoryHandler),
    (r"sweeps", SweepsHandler),
    (r"sweeps/preview", SweepPreviewHandler),
    (rf"sweeps/{SWEEP}", SweepHandler),
    (rf"sweeps/{SWEEP}/cancel", SweepCancelHandler),
    (rf"sweeps/{SWEEP}/rerun", SweepRerunHandler),
    (r"data", DataHandler),
    (r"data/stage", DataStageHandler),
    (r"data/stage/(?P<staging_id>[0-9a-f]{1,64})", DataStagingHandler),
    (r"data/versions/(?P<digest>[0-9a-f]{1,64})", DataVersionHandler),
    (r"models", ModelsHandler),
    (r"predictions", PredictHandler),
    (rf"models/{MODEL}", ModelHandler),
    (rf"models/{MODEL}/aliases/(?P<alias>[^/]+)", ModelAliasHandler),
    (rf"models/{MODEL}/versions/(?P<version>[0-9]{{1,12}})", ModelVersionHandler),
    (r"deployments", DeploymentsHandler),
    (rf"deployments/{DEPLOYMENT}", DeploymentHandler),
    (rf"deployments/{DEPLOYMENT}/stop", DeploymentStopHandler),
    (rf"deployments/{DEPLOYMENT}/invocations", InvocationsHandler),
    (r"schedules", SchedulesHandler),
    (r"schedules/preview", SchedulePreviewHandler),
    (rf"schedules/{SCHEDULE}", ScheduleHandler),
    (rf"schedules/{SCHEDULE}/pause", SchedulePauseHandler),
    (rf"schedules/{SCHEDULE}/resume", ScheduleResumeHandler),
    (rf"schedules/{SCHEDULE}/run", ScheduleRunNowHandler),
    # the lab's runs and charts tabs (handlers/runs_view.py)
    (r"runs-view/rows", RunRowsHandler),
    (r"runs-view/metrics", LatestMetricsHandler),
    (r"runs-view/histories", MetricHistoriesHandler),
    (r"project/config", SaveConfigHandler),
    (r"experiments", ExperimentsHandler),
    (r"credentials", CredentialsHandler),
]
