"""WebSockets and Server-Sent Events over real hypercorn (``serve_live``) with real clients.

The WebSocket client is ``trio-websocket`` (a test-only dependency); frames a well-behaved
client would never send (invalid UTF-8, data after a close) are written by hand on a raw TCP
stream. Every wait is bounded; nothing sleeps to let things settle.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing
import trio_websocket
from _support import recording
from test_e2e_hypercorn import HYPERCORN, free_port, server_process

from triobg import (
    App,
    BackgroundTasks,
    EventSourceResponse,
    HTTPException,
    Query,
    ServerSentEvent,
    WebSocket,
    WebSocketLimits,
)
from triobg.testing import LiveServer, serve_live

pytestmark = pytest.mark.e2e

WAIT = 10.0
REPO_ROOT = Path(__file__).resolve().parent.parent


def chat_app() -> App:
    app = App(drain_timeout=2.0, websocket_limits=WebSocketLimits(max_message_size=1000))
    app.state.events = []
    app.state.closed = trio.Event()
    app.state.task_ran = trio.Event()

    async def record(what: str) -> None:
        app.state.events.append(what)
        app.state.task_ran.set()

    @app.websocket("/echo/{room}")
    async def echo(
        websocket: WebSocket, room: str, tasks: BackgroundTasks, token: str = Query("")
    ) -> None:
        if token != "ok":
            raise HTTPException(403, "bad token")
        await websocket.accept(
            subprotocol=websocket.subprotocols[0] if websocket.subprotocols else None
        )
        tasks.add_task(record, f"closed {room}")
        try:
            async with websocket.open_nursery() as nursery:
                nursery.start_soon(_ticker, websocket)
                async for message in websocket:
                    if message == "close please":
                        await websocket.close(4000, "as asked")
                        break
                    await websocket.send(message)
        finally:
            app.state.events.append(f"handler done {websocket.close_code}")
            app.state.closed.set()

    return app


async def _ticker(websocket: WebSocket) -> None:
    await trio.sleep_forever()  # a writer with nothing to say; cancelled when the client leaves


@attrs.frozen
class Address:
    """Where a server listens, for one that is not a ``LiveServer`` (a subprocess)."""

    host: str
    port: int


@asynccontextmanager
async def _connect(
    server: LiveServer | Address, path: str, **options: Any
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A trio-websocket client on a TCP stream the test owns and always closes.

    (trio-websocket 0.12 leaves its socket open when the server closes first, which pytest's
    warnings-as-errors then turns into a failure somewhere else.)
    """
    stream = await trio.open_tcp_stream(server.host, server.port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery, stream, server.host, path, **options
            )
            try:
                yield ws
            finally:
                await ws.aclose()
    except BaseExceptionGroup as group:
        found, _ = group.split(trio_websocket.ConnectionRejected)
        if found is None:
            raise
        leaf: BaseException = found
        while isinstance(leaf, BaseExceptionGroup):  # the reader task's error, unwrapped
            leaf = leaf.exceptions[0]
        raise leaf from None
    finally:
        await stream.aclose()


