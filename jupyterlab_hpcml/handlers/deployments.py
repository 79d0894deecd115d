"""Deployments: serve a model version, follow and stop it, and the authenticated proxy to
its scoring server (``/invocations``), with the size and time limits of the engine."""
from __future__ import annotations

from ..core.errors import Problem, UserInputError
from ..engine import limits
from ..engine.models import DeploymentRecord
from ..engine.requests import DeployRequest
from .base import HpcmlHandler, authenticated

CONTENT_TYPES = ("application/json", "text/csv")


def deployment_json(handler: HpcmlHandler, dep: DeploymentRecord) -> dict[str, object]:
    data = dep.model_dump(mode="json")
    data["invocations_url"] = f"{handler.base_url.rstrip('/')}/hpcml/api/deployments/" \
        f"{dep.name}/invocations"
    if dep.config_path:
        data["config_path"] = handler.relative(dep.config_path)
    return data


class DeploymentsHandler(HpcmlHandler):
    @authenticated
    async def get(self) -> None:
        deps = await self.engine.list_deployments()
        self.write_json({"deployments": [deployment_json(self, d) for d in deps]})

    @authenticated
    async def post(self) -> None:
        """Deploy a model version (201, STARTING); 409 when the name is in use."""
        req = self.body(DeployRequest)
        if req.project is not None:
            req.project = str(self.resolve_path(req.project))
        dep = await self.engine.deploy(req, root=self.root_dir)
        self.write_json(deployment_json(self, dep), status=201)


class DeploymentHandler(HpcmlHandler):
    @authenticated
    async def get(self, name: str) -> None:
        dep = await self.engine.get_deployment(name, refresh=True)
        self.write_json(deployment_json(self, dep))


class DeploymentStopHandler(HpcmlHandler):
    @authenticated
    async def post(self, name: str) -> None:
        self.write_json(deployment_json(self, await self.engine.stop_deployment(name)))


class InvocationsHandler(HpcmlHandler):
    """The proxy: the body goes to the model server as is, its answer comes back as is."""

    max_body_bytes = limits.MAX_INVOCATION_BYTES

    @authenticated
    async def post(self, name: str) -> None:
        kind = self.request.headers.get("Content-Type", "application/json")
        if kind.split(";")[0].strip().lower() not in CONTENT_TYPES:
            raise UserInputError(Problem(
                f"Content-Type {kind[:100]!r}: send application/json or text/csv",
                key="Content-Type"))
        answer = await self.engine.invoke_deployment(name, self.raw_body(), kind)
        self.set_status(answer.status)
        self.set_header("Content-Type", answer.content_type)
        self.set_header("X-Hpcml-Replica", answer.replica)
        self.finish(answer.body)
