"""Service jobs on Slurm over SSH, reached through a port forwarded over the backend's own
connection (real test cluster, real sbatch; backend level).

The job is a small HTTP server in the cluster's venv: it binds 0.0.0.0 on a port the OS
picks and, once a ``go`` file appears in its run directory (so that "not yet" is
deterministic), writes ``.hpcml/service.json`` atomically and answers ``GET /ping`` and
``POST /invocations`` (an echo). ``service_endpoint`` says None until then, then the node's
hostname and the port; ``open_tunnel`` gives a local URL that reaches it over the same SSH
connection (no new handshake), refuses once closed, dies with that connection (and a new
one works after the reconnect); a port nothing listens on is a clear error. A tunnel rides
on a connection through two ProxyJump hosts as well. FirecREST and UNICORE claim neither
services nor tunnels. ~6 s on the test cluster.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import time

import httpx
import pytest

from jupyterlab_hpcml.backends.ssh.connection import SSHConnection
from jupyterlab_hpcml.backends.ssh.slurm import SlurmBackend
from jupyterlab_hpcml.backends.ssh.tunnel import ServiceUnreachable, open_ssh_tunnel
from jupyterlab_hpcml.core.errors import Unsupported
from jupyterlab_hpcml.core.files import SERVICE_FILE
from jupyterlab_hpcml.core.job import JobRef, ServiceEndpoint
from jupyterlab_hpcml.core.states import RunState

from .slurm_cluster import slurm, ssh_cmd, ssh_section  # noqa: F401 - fixture
from .test_slurm_array import context, new_id, project, wait_all
from .test_ssh_proxyjump import env  # noqa: F401 - fixture

SERVE_PY = """\
import http.server, json, os, socket, time

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer(200 if self.path == "/ping" else 404, b"pong", "text/plain")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        found = self.path == "/invocations"
        self.answer(200 if found else 404, body, self.headers.get("Content-Type", ""))

    def answer(self, code, body, kind):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
while not os.path.exists("go"):
    time.sleep(0.1)
with open(".hpcml/service.json.tmp", "w") as f:
    json.dump({"host": socket.gethostname(), "port": server.server_address[1]}, f)