class TestWebSocketE2E:
    async def test_echo_subprotocol_and_server_close_code(self) -> None:
        """Text and binary echo, the chosen subprotocol, and the app's close code and reason."""
        app = chat_app()
        async with serve_live(app) as server:
            with trio.fail_after(WAIT):
                async with _connect(server, "/echo/lobby?token=ok", subprotocols=["chat.v1"]) as ws:
                    assert ws.subprotocol == "chat.v1"
                    await ws.send_message("hello")
                    assert await ws.get_message() == "hello"
                    await ws.send_message(b"\x00bin")
                    assert await ws.get_message() == b"\x00bin"
                    await ws.send_message("close please")
                    with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                        await ws.get_message()
                await app.state.closed.wait()
        assert _code(closed.value) == 4000
        assert closed.value.reason is not None and closed.value.reason.reason == "as asked"
        assert app.state.events == ["handler done 4000", "closed lobby"]

    async def test_failed_auth_is_an_http_denial(self) -> None:
        """A dependency's HTTPException before accept reaches the client as a 403 with detail."""
        async with serve_live(chat_app()) as server:
            with trio.fail_after(WAIT), pytest.raises(trio_websocket.ConnectionRejected) as no:
                async with _connect(server, "/echo/x?token=no"):
                    pass
        assert no.value.status_code == 403
        assert no.value.body == b'{"detail":"bad token"}'

    async def test_client_vanishing_cancels_the_writer_and_runs_the_tasks(self) -> None:
        """A client whose TCP connection just drops ends the handler; its tasks then run."""
        app = chat_app()
        async with serve_live(app) as server:
            with trio.fail_after(WAIT):
                stream = await _raw_upgrade(server, "/echo/gone?token=ok")
                await stream.aclose()  # no close frame: the connection simply goes
                await app.state.task_ran.wait()  # the task runs right after the handler
        assert app.state.events == ["handler done 1006", "closed gone"]
        assert app.websockets.statistics().open == 0

    async def test_oversized_message_is_closed_with_1009(self) -> None:
        """hypercorn refuses a message over the app's max_message_size with 1009."""
        app = chat_app()
        async with serve_live(app) as server:
            with trio.fail_after(WAIT):
                async with _connect(server, "/echo/big?token=ok") as ws:
                    await ws.send_message("x" * 1001)
                    with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                        await ws.get_message()
                await app.state.closed.wait()
        assert _code(closed.value) == 1009
        assert app.websockets.statistics().open == 0

    async def test_invalid_utf8_and_data_after_close_leave_nothing_running(self) -> None:
        """A text frame that is not UTF-8 ends the session; frames after a close are ignored."""
        app = chat_app()
        async with serve_live(app) as server:
            with trio.fail_after(WAIT):
                stream = await _raw_upgrade(server, "/echo/bad?token=ok")
                await stream.send_all(_frame(0x1, b"\xff\xfe not utf-8"))
                answer = await _read_until_closed(stream)
                await app.state.closed.wait()
            # Now a client that closes and keeps talking.
            app.state.closed = trio.Event()
            with trio.fail_after(WAIT):
                stream = await _raw_upgrade(server, "/echo/late?token=ok")
                await stream.send_all(_frame(0x8, struct.pack("!H", 1000)))
                await stream.send_all(_frame(0x1, b"after close") * 3)
                late_answer = await _read_until_closed(stream)
                await app.state.closed.wait()
        # hypercorn (wsproto) drops the connection on invalid UTF-8, without the 1007 close
        # frame RFC 6455 asks for; the handler sees the disconnect (1006) and ends.
        assert answer == b""
        # A client's close is answered with the same code; what follows it is ignored.
        assert late_answer == b"\x88\x02" + struct.pack("!H", 1000)
        assert app.state.events == [
            "handler done 1006",
            "closed bad",
            "handler done 1006",
            "closed late",
        ]
        assert app.websockets.statistics().open == 0

    async def test_shutdown_closes_open_sockets_with_1001_and_names_them(self) -> None:
        """A graceful shutdown closes each open socket with 1001 and logs which ones."""
        app = chat_app()
        with recording("triobg.websocket") as log:
            async with serve_live(app) as server:
                with trio.fail_after(WAIT):
                    async with _connect(server, "/echo/stay?token=ok") as ws:
                        await ws.send_message("ping")
                        assert await ws.get_message() == "ping"
                        started = trio.current_time()
                        server.begin_shutdown()
                        with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                            await ws.get_message()
                        took = trio.current_time() - started
                    await server.shutdown()
        assert _code(closed.value) == 1001
        assert took < app.background.drain_timeout
        assert log.matching(r"WebSocket /echo/stay \(.*echo, client 127\.0\.0\.1:\d+\) closed")
        assert app.state.events == ["handler done None", "closed stay"]

    async def test_client_that_never_reads_is_cut_and_the_writer_cancelled(self) -> None:
        """A client that stops reading is dropped by serve's send_timeout; the flood stops."""
        app = App()
        ended = trio.Event()
        sent = 0

        async def flood(websocket: WebSocket) -> None:
            nonlocal sent
            while True:
                await websocket.send_bytes(b"x" * 65536)
                sent += 1

        @app.websocket("/flood")
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()
            try:
                async with websocket.open_nursery() as nursery:
                    nursery.start_soon(flood, websocket)
                    await websocket.wait_disconnect()
            finally:
                ended.set()

        async with serve_live(app, send_timeout=1.0) as server:
            with trio.fail_after(WAIT):
                stream = await _raw_upgrade(server, "/flood")
                try:
                    await ended.wait()  # never reading a byte
                finally:
                    await stream.aclose()
        assert sent >= 1  # it was flooding, until the kernel gave up on the client
        assert app.websockets.statistics().open == 0

    async def test_plain_hypercorn_shutdown_closes_with_1001_and_names_the_socket(self) -> None:
        """Under hypercorn's CLI the graceful timeout cancels the socket: 1001 and a log line."""
        port = free_port()
        args = [
            *(HYPERCORN, "--worker-class", "trio", "--graceful-timeout", "1"),
            *("--bind", f"127.0.0.1:{port}", "examples.chat:app"),
        ]
        async with server_process(args, REPO_ROOT, PYTHONPATH=str(REPO_ROOT)) as process:
            await process.url()
            server = Address("127.0.0.1", port)
            with trio.fail_after(WAIT):
                async with _connect(server, "/chat/plain?name=ada") as ws:
                    assert await ws.get_message() == "ada joined"
                    process.signal(signal.SIGTERM)
                    with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                        await ws.get_message()
            assert await process.wait_exit() == 0
            out = process.output
        assert _code(closed.value) == 1001
        assert re.search(r"WebSocket /chat/plain \(examples\.chat\.chat, client .*\) cut off", out)
        assert "background task examples.chat.log_visit of WEBSOCKET /chat/plain cancelled" in out


