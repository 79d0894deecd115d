"""A service job's port reached from the lab's machine over the cluster's SSH connection.

The service listens on ``<node>:<port>`` inside the cluster. asyncssh listens on a port of
this machine's loopback (picked by the OS) and carries each connection made to it as one
``direct-tcpip`` channel over the connection the backend already holds: no ``ssh``
process, no second handshake, ProxyJump hosts included. The login node opens the TCP
connection to the node, so it must reach the node (it normally does) and its sshd must
allow TCP forwarding (``AllowTcpForwarding``, on by default; some sites turn it off).

A tunnel lives as long as that connection: after a drop (the backend reconnects on its
next call) ``alive`` turns False and the caller opens a new one.
"""
from __future__ import annotations

import asyncio
import contextlib

import asyncssh

from ...core.errors import HpcmlError
from ...core.job import ServiceEndpoint
from ..base import Tunnel
from .connection import ConnectionLost, SSHConnection, SSHError

PROBE_TIMEOUT = 20.0


class ServiceUnreachable(HpcmlError):
    """The login node cannot connect to the service's node and port (the service is not
    listening there, or no longer)."""

    status = 502


class SSHTunnel(Tunnel):
    """A local port forwarded to a service job's endpoint (see the module docstring)."""

    def __init__(self, conn: asyncssh.SSHClientConnection, listener: asyncssh.SSHListener,
                 endpoint: ServiceEndpoint):
        self.endpoint = endpoint
        self.local_url = f"http://127.0.0.1:{listener.get_port()}"
        self._conn = conn
        self._listener: asyncssh.SSHListener | None = listener

    @property
    def alive(self) -> bool:
        """False once closed or once its SSH connection has gone (asyncssh then stops
        listening too): open a new tunnel."""
        return self._listener is not None and not self._conn.is_closed()

    async def close(self) -> None:
        """Stop listening (connections already made through it end with the service's
        answer or the SSH connection). Safe to repeat."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
            with contextlib.suppress(Exception):  # a connection already gone: closed anyway
                await listener.wait_closed()


async def open_ssh_tunnel(ssh: SSHConnection, endpoint: ServiceEndpoint) -> SSHTunnel:
    """A tunnel to ``endpoint`` over ``ssh``'s shared connection (opened if needed).

    One connection to the endpoint is tried first through the login node, so that a site
    without TCP forwarding or a service not listening is a clear error here rather than
    a reset connection at the first request."""
    conn = await ssh.connection()
    await _probe(ssh, conn, endpoint)
    listener = await conn.forward_local_port("127.0.0.1", 0, endpoint.host, endpoint.port)
    return SSHTunnel(conn, listener, endpoint)


async def _probe(ssh: SSHConnection, conn: asyncssh.SSHClientConnection,
                 endpoint: ServiceEndpoint) -> None:
    where = f"{endpoint.host}:{endpoint.port}"
    try:
        _, writer = await asyncio.wait_for(
            conn.open_connection(endpoint.host, endpoint.port), PROBE_TIMEOUT)
    except asyncssh.ChannelOpenError as exc:
        if exc.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED:
            raise SSHError(f"the SSH server of {ssh.label} does not allow port forwarding "
                           f"(sshd's AllowTcpForwarding), so the service on {where} cannot be "
                           "reached from here") from None
        if exc.code == asyncssh.OPEN_CONNECT_FAILED:
            raise ServiceUnreachable(f"{ssh.label} cannot connect to the service on {where}: "
                                     f"{exc.reason}") from None
        raise ConnectionLost(f"lost the connection to {ssh.label}: {exc}") from None
    except asyncio.TimeoutError:
        raise ServiceUnreachable(f"{ssh.label} did not connect to the service on {where} "
                                 f"within {PROBE_TIMEOUT:.0f} s") from None
    except (asyncssh.Error, OSError, EOFError) as exc:  # the connection dropped on the way
        raise ConnectionLost(f"lost the connection to {ssh.label}: "
                             f"{exc or type(exc).__name__}") from None
    writer.close()