os.replace(".hpcml/service.json.tmp", ".hpcml/service.json")
print("serving on", server.server_address[1], flush=True)
server.serve_forever()
"""


async def wait_for(what, timeout: float = 60):
    """``what()`` (awaited if need be) again and again until it answers something true."""
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        assert time.monotonic() < deadline, "gave up waiting"
        await asyncio.sleep(0.2)


async def request(method: str, url: str, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:  # a new connection
        return await client.request(method, url, **kwargs)


def node_hostname(s: dict[str, str], job_id: str) -> str:
    """The hostname of the node Slurm runs the job on (its NodeHostName)."""
    node = ssh_cmd(s, f"squeue -h -j {job_id} -o %N").strip()
    fields = dict(f.split("=", 1) for f in ssh_cmd(s, f"scontrol -o show node {node}").split()
                  if "=" in f)
    return fields["NodeHostName"]


async def test_a_service_job_is_reached_through_the_ssh_connection(slurm, tmp_path):  # noqa: F811
    backend = SlurmBackend({"SSH": ssh_section(slurm)}, tmp_path / "data")
    try:
        await _serve_and_reach(backend, slurm, tmp_path)
    finally:
        await backend.close()


async def _serve_and_reach(backend: SlurmBackend, slurm, tmp_path) -> None:  # noqa: F811
    features = backend.supported_features()
    assert features.services and features.tunnel
    ctx = context(backend, slurm, new_id(), command="python serve.py")
    ctx = ctx.replace(run_dir=await backend.run_dir_for(ctx))
    prepared = await backend.prepare(ctx, project(tmp_path, {"serve.py": SERVE_PY}))
    job_id, status = await backend.submit(prepared)
    ref = JobRef(ctx.run_id, job_id, prepared.run_dir)
    try:
        # Queued or starting, then running: no endpoint until the job writes its file.
        assert status.state in (RunState.QUEUED, RunState.RUNNING)
        assert await backend.service_endpoint(ref) is None
        await wait_for(lambda: _state_is(backend, ref, RunState.RUNNING))
        assert await backend.service_endpoint(ref) is None
        ssh_cmd(slurm, f"touch {prepared.run_dir}/go")
        endpoint = await wait_for(lambda: backend.service_endpoint(ref))
        written = json.loads(ssh_cmd(slurm, f"cat {prepared.run_dir}/{SERVICE_FILE}"))
        assert endpoint == ServiceEndpoint(host=node_hostname(slurm, job_id),
                                           port=written["port"])
        # The login node resolves the name the job wrote (here login and node are one host).
        assert ssh_cmd(slurm, f"getent hosts {endpoint.host}").strip()

        connects = backend.conn.stats.connects
        tunnel = await backend.open_tunnel(ref, endpoint)
        assert tunnel.alive and tunnel.local_url.startswith("http://127.0.0.1:")
        ping = await request("GET", f"{tunnel.local_url}/ping")
        assert (ping.status_code, ping.text) == (200, "pong")
        payload = {"inputs": [[1.0, 2.5], [3.0, 4.0]], "canary": "é ✓"}
        echo = await request("POST", f"{tunnel.local_url}/invocations", json=payload)
        assert echo.status_code == 200 and echo.json() == payload
        big = bytes(range(256)) * 4096  # 1 MiB each way through one channel
        echoed = await request("POST", f"{tunnel.local_url}/invocations", content=big,
                               headers={"Content-Type": "application/octet-stream"})
        assert echoed.content == big
        assert backend.conn.stats.connects == connects  # the backend's own connection

        # The SSH connection drops: the tunnel is dead (its port refuses); a new one works
        # over the reconnected connection.
        (await backend.conn.connection()).close()
        await wait_for(lambda: not tunnel.alive, timeout=10)
        with pytest.raises(httpx.ConnectError):
            await request("GET", f"{tunnel.local_url}/ping")
        await tunnel.close()
        again = await backend.open_tunnel(ref, endpoint)
        assert backend.conn.stats.connects == connects + 1
        assert again.alive and again.local_url != tunnel.local_url
        assert (await request("GET", f"{again.local_url}/ping")).text == "pong"

        # Closed by the caller: its port refuses; closing again is harmless.
        await again.close()
        assert not again.alive
        with pytest.raises(httpx.ConnectError):
            await request("GET", f"{again.local_url}/ping")
        await again.close()

        # A port nothing listens on: a clear error, no tunnel left behind.
        with pytest.raises(ServiceUnreachable, match=f"{endpoint.host}:1\\b"):
            await backend.open_tunnel(ref, ServiceEndpoint(endpoint.host, 1))
    finally:
        await backend.cancel(ref)
    final = (await wait_all(backend, [ref], timeout=60))[job_id]
    assert final.state == RunState.CANCELLED, final
    with pytest.raises(ServiceUnreachable):  # the service went with its job
        await backend.open_tunnel(ref, endpoint)


async def _state_is(backend: SlurmBackend, ref: JobRef, state: RunState) -> bool:
    found = (await backend.poll([ref]))[ref.job_id].state
    assert found in (RunState.QUEUED, RunState.RUNNING, state), found
    return found == state


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SlurmBackend, "backoff_start", 0.2)
    monkeypatch.setattr(SlurmBackend, "backoff_max", 0.5)


async def test_a_tunnel_through_proxyjump_hosts(env) -> None:  # noqa: F811
    """The forwarded port rides on the connection behind the jump hosts: a server that only
    the target host's loopback offers (here the same machine: login node = this one)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nbehind")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = SSHConnection({**ssh_section(env["s"]), "Hostname": "localhost",
                          "ProxyJump": f"{env['jump']},{env['jump']}"})
    try:
        tunnel = await open_ssh_tunnel(conn, ServiceEndpoint("127.0.0.1", port))
        assert (await request("GET", f"{tunnel.local_url}/")).text == "behind"
        assert conn.stats.connects == 1
        await tunnel.close()
    finally:
        await conn.close()
        server.close()


@pytest.mark.parametrize("kind", ["firecrest", "unicore"])
async def test_rest_backends_claim_no_service_jobs(kind: str, tmp_path) -> None:
    """FirecREST and UNICORE have no way to a node's port here: neither is offered."""
    from jupyterlab_hpcml.backends.firecrest import FirecrestBackend
    from jupyterlab_hpcml.backends.unicore import UnicoreBackend

    backend = {"firecrest": FirecrestBackend, "unicore": UnicoreBackend}[kind]({}, tmp_path)
    features = backend.supported_features()
    assert not (features.services or features.tunnel)
    ref = JobRef("r", "1", "/nowhere")
    with pytest.raises(Unsupported):
        await backend.service_endpoint(ref)
    with pytest.raises(Unsupported):
        await backend.open_tunnel(ref, ServiceEndpoint("node", 8080))
