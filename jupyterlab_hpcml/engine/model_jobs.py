"""Jobs around a registered model version: serving it (a deployment) and scoring an input
with it (``hpcml predict``). Each is an ordinary run of a small generated project, so that
upload, submission, polling, logs, cancel and MLflow tracking are those of every run, on
every backend:

- ``model/``: the version's files, downloaded once per version into the data dir's model
  cache (read-only afterwards) and hard-linked into each job's project;
- ``hpcml_serve.py`` / ``hpcml_predict.py`` (``model_job_files/``): the job's program;
- ``MLproject``: entry points ``serve`` and ``predict``;
- ``datasets.yaml`` (predict): the input as the dataset ``input``, staged like any data.

Every function blocks: the engine runs them in threads.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import NotFound, Problem, UserInputError
from . import datasets as datasets_mod
from .limits import MAX_INPUT_EXAMPLE_BYTES
from .mlflow_import import load_mlflow
from .registry import ModelVersionView, Registry

SERVE_ENTRY = "serve"
PREDICT_ENTRY = "predict"
INPUT_DATASET = "input"
_FILES = Path(__file__).with_name("model_job_files")
_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_-]+))")
PYFUNC = "python_function"


@dataclass(frozen=True)
class ModelFiles:
    """A model version, resolved, with its files on this machine."""

    version: ModelVersionView
    path: Path  # the model's folder (MLmodel inside), read-only: never edit
    flavors: tuple[str, ...]

    @property
    def uri(self) -> str:
        """The version's own URI (an alias resolved)."""
        return f"models:/{self.version.name}/{self.version.version}"


def parse_uri(uri: str) -> tuple[str, str | None, str | None]:
    """(name, version, alias) of ``models:/<name>/<version>`` or ``models:/<name>@<alias>``."""
    found = _URI.fullmatch(uri.strip())
    if not found:
        raise UserInputError(Problem(
            f"model URI {uri[:200]!r}: expected models:/<name>/<version> or "
            "models:/<name>@<alias>", key="model_uri"))
    return found["name"], found["version"], found["alias"]


def resolve(registry: Registry, uri: str) -> ModelVersionView:
    """The registered version ``uri`` names (NotFound for an unknown model, version or alias)."""
    name, version, alias = parse_uri(uri)
    if version is not None:
        return registry.version(name, version)
    model = registry.get_model(name)
    assert alias is not None
    if alias not in model.aliases:
        known = ", ".join(sorted(model.aliases)) or "none"
        raise NotFound(f"model {name!r} has no alias {alias!r} (its aliases: {known})")
    return registry.version(name, model.aliases[alias])


def fetch(registry: Registry, uri: str, cache_dir: Path) -> ModelFiles:
    """The version ``uri`` names, its files downloaded into ``cache_dir`` once (a version's
    source never changes: the cache is keyed by it)."""
    version = resolve(registry, uri)
    key = hashlib.sha256(version.source.encode()).hexdigest()[:24]
    path = cache_dir / key
    if not (path / "MLmodel").is_file():
        location = registry.download_uri(version.name, version.version)
        path = _download(location, registry.tracker.tracking_uri, cache_dir, key)
    return ModelFiles(version, path, flavors(path))


def _download(uri: str, tracking_uri: str, cache_dir: Path, key: str) -> Path:
    load_mlflow()
    import mlflow.artifacts

    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache_dir))
    try:
        got = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp),
                                                       tracking_uri=tracking_uri))
        if not (got / "MLmodel").is_file():
            raise UserInputError(Problem(f"{uri} is not an MLflow model (no MLmodel file)",
                                         key="model_uri"))
        target = cache_dir / key
        try:
            os.replace(got, target)  # complete or absent; a concurrent download may win
        except OSError:
            if not (target / "MLmodel").is_file():
                raise
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def flavors(model_dir: Path) -> tuple[str, ...]:
    data = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
    return tuple(sorted((data.get("flavors") or {}).keys()))


