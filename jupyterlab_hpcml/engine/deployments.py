"""Deployments: a registered model version served by service jobs, reached from the lab.

A deployment is a record (``deployment_store``) naming one run per replica. Each run is an
ordinary run of a generated project (``model_jobs``) whose program, MLflow's scoring
server, picks a port and writes where it listens; the run's log, job id, cancel and
re-attachment after a restart are the run's. On top of that this service:

- decides the deployment's state: STARTING until every replica answers ``/ping`` through
  its backend's tunnel, READY then, FAILED when a serving job ends by itself, STOPPED once
  stopped (its jobs cancelled, tunnels closed);
- watches active deployments in the background (``start``; every 2 s while one is
  starting, every 15 s otherwise), in whichever process runs the engine's loop;
- passes invocations on (``invoke``): round robin over the replicas, a size and a time
  limit, the model server's 4xx passed through, its failures as 502/504.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ..backends.base import Tunnel
from ..core.errors import (
    BackendUnavailable,
    Conflict,
    HpcmlError,
    NotFound,
    TooLarge,
    Unsupported,
    UpstreamFailed,
    UpstreamTimeout,
)
from ..core.states import RunState
from . import model_jobs
from .deployment_store import DeploymentStore
from .models import ACTIVE_DEPLOYMENT, DeploymentRecord, RunRecord
from .registry import Registry
from .requests import DeployRequest, SubmitRequest
from .runs import RunService

log = logging.getLogger(__name__)

EXPERIMENT = "hpcml-deployments"
INVOKE_TIMEOUT = 60.0  # seconds a prediction may take
MAX_RESPONSE_BYTES = 64 << 20
PING_TIMEOUT = 5.0
STARTING_INTERVAL, READY_INTERVAL = 2.0, 15.0
ORPHAN_AFTER = 600.0  # seconds a deployment without a job may be in creation


@dataclass(frozen=True)
class Invocation:
    """What the model server answered."""

    status: int
    content_type: str
    body: bytes
    replica: str = ""  # the run id of the serving job that answered


def default_name(model_name: str) -> str:
    """A deployment name from a model's: lower case, [a-z0-9-], at most 63 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", model_name.lower()).strip("-")[:63].strip("-")
    return slug or "model"


