# A minimal HTTP/1.1 keep-alive client: h11 over a trio TCP stream, for 127.0.0.1 only.
#
# Used to read ``GET /count`` and to time single requests in the latency test, where we need to
# know exactly which connection a request travels on. Load generation is wrk's job, not this.
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import h11
import trio

HOST = "127.0.0.1"
#: Seconds any single request may take before the benchmark gives up on the server.
REQUEST_TIMEOUT = 10.0


@attrs.define
class Connection:
    """One keep-alive connection; requests on it are strictly sequential."""

    _stream: trio.SocketStream
    _h11: h11.Connection = attrs.field(factory=lambda: h11.Connection(h11.CLIENT))

    async def request(self, method: str, target: str) -> tuple[int, bytes]:
        """Send a bodiless request and read the whole response.

        Returns:
            The status code and the body.

        Raises:
            trio.TooSlowError: If the response has not fully arrived within ``REQUEST_TIMEOUT``.
        """
        with trio.fail_after(REQUEST_TIMEOUT):
            headers = [("host", HOST), ("content-length", "0")]
            await self._stream.send_all(
                self._h11.send(h11.Request(method=method, target=target, headers=headers))
                + self._h11.send(h11.EndOfMessage())
            )
            status, body = 0, bytearray()
            while True:
                event = self._h11.next_event()
                if event is h11.NEED_DATA:
                    self._h11.receive_data(await self._stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    self._h11.start_next_cycle()
                    return status, bytes(body)
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionError("server closed the connection mid-response")


@asynccontextmanager
async def connect(port: int) -> AsyncIterator[Connection]:
    """Open a connection to ``127.0.0.1:port`` for the duration of the block."""
    stream = await trio.open_tcp_stream(HOST, port)
    async with stream:
        yield Connection(stream)


async def get_json(port: int, target: str) -> Any:
    """``GET target`` on a fresh connection and decode the JSON body.

    Raises:
        ConnectionError: If the status is not 200.
    """
    async with connect(port) as conn:
        status, body = await conn.request("GET", target)
    if status != 200:
        raise ConnectionError(f"GET {target} answered {status}: {body[:200]!r}")
    return json.loads(body)


async def completed_tasks(port: int) -> int:
    """The server's count of finished background tasks (its ``GET /count`` route)."""
    return int((await get_json(port, "/count"))["count"])
