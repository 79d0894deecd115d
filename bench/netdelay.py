"""A TCP forwarder on loopback that adds a fixed one-way delay in each direction.

The test cluster is on loopback (RTT ~0.05 ms); a real login node is 1-50 ms away.
Benchmarks route SSH through this to see how a round trip changes the figures.
Bandwidth is not limited; bytes keep their order.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    sender = asyncio.create_task(deliver())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, data))
    except OSError:
        pass
    finally:
        queue.put_nowait((loop.time() + delay, b""))
        with contextlib.suppress(OSError):
            await sender


@contextlib.asynccontextmanager
async def delayed_forwarder(target_host: str, target_port: int, rtt: float) -> AsyncIterator[int]:
    """Listen on a free loopback port (yielded) and forward to the target with ``rtt`` added."""

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(target_host, target_port)
        try:
            await asyncio.gather(
                _pump(client_r, server_w, rtt / 2), _pump(server_r, client_w, rtt / 2)
            )
        except asyncio.CancelledError:
            pass  # the forwarder is closing
        finally:
            for w in (client_w, server_w):
                w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
