"""The Python API for models: deploy a registered version, call it, score in batch.

    from jupyterlab_hpcml import deploy, deployment, predict

    dep = deploy("models:/digits@champion")           # waits until READY
    dep.predict(X[:5])                                  # a DataFrame, an array or rows
    deployment("digits").stop()
    run = predict("models:/digits@champion", "digits-csv", project="examples/digits")

Deployments go through the same engine as the lab and the CLI: one deployed here shows up
in the lab's Models tab. Calls go straight to the serving job (through the backend's
tunnel), not through a Jupyter server.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .api import Overrides, Run, _config, _overrides
from .bridge import bridge

if TYPE_CHECKING:
    from .engine.models import DeploymentRecord

__all__ = ["Deployment", "deploy", "deployment", "predict"]

POLL_SECONDS = 1.0


def payload(data: Any) -> bytes:
    """MLflow's ``/invocations`` JSON for ``data``: a pandas DataFrame as
    ``dataframe_split``, an array or a list of rows as ``inputs``, a dict as it is (already
    a payload)."""
    if isinstance(data, dict):
        return json.dumps(data).encode()
    if hasattr(data, "to_json") and hasattr(data, "columns"):  # pandas, not imported here
        return b'{"dataframe_split": ' + data.to_json(orient="split", index=False).encode() + b"}"
    rows = data.tolist() if hasattr(data, "tolist") else list(data)
    return json.dumps({"inputs": rows}).encode()


class Deployment:
    """A deployment in the shared store; ``predict`` calls its model."""

    def __init__(self, record: DeploymentRecord, data_dir: Path | str | None = None):
        self.record = record
        self._data_dir = data_dir

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def state(self) -> str:
        return self.record.state

    def refresh(self) -> Deployment:
        engine = bridge.engine(self._data_dir)
        self.record = bridge.run(engine.get_deployment(self.name, refresh=True))
        return self

    def wait(self, timeout: float = 600.0) -> Deployment:
        """Until it is no longer STARTING (READY, or FAILED with the reason)."""
        deadline = time.monotonic() + timeout
        while self.refresh().state == "STARTING" and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        return self

    def predict(self, data: Any) -> Any:
        """The model's predictions for ``data`` (see ``payload``); raises HpcmlError with
        the model server's message for a request it refuses."""
        from .core.errors import UpstreamFailed
        from .engine.deployments import answer_message

        engine = bridge.engine(self._data_dir)
        answer = bridge.run(engine.invoke_deployment(self.name, payload(data),
                                                     "application/json"))
        if answer.status >= 400:  # MLflow's JSON error, or a proxy's plain text
            raise UpstreamFailed(f"the model refused the request ({answer.status}): "
                                 f"{answer_message(answer.body)}")
        body = json.loads(answer.body)
        return body["predictions"] if isinstance(body, dict) and "predictions" in body else body

    def stop(self) -> Deployment:
        engine = bridge.engine(self._data_dir)
        self.record = bridge.run(engine.stop_deployment(self.name))
        return self

    def __repr__(self) -> str:
        return f"<Deployment {self.name} {self.state} {self.record.model_uri}>"


def deploy(model_uri: str, *, backend_config: str | Path | None = None,
           project: str | Path | None = None, name: str | None = None, replicas: int = 1,
           overrides: Overrides | None = None, wait: bool = True, timeout: float = 600.0,
           data_dir: str | Path | None = None) -> Deployment:
    """Serve a registered model version (``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``)
    as a job on ``backend_config``'s target (default: this machine); ``wait``: until READY."""
    from .engine.requests import DeployRequest

    req = DeployRequest(
        model_uri=model_uri, name=name, replicas=replicas, overrides=_overrides(overrides),
        project=str(Path(project).expanduser().resolve()) if project else None,
        backend_config=str(backend_config) if project and backend_config
        else _config(backend_config))
    dep = Deployment(bridge.run(bridge.engine(data_dir).deploy(req)), data_dir)
    return dep.wait(timeout) if wait else dep


def deployment(name: str, *, data_dir: str | Path | None = None) -> Deployment:
    return Deployment(bridge.run(bridge.engine(data_dir).get_deployment(name)), data_dir)


def predict(model_uri: str, input: str | Path, *, project: str | Path | None = None,
            backend_config: str | Path | None = None, output: str = "predictions.csv",
            drop_columns: list[str] | None = None, overrides: Overrides | None = None,
            wait: bool = False, timeout: float | None = None,
            data_dir: str | Path | None = None) -> Run:
    """Score ``input`` (a dataset of ``project`` or a file or folder) with a registered model
    version as a run; the predictions are its artifact ``predictions/<output>``."""
    from .engine.requests import PredictRequest

    req = PredictRequest(
        model_uri=model_uri, input=str(input), output=output,
        drop_columns=list(drop_columns or []), overrides=_overrides(overrides),
        project=str(Path(project).expanduser().resolve()) if project else None,
        backend_config=str(backend_config) if project and backend_config
        else _config(backend_config))
    run = Run(bridge.run(bridge.engine(data_dir).predict(req)), data_dir)
    return run.wait(timeout) if wait else run