class TestServerSentEventsE2E:
    async def test_events_keepalive_and_cancel_on_disconnect(self) -> None:
        """Frames and headers arrive as written; the generator is closed soon after the client."""
        app = App()
        state: dict[str, Any] = {"closed_at": None, "sent": 0}
        second = trio.Event()
        generator_closed = trio.Event()

        async def events() -> AsyncIterator[Any]:
            try:
                yield ServerSentEvent({"n": 1}, event="tick", id="1")
                yield "two\nlines"
                state["sent"] = 2
                second.set()
                await trio.sleep_forever()
            finally:
                state["closed_at"] = trio.current_time()
                generator_closed.set()

        @app.get("/events")
        async def stream() -> EventSourceResponse:
            return EventSourceResponse(events(), ping_interval=0.05)

        async with serve_live(app) as server:
            with trio.fail_after(WAIT):
                stream_ = await trio.open_tcp_stream(server.host, server.port)
                await stream_.send_all(b"GET /events HTTP/1.1\r\nhost: x\r\n\r\n")
                received = b""
                while b": ping" not in received:
                    received += await stream_.receive_some(65536)
                await second.wait()
                gone_at = trio.current_time()
                await stream_.aclose()
                await generator_closed.wait()
        head, _, body = received.partition(b"\r\n\r\n")
        assert b"content-type: text/event-stream; charset=utf-8" in head.lower()
        assert b"cache-control: no-cache" in head.lower()
        assert b'event: tick\nid: 1\ndata: {"n":1}\n\n' in body
        assert b"data: two\ndata: lines\n\n" in body
        assert state["closed_at"] - gone_at < 1.0


def _code(closed: trio_websocket.ConnectionClosed) -> int:
    assert closed.reason is not None
    return int(closed.reason.code)


# --- raw frames, for what a well-behaved client library would never send -----------------------


async def _raw_upgrade(server: LiveServer, path: str) -> trio.SocketStream:
    stream = await trio.open_tcp_stream(server.host, server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    await stream.send_all(
        (
            f"GET {path} HTTP/1.1\r\nhost: {server.host}\r\nupgrade: websocket\r\n"
            f"connection: Upgrade\r\nsec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await stream.receive_some(4096)
        assert chunk, f"closed during the handshake: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return stream


def _frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame (payloads under 126 bytes)."""
    assert len(payload) < 126
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


async def _read_until_closed(stream: trio.SocketStream) -> bytes:
    received = b""
    try:
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            received += chunk
    except trio.BrokenResourceError:
        pass
    await stream.aclose()
    return received