def check_servable(model: ModelFiles) -> None:
    """Refuse a model MLflow's scoring server cannot load (no ``python_function`` flavor)."""
    if PYFUNC not in model.flavors:
        raise UserInputError(Problem(
            f"{model.uri} cannot be served: its flavors ({', '.join(model.flavors) or 'none'})"
            f" have no {PYFUNC}, which MLflow's scoring server loads", key="model_uri"))


def input_example(model_dir: Path) -> Any | None:
    """The serving payload MLflow saved with the model (``serving_input_example.json``);
    None without one or over ``MAX_INPUT_EXAMPLE_BYTES`` (it goes to the browser with
    every view of the version)."""
    import json

    path = model_dir / "serving_input_example.json"
    try:
        with path.open("rb") as f:
            data = f.read(MAX_INPUT_EXAMPLE_BYTES + 1)
        return json.loads(data) if len(data) <= MAX_INPUT_EXAMPLE_BYTES else None
    except (OSError, ValueError):
        return None


def job_project(model: ModelFiles, jobs_dir: Path, *, dataset: dict[str, Any] | None = None
                ) -> Path:
    """A new project folder for a job of ``model`` under ``jobs_dir`` (``dataset``: the
    ``input`` dataset's declaration, for a prediction)."""
    project = jobs_dir / uuid.uuid4().hex[:12]
    project.mkdir(parents=True)
    shutil.copytree(model.path, project / "model", copy_function=_link_or_copy)
    for script in ("hpcml_serve.py", "hpcml_predict.py"):
        shutil.copyfile(_FILES / script, project / script)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", model.version.name)[:60] or "model"
    (project / "MLproject").write_text(yaml.safe_dump({
        "name": f"model-{slug}",
        "entry_points": {
            SERVE_ENTRY: {
                "parameters": {"bind": {"type": "string", "default": "0.0.0.0"}},
                "command": "python hpcml_serve.py --model model --bind {bind}"},
            PREDICT_ENTRY: {
                "parameters": {"output": {"type": "string", "default": "predictions.csv"},
                               "drop": {"type": "string", "default": ""}},
                "command": "python hpcml_predict.py --model model --output {output}"
                           " --drop {drop}"},
        },
    }, sort_keys=False))
    if dataset is not None:
        (project / datasets_mod.FILE_NAME).write_text(
            yaml.safe_dump({"datasets": {INPUT_DATASET: dataset}}, sort_keys=False))
    return project


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # the cache is read-only in use: links cost no space
    except OSError:
        shutil.copy2(src, dst)


def input_dataset(input_ref: str, project_dir: Path | None,
                  resolve: Callable[[str], Path] | None = None) -> dict[str, Any]:
    """The ``input`` dataset's declaration for ``hpcml predict --input``: a dataset the
    project declares (its source made absolute), else a file or folder (``resolve``: how
    a request's path is found and confined; default: relative to the project, then the
    working directory)."""
    declared = datasets_mod.load(project_dir) if project_dir is not None else {}
    if input_ref in declared:
        spec = declared[input_ref]
        if spec.dvc is not None:
            return {"dvc": {"repo": spec.dvc.repo, "path": spec.dvc.path,
                            **({"rev": spec.dvc.rev} if spec.dvc.rev else {})},
                    "path": INPUT_DATASET}
        source = str(project_dir / spec.source) if project_dir and spec.kind == "project" \
            else spec.source
        return {"source": source, "path": INPUT_DATASET}
    path = resolve(input_ref) if resolve else _local_input(input_ref, project_dir)
    if not path.exists():
        raise UserInputError(Problem(
            f"input {input_ref!r} is neither a dataset of the project nor a file or folder",
            key="input"))
    return {"source": str(path.resolve()), "path": INPUT_DATASET}


def _local_input(input_ref: str, project_dir: Path | None) -> Path:
    path = Path(input_ref).expanduser()
    if not path.is_absolute() and project_dir is not None and not path.exists():
        return project_dir / path
    return path
