"""The typed contract's values: config models, the job context, features (no backend runs)."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import field_validator

from jupyterlab_hpcml.backends.base import Features, JobSpec
from jupyterlab_hpcml.backends.firecrest import FirecrestBackend
from jupyterlab_hpcml.backends.local import LocalBackend
from jupyterlab_hpcml.backends.ssh.slurm import SlurmBackend
from jupyterlab_hpcml.backends.unicore import UnicoreBackend
from jupyterlab_hpcml.core.config_models import Resources, SSHConfig
from jupyterlab_hpcml.core.errors import Unsupported, UserInputError
from jupyterlab_hpcml.core.job import (
    DataStage,
    JobContext,
    JobRef,
    PreparedJob,
    RequeuePolicy,
    ServiceEndpoint,
    ServiceSpec,
)
from jupyterlab_hpcml.engine import job_context
from jupyterlab_hpcml.engine.config import parse_backend_config
from jupyterlab_hpcml.engine.models import RunRecord

SSH_YAML = """
SSH: {Hostname: cluster.example, User: ada, Port: "2222", ProxyJump: gate}
Resources: {Runtime: 2h, MemoryPerNode: 4G, Queue: gpu, GPUsPerNode: 2}
Environment:
  Modules: [CUDA]
  Variables: {FLAG: true, RATE: 2.0, NAME: x}
  PreRunCommandOnLoginNode: echo pre
  Apptainer: {Path: /images/image.sif, Type: REMOTE, Options: --nv}
