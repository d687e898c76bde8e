"""Helpers for the native server's tests: a connection over in-memory streams, and a parser for
what comes back.

``connection`` runs one ``HTTPConnection`` on ``trio.testing`` memory streams, so the loop is
driven by feeding bytes (and, with ``autojump_clock``, its timeouts take no real time).
``parse_responses`` splits raw response bytes into ``(status, headers, body)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
import trio.testing

from triobg._server._config import ServerConfig
from triobg._server._connection import ASGIApp, ConnectionRegistry, HTTPConnection

WAIT = 5.0


@attrs.frozen
class Wire:
    """The client end of an in-memory connection, and the server's registry."""

    client: trio.StapledStream[Any, Any]
    registry: ConnectionRegistry
    finished: trio.Event

    async def send(self, data: bytes) -> None:
        await self.client.send_all(data)

    async def read_all(self) -> bytes:
        """Everything the server sends until it closes the connection."""
        chunks = []
        while data := await self.client.receive_some():
            chunks.append(data)
        return b"".join(chunks)

    async def read_responses(self, count: int) -> list[Response]:
        """Read until ``count`` whole responses have arrived."""
        data = b""
        while True:
            responses, _ = parse_responses(data)
            if len(responses) >= count:
                return responses
            chunk = await self.client.receive_some()
            if not chunk:
                raise AssertionError(f"closed after {len(responses)} responses: {data!r}")
            data += chunk


@asynccontextmanager
async def connection(
    app: ASGIApp, config: ServerConfig | None = None, *, lockstep: bool = False
) -> AsyncIterator[Wire]:
    """Run an ``HTTPConnection`` for ``app`` on memory streams for the block's duration."""
    pair = trio.testing.lockstep_stream_pair if lockstep else trio.testing.memory_stream_pair
    client, server = pair()
    registry = ConnectionRegistry()
    conn = HTTPConnection(
        app,
        server,
        config or ServerConfig(),
        registry,
        scheme="http",
        client=("10.0.0.1", 4321),
        server=("127.0.0.1", 8000),
    )
    finished = trio.Event()

    async def run() -> None:
        try:
            await conn.run()
        finally:
            finished.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        yield Wire(client, registry, finished)
        nursery.cancel_scope.cancel()


@attrs.frozen
class Response:
    """One parsed response."""

    status: int
    headers: dict[str, str]
    body: bytes


def parse_responses(data: bytes) -> tuple[list[Response], bytes]:
    """Whole responses at the start of ``data`` (content-length, chunked or none), and the rest."""
    responses: list[Response] = []
    while b"\r\n\r\n" in data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status < 200 or status in (204, 304):
            body = b""
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if len(rest) < length:
                break
            body, rest = rest[:length], rest[length:]
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            cursor = rest
            while True:
                size_line, sep, cursor = cursor.partition(b"\r\n")
                if not sep:
                    return responses, data
                size = int(size_line, 16)
                if len(cursor) < size + 2:
                    return responses, data
                body += cursor[:size]
                cursor = cursor[size + 2 :]
                if size == 0:
                    break
            rest = cursor
        else:
            body, rest = rest, b""
        responses.append(Response(status, headers, body))
        data = rest
    return responses, data


def request(method: str, target: str, body: bytes = b"", **headers: str) -> bytes:
    """Raw request bytes (Host added; Content-Length added for a body)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: test"]
    if body and "content_length" not in headers and "transfer_encoding" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def echo_scope_app() -> tuple[ASGIApp, list[dict[str, Any]]]:
    """An ASGI app that answers 200 with the body it read, recording each scope."""
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scopes.append(scope)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app, scopes