class DeploymentService:
    def __init__(self, runs: RunService, registry: Registry, data_dir: Path):
        self.runs = runs
        self.registry = registry
        self.store = DeploymentStore(runs.store)
        self.model_cache = data_dir / "models"
        self.jobs_dir = data_dir / "model-jobs"
        self._tunnels: dict[str, Tunnel] = {}  # run id → its way in
        self._opening: dict[str, asyncio.Lock] = {}  # run id → held while its tunnel opens
        self._turn = itertools.count()
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ create, stop

    async def create(self, req: DeployRequest, *, root: Path | None = None) -> DeploymentRecord:
        """Check everything, then start the replicas' serving jobs (STARTING)."""
        model = await asyncio.to_thread(model_jobs.fetch, self.registry, req.model_uri,
                                        self.model_cache)
        model_jobs.check_servable(model)
        project = Path(req.project) if req.project else None
        cfg = await asyncio.to_thread(
            self.runs.backend_config, project, req.backend_config, req.overrides, root)
        backend = self.runs.registry.get(cfg.kind, cfg.data)
        features = backend.supported_features()
        if not (features.services and features.tunnel):
            raise Unsupported(
                f"the {cfg.kind} backend cannot deploy a model: the lab cannot reach a job's "
                "port there (no tunnel). Deploy with a local or Slurm (SSH) config.")
        backend.check_ready()
        dep = DeploymentRecord(
            name=req.name or default_name(model.version.name), model_uri=req.model_uri,
            model_name=model.version.name, model_version=model.version.version,
            model_source=model.version.source, backend=cfg.kind,
            connection=cfg.connection_name, config_path=str(cfg.path) if cfg.path else None,
            replicas=req.replicas)
        await asyncio.to_thread(self.store.insert, dep)  # the name, taken (or Conflict)
        try:
            job_dir = await asyncio.to_thread(model_jobs.job_project, model, self.jobs_dir)
            submit = SubmitRequest(
                project=str(job_dir), entry_point=model_jobs.SERVE_ENTRY,
                parameters={"bind": backend.service_bind},
                backend_config=str(cfg.path) if cfg.path else None, overrides=req.overrides,
                experiment_name=EXPERIMENT)
            tags = {"hpcml.deployment": dep.name, "hpcml.model.name": dep.model_name,
                    "hpcml.model.version": dep.model_version, "hpcml.model.uri": model.uri}
            for i in range(req.replicas):
                label = f" #{i + 1}" if req.replicas > 1 else ""
                run = await self.runs.submit(
                    submit.model_copy(update={"run_name": f"serve {dep.name}{label}"}),
                    service=True, tags=tags)
                dep = await asyncio.to_thread(self.store.update, dep.name, _with_run(run.id))
        except BaseException as exc:
            await self._abandon(dep, exc)
            raise
        self._wake.set()
        return await self.refresh(dep)

    async def _abandon(self, dep: DeploymentRecord, exc: BaseException) -> None:
        """A creation that failed half-way: its jobs cancelled; the record gone if it had
        none, else FAILED with the reason."""
        current = await asyncio.to_thread(self.store.get, dep.name)
        if not current.run_ids:
            await asyncio.to_thread(self.store.delete, dep.name)
            return
        await self._cancel_runs(current.run_ids)
        await self._set(current, state="FAILED", message=f"deploy failed: {exc}",
                        stopped_at=time.time())

    async def stop(self, name: str) -> DeploymentRecord:
        """Cancel the serving jobs and close the tunnels; idempotent."""
        dep = await asyncio.to_thread(self.store.get, name)
        if dep.state not in ACTIVE_DEPLOYMENT:
            return dep
        await self._cancel_runs(dep.run_ids)
        return await self._set(dep, state="STOPPED", message="stopped",
                               stopped_at=time.time())

    async def _cancel_runs(self, run_ids: list[str]) -> None:
        for run_id in run_ids:
            await self._close_tunnel(run_id)
            self._opening.pop(run_id, None)
            with contextlib.suppress(Conflict, NotFound):  # ended already, or deleted
                await self.runs.cancel(run_id)

    # ------------------------------------------------------------------ reading

    async def get(self, name: str) -> DeploymentRecord:
        return await asyncio.to_thread(self.store.get, name)

    async def list(self) -> list[DeploymentRecord]:
        return await asyncio.to_thread(self.store.all)

    # ------------------------------------------------------------------ state

    async def refresh(self, dep: DeploymentRecord) -> DeploymentRecord:
        """``dep``'s state from its runs and its replicas' ``/ping`` (stored if changed)."""
        if dep.state not in ACTIVE_DEPLOYMENT:
            return dep
        if not dep.run_ids:  # being created; or its creator died before the first job
            if time.time() - dep.created_at < ORPHAN_AFTER:
                return dep
            return await self._set(dep, state="FAILED", stopped_at=time.time(),
                                   message="the deploy was interrupted before any job started")
        runs = await asyncio.gather(*(self._run(run_id) for run_id in dep.run_ids))
        ended = [r for r in runs if r is None or r.state.terminal]
        if ended:
            await self._cancel_runs(dep.run_ids)
            return await self._set(dep, state="FAILED", message=_ended_message(ended[0]),
                                   stopped_at=time.time())
        # Every replica at once: a silent one costs one PING_TIMEOUT, not one each.
        pings = await asyncio.gather(*(self._not_ready(run) for run in runs))
        waiting = [why for why in pings if why is not None]
        if not waiting:
            return await self._set(dep, state="READY", message=None,
                                   ready_at=dep.ready_at or time.time())
        return await self._set(dep, message="; ".join(waiting))

    async def _run(self, run_id: str) -> RunRecord | None:
        try:
            return await asyncio.to_thread(self.runs.store.get, run_id)
        except NotFound:
            return None

    async def _not_ready(self, run: RunRecord | None) -> str | None:
        """Why ``run`` does not serve yet (None: it answers ``/ping``)."""
        assert run is not None
        if run.state is not RunState.RUNNING:
            return f"serving job {run.id} is {run.state.value}"
        try:
            url = await self._url(run)
        except HpcmlError as exc:
            return f"serving job {run.id}: {exc}"
        if url is None:
            return f"serving job {run.id} is loading the model"
        try:
            answer = await self._http().get(f"{url}/ping", timeout=PING_TIMEOUT)
        except httpx.HTTPError as exc:
            await self._close_tunnel(run.id)
            return f"serving job {run.id} does not answer yet ({type(exc).__name__})"
        return None if answer.status_code == 200 else \
            f"serving job {run.id}: /ping answered {answer.status_code}"

    async def _url(self, run: RunRecord) -> str | None:
        """The lab's way to ``run``'s server (a tunnel opened once, reopened when dead; one
        opening at a time per run, so that concurrent requests share it)."""
        async with self._opening.setdefault(run.id, asyncio.Lock()):
            tunnel = self._tunnels.get(run.id)
            if tunnel is not None and tunnel.alive:
                return tunnel.local_url
            backend = self.runs.registry.for_run(run)
            endpoint = await backend.service_endpoint(run.job_ref())
            if endpoint is None:
                return None
            await self._close_tunnel(run.id)
            tunnel = self._tunnels[run.id] = await backend.open_tunnel(run.job_ref(), endpoint)
            return tunnel.local_url

    async def _close_tunnel(self, run_id: str) -> None:
        tunnel = self._tunnels.pop(run_id, None)
        if tunnel is not None:
            with contextlib.suppress(Exception):
                await tunnel.close()

    async def _set(self, dep: DeploymentRecord, **fields: Any) -> DeploymentRecord:
        if all(getattr(dep, k) == v for k, v in fields.items()):
            return dep

        def change(current: DeploymentRecord) -> dict[str, Any]:
            # Another process may have stopped it meanwhile: an ended deployment stays so.
            if current.state not in ACTIVE_DEPLOYMENT and fields.get("state") != "STOPPED":
                return {}
            return fields

        return await asyncio.to_thread(self.store.update, dep.name, change)

    # ------------------------------------------------------------------ invocations

    async def invoke(self, name: str, body: bytes, content_type: str) -> Invocation:
        """Pass a scoring request to one of the deployment's replicas."""
        dep = await asyncio.to_thread(self.store.get, name)
        if dep.state != "READY":
            dep = await self.refresh(dep)
        if dep.state != "READY":
            why = f": {dep.message}" if dep.message else ""
            raise Conflict(f"deployment {name!r} is {dep.state}{why}")
        run_id = dep.run_ids[next(self._turn) % len(dep.run_ids)]
        run = await self._run(run_id)
        for attempt in (1, 2):  # a tunnel that died with its connection: reopened once
            url = await self._url(run) if run is not None else None
            if url is None:
                raise Conflict(f"deployment {name!r}: serving job {run_id} is not listening")
            try:
                answer = await self._post(f"{url}/invocations", body, content_type)
                return dataclasses.replace(answer, replica=run_id)
            except httpx.TimeoutException:
                raise UpstreamTimeout(f"deployment {name!r} did not answer within "
                                      f"{INVOKE_TIMEOUT:.0f} s") from None
            except httpx.TransportError as exc:
                await self._close_tunnel(run_id)
                if attempt == 2:
                    raise BackendUnavailable(
                        f"deployment {name!r} cannot be reached: {exc}") from None
        raise AssertionError("unreachable")

    async def _post(self, url: str, body: bytes, content_type: str) -> Invocation:
        async with self._http().stream("POST", url, content=body, timeout=INVOKE_TIMEOUT,
                                       headers={"Content-Type": content_type}) as answer:
            data = bytearray()
            async for chunk in answer.aiter_bytes():
                data += chunk
                if len(data) > MAX_RESPONSE_BYTES:
                    raise TooLarge(f"the model's answer is larger than {MAX_RESPONSE_BYTES} "
                                   "bytes")
        kind = answer.headers.get("Content-Type", "application/json")
        if answer.status_code >= 500:
            raise UpstreamFailed(f"the model server failed ({answer.status_code}): "
                                 f"{answer_message(bytes(data))}")
        return Invocation(answer.status_code, kind, bytes(data))

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # Tunnels and local servers are on loopback: no proxy from the environment.
            self._client = httpx.AsyncClient(trust_env=False)
        return self._client

    # ------------------------------------------------------------------ watching

    def start(self) -> None:
        """Watch active deployments in the background (needs a running loop); idempotent."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            interval = READY_INTERVAL
            try:
                for dep in await asyncio.to_thread(self.store.all, active=True):
                    dep = await self.refresh(dep)
                    if dep.state == "STARTING":
                        interval = STARTING_INTERVAL
            except Exception:  # noqa: BLE001 - the watch must go on
                log.exception("checking deployments failed")
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for run_id in list(self._tunnels):
            await self._close_tunnel(run_id)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _with_run(run_id: str) -> Callable[[DeploymentRecord], dict[str, Any]]:
    return lambda d: {"run_ids": [*d.run_ids, run_id]}


def _ended_message(run: RunRecord | None) -> str:
    if run is None:
        return "a serving job's run was deleted"
    last = run.state_history[-1].message if run.state_history else None
    return f"serving job {run.id} ended {run.state.value}" + (f": {last}" if last else "")


def answer_message(body: bytes) -> str:
    """The message of a model server's error answer (MLflow's JSON, else its text)."""
    import json

    try:
        data = json.loads(body)
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return str(data["message"])[:2000]
    except ValueError:
        pass
    return body.decode("utf-8", "replace")[:2000]