"""


def run_record(**fields: object) -> RunRecord:
    base = {"id": "abc123def456", "name": "my run", "project_path": "/p", "project_name": "proj",
            "entry_point": "main", "command": "python train.py --lr 0.1", "backend": "ssh"}
    return RunRecord(**{**base, **fields})  # type: ignore[arg-type]


def test_config_is_parsed_once_into_the_backends_model(tmp_path: Path) -> None:
    cfg = parse_backend_config(SSH_YAML)
    backend = SlurmBackend(cfg.data, tmp_path)
    config = job_context.job_config(backend, cfg)
    assert isinstance(config, SSHConfig)
    ssh = config.ssh
    assert (ssh.hostname, ssh.port, ssh.user) == ("cluster.example", 2222, "ada")
    # Units converted by the engine (seconds, MiB), shapes normalised by the model.
    assert (config.resources.runtime, config.resources.memory_per_node) == (7200, 4096)
    env = config.environment
    assert env.python is None and env.modules == ["CUDA"]
    assert env.variables == {"FLAG": "true", "RATE": "2", "NAME": "x"}
    assert env.pre_run_login == ["echo pre"]
    assert env.apptainer is not None
    assert (env.apptainer.type, env.apptainer.options) == ("remote", ["--nv"])
    # Mantik's other spelling of Python, as a recorded (raw) config has it.
    raw = SSHConfig.model_validate({"Environment": {"Python": {"Path": "v"}}})
    assert raw.environment.python == "v"
    # The backend instance and the engine name the same connection (credentials key).
    assert backend.identity == cfg.identity


@pytest.mark.parametrize("cls", [LocalBackend, SlurmBackend, FirecrestBackend, UnicoreBackend])
def test_every_backend_declares_a_typed_config_and_works_without_one(cls, tmp_path: Path) -> None:
    backend = cls({}, tmp_path)
    assert isinstance(backend.config, cls.config_model)
    assert isinstance(backend.supported_features(), Features)
    assert backend.config_notes(backend.parse_config({})) == []


def test_ssh_port_left_to_the_ssh_config_when_not_set(tmp_path: Path) -> None:
    # Not "22": ~/.ssh/config's Port for the host alias must still apply.
    backend = SlurmBackend({"SSH": {"Hostname": "alias"}}, tmp_path)
    assert backend.config.ssh.as_written() == {"Hostname": "alias"}


def test_context_from_a_record_and_after_a_restart(tmp_path: Path) -> None:
    cfg = parse_backend_config(SSH_YAML)
    backend = SlurmBackend(cfg.data, tmp_path)
    record = run_record(backend_config=cfg.redacted(), resources=cfg.resources, run_dir="/w/r")
    secret = "tok-" + "0123456789"
    ctx = job_context.context(record, job_context.job_config(backend, cfg),
                              env={"MLFLOW_TRACKING_TOKEN": secret})
    assert (ctx.run_id, ctx.run_name, ctx.project_name, ctx.job_name) == (
        "abc123def456", "my run", "proj", "hpcml-proj-main")
    assert ctx.command == "python train.py --lr 0.1" and ctx.run_dir == "/w/r"
    assert secret not in repr(ctx)  # a context may be logged; its env never is
    again = job_context.recorded_context(record, backend)
    assert again.env == {} and again.run_dir == "/w/r"
    assert again.resources == ctx.resources and again.environment == ctx.environment
    # The renderers' view: the config's spelling, normalised.
    spec = JobSpec.from_context(ctx)
    assert spec.resources == {"Queue": "gpu", "Runtime": 7200, "GPUsPerNode": 2,
                              "MemoryPerNode": 4096}
    assert spec.environment["PreRunCommandOnLoginNode"] == ["echo pre"]
    assert secret not in repr(spec)


def test_a_plugin_model_stricter_than_the_schema_is_a_user_error(tmp_path: Path) -> None:
    class Strict(SSHConfig):
        @field_validator("resources")
        @classmethod
        def _no_gpus(cls, value: Resources) -> Resources:
            if value.gpus_per_node:
                raise ValueError("this cluster has no GPUs")
            return value

    class StrictBackend(SlurmBackend):
        config_model = Strict

    cfg = parse_backend_config(SSH_YAML)
    with pytest.raises(UserInputError, match="Resources: .*this cluster has no GPUs"):
        job_context.job_config(StrictBackend({}, tmp_path), cfg)


def ctx_of(backend: LocalBackend) -> JobContext:
    return JobContext(run_id="r", run_name="r", project_name="p", entry_point="main",
                      job_name="j", command="true", config=backend.parse_config({}))


def test_features_refuse_what_a_backend_cannot_do(tmp_path: Path) -> None:
    ctx = ctx_of(LocalBackend({}, tmp_path))
    off = Features()
    off.check(ctx)  # asks for nothing: fine
    for extra in ({"requeue": RequeuePolicy()}, {"service": ServiceSpec(port=8080)},
                  {"data": (DataStage("set", "data/set", "/data/set"),)}):
        with pytest.raises(Unsupported):
            off.check(ctx.replace(**extra))
    asks = ctx.replace(requeue=RequeuePolicy(), service=ServiceSpec(8080),
                       data=(DataStage("a", "b", "/c"),))
    Features(requeue=True, services=True, data_staging=True).check(asks)


async def test_next_capabilities_raise_unsupported_by_default(tmp_path: Path) -> None:
    backend = LocalBackend({}, tmp_path)
    features = backend.supported_features()
    assert not (features.job_arrays or features.requeue)
    assert features.data_staging  # the local data store (backends/local_data.py)
    ref = run_record(run_dir=str(tmp_path)).job_ref()
    with pytest.raises(Unsupported):
        await backend.submit_array(PreparedJob(ctx_of(backend), str(tmp_path)), [])
    # Service jobs: where the job says it listens (.hpcml/service.json), reached directly.
    assert features.services and features.tunnel
    assert await backend.service_endpoint(ref) is None  # nothing written yet
    (tmp_path / ".hpcml").mkdir(exist_ok=True)
    (tmp_path / ".hpcml" / "service.json").write_text('{"host": "127.0.0.1", "port": 5001}')
    endpoint = await backend.service_endpoint(ref)
    assert endpoint == ServiceEndpoint("127.0.0.1", 5001)
    assert (await backend.open_tunnel(ref, endpoint)).local_url == "http://127.0.0.1:5001"
    (tmp_path / ".hpcml" / "service.json").write_text('{"host": "h", "port": "x"}')
    assert await backend.service_endpoint(ref) is None  # not a complete one
    # An array task's logs are its own.
    assert backend.log_path("stdout", ref) == ".hpcml/stdout.log"
    assert backend.log_path("stderr", JobRef("r", "123_4", "/d", task=4)) == ".hpcml/stderr.4.log"
