"""The edges of a request over real hypercorn and raw sockets on 127.0.0.1 (issue 13).

What a hostile or odd client does at the byte level: bodies that are refused (they must not be
read), endless chunked uploads, ``Expect: 100-continue``, ``Transfer-Encoding`` together with
``Content-Length``, absolute-form targets, half-closed connections. The client here is a bare
socket so that the test sees exactly when bytes arrive and when the connection closes. Every
network step is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import h2.config
import h2.connection
import h2.events
import pytest
import trio
import trio.testing
from hypercorn.config import Config

from triobg import App, BackgroundTasks, Request, Response, StreamingResponse
from triobg.testing import LiveServer, serve_live

pytestmark = pytest.mark.e2e

LIMIT = 1024 * 1024  # the app's max_body_size
WAIT = 10  # seconds any single exchange may take before the test fails
MiB = 1024 * 1024


@attrs.frozen
class Item:
    name: str
    price: float


@attrs.frozen
class Answer:
    """One final response read off the socket (interim 1xx responses are kept aside)."""

    status: int
    headers: dict[str, str]
    body: bytes
    interim: tuple[int, ...]


def make_app(ran: trio.Event | None = None) -> App:
    app = App(max_body_size=LIMIT)
    ran = trio.Event() if ran is None else ran

    def never_runs() -> None:
        raise AssertionError("a task of a response the client did not get ran")

    async def mark_ran() -> None:
        ran.set()

    @app.post("/upload")
    async def upload(request: Request) -> int:
        return len(await request.body())

    @app.post("/ignore")
    async def ignore() -> str:
        return "ignored"

    @app.post("/items")
    async def create(item: Item) -> Item:
        return item

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    @app.get("/endless")
    async def endless(tasks: BackgroundTasks) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            while True:
                yield b"x" * 16384

        tasks.add_task(never_runs)
        return StreamingResponse(chunks())

    @app.get("/whole")
    async def whole(tasks: BackgroundTasks) -> Response:
        tasks.add_task(mark_ran)
        return Response(b"x" * MiB)

    @app.get("/where/{name}")
    async def where(name: str, request: Request) -> list[str]:
        return [name, request.headers["host"], str(request.url)]

    return app


@asynccontextmanager
async def live(**serve_kwargs: Any) -> AsyncIterator[LiveServer]:
    # These probes are of the hypercorn path (triobg's own server has its own, in
    # ``test_server_serve.py``): hypercorn keeps a connection whose unread body was drained.
    serve_kwargs.setdefault("server", "hypercorn")
    async with serve_live(make_app(), **serve_kwargs) as server:
        yield server


async def connect(server: LiveServer) -> trio.SocketStream:
    with trio.fail_after(WAIT):
        return await trio.open_tcp_stream(server.host, server.port)


async def read_to_close(stream: trio.SocketStream, limit: int = MiB) -> bytes:
    """Everything the server sends until it closes (a reset after the data counts as closed)."""
    data = bytearray()
    while len(data) < limit:
        try:
            chunk = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


async def read_answer(stream: trio.SocketStream) -> tuple[Answer, bytes]:
    """Read one final response (``Content-Length`` framed); returns it and any bytes after it."""
    buffer = bytearray()
    interim: list[int] = []
    while True:
        while b"\r\n\r\n" not in buffer:
            chunk = await stream.receive_some(65536)
            assert chunk, f"closed before a complete response: {bytes(buffer)!r}"
            buffer += chunk
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status < 200:
            interim.append(status)
            buffer = bytearray(rest)
            continue
        length = int(headers.get("content-length", "0"))
        buffer = bytearray(rest)
        while len(buffer) < length:
            chunk = await stream.receive_some(65536)
            assert chunk, "closed inside a response body"
            buffer += chunk
        body, after = bytes(buffer[:length]), bytes(buffer[length:])
        return Answer(status, headers, body, tuple(interim)), after


def head(method: str, target: str, *headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "host: test", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


async def send_until_refused(stream: trio.SocketStream, chunk: bytes, sent: list[int]) -> None:
    """Send ``chunk`` over and over until the server stops taking it (counted in ``sent``)."""
    try:
        while True:
            await stream.send_all(chunk)
            sent[0] += len(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


class TestRefusedBodiesAreNotRead:
    async def test_content_length_over_the_limit_is_refused_from_the_header(self) -> None:
        """A 200 MiB ``Content-Length`` gets its 413 before any body is sent, and is closed."""
        async with live() as server, await connect(server) as stream:
            with trio.fail_after(WAIT):
                await stream.send_all(
                    head("POST", "/upload", f"content-length: {200 * MiB}", "content-type: a/b")
                )
                answer, after = await read_answer(stream)
                assert answer.status == 413
                assert answer.headers["connection"] == "close"
                assert b"209715200 bytes (limit 1048576)" in answer.body
                assert after + await read_to_close(stream) == b""  # closed, nothing more

    async def test_body_sent_anyway_is_cut_off_not_read(self) -> None:
        """A client that pushes the 200 MiB body regardless is cut off after a few MiB."""
        async with live() as server, await connect(server) as stream:
            sent = [0]
            with trio.fail_after(WAIT):
                await stream.send_all(head("POST", "/upload", f"content-length: {200 * MiB}"))
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(send_until_refused, stream, b"x" * 65536, sent)
                    answer, _ = await read_answer(stream)
                    await read_to_close(stream)
                # The writer stopped by itself: the server closed the connection.
            assert answer.status == 413
            assert answer.headers["connection"] == "close"
            # Socket buffers on loopback hold a few MiB; reading the body would take all 200.
            assert sent[0] < 32 * MiB

    async def test_endless_chunked_upload_ends_with_413_and_a_closed_connection(self) -> None:
        """64 KiB chunks forever: a 413 once the count passes the limit, then the server closes."""
        chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
        async with live() as server, await connect(server) as stream:
            sent = [0]
            with trio.fail_after(WAIT):
                await stream.send_all(head("POST", "/upload", "transfer-encoding: chunked"))
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(send_until_refused, stream, chunk, sent)
                    answer, _ = await read_answer(stream)
                    await read_to_close(stream)
            assert answer.status == 413
            assert answer.headers["connection"] == "close"
            assert b"over 1048576 bytes" in answer.body
            assert sent[0] < 32 * MiB

    @pytest.mark.parametrize(
        ("target", "headers", "status"),
        [
            ("/nowhere", ("content-length: 10",), 404),
            ("/ping", ("content-length: 10",), 405),
            ("/items", ("content-length: 10", "content-type: text/plain"), 415),
            ("/upload", (f"content-length: {2**30}",), 413),
        ],
    )
    async def test_expect_continue_gets_the_refusal_without_sending_the_body(
        self, target: str, headers: tuple[str, ...], status: int
    ) -> None:
        """With ``Expect: 100-continue`` the refusal comes at once, no body needed, then close.

        (hypercorn 0.18 itself answers ``100 Continue`` as soon as it has the headers, before
        the app runs; triobg cannot withhold that, only make the refusal follow at once.)
        """
        async with live() as server, await connect(server) as stream:
            with trio.fail_after(WAIT):
                await stream.send_all(head("POST", target, "expect: 100-continue", *headers))
                answer, after = await read_answer(stream)
                assert after + await read_to_close(stream) == b""
            assert answer.status == status
            assert answer.headers["connection"] == "close"
            assert set(answer.interim) <= {100}


class TestSlowBodies:
    """A body must arrive at ``min_body_rate`` once ``body_grace`` has passed (408 if not)."""

    @staticmethod
    def slow_app() -> App:
        app = App(min_body_rate=100, body_grace=0.5)

        @app.post("/upload")
        async def upload(request: Request) -> int:
            return len(await request.body())

        return app

    async def test_a_trickled_body_is_408_and_closed(self) -> None:
        """One byte every 50 ms (20 bytes/s, under 100): cut off soon after the grace period.

        A server's read timeout never fires for it: every byte restarts that clock.
        """
        async with serve_live(self.slow_app()) as server, await connect(server) as stream:
            with trio.fail_after(WAIT):
                await stream.send_all(head("POST", "/upload", "content-length: 1000"))
                start = trio.current_time()

                async def trickle() -> None:
                    for _ in range(1000):
                        await stream.send_all(b"x")
                        await trio.sleep(0.05)  # the client's pace, not a wait for the server

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(trickle)
                    answer, _ = await read_answer(stream)
                    nursery.cancel_scope.cancel()
                elapsed = trio.current_time() - start
        assert answer.status == 408
        assert answer.headers["connection"] == "close"
        assert b"request body too slow" in answer.body
        assert elapsed < 3

    async def test_a_body_that_never_comes_is_408_after_the_grace_period(self) -> None:
        """Headers announce 10 bytes, none follow: 408 after half a second, not minutes."""
        async with serve_live(self.slow_app()) as server, await connect(server) as stream:
            with trio.fail_after(WAIT):
                await stream.send_all(head("POST", "/upload", "content-length: 10"))
                answer, after = await read_answer(stream)
                assert after + await read_to_close(stream) == b""
        assert answer.status == 408

    async def test_the_deadline_follows_the_bytes_received(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """With the default limits, 10 KiB received buys 10 s more than the 10 s grace."""
        app = App()

        @app.post("/upload")
        async def upload(request: Request) -> int:
            return len(await request.body())

        sent: list[dict[str, Any]] = []
        messages = [{"type": "http.request", "body": b"x" * 10240, "more_body": True}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/upload",
            "raw_path": b"/upload",
            "query_string": b"",
            "headers": [(b"content-length", b"20480")],
            "http_version": "1.1",
        }
        start = trio.current_time()
        await app(scope, receive, send)
        assert trio.current_time() - start == pytest.approx(20.0)
        assert sent[0]["status"] == 408
        assert (b"connection", b"close") in sent[0]["headers"]


class TestUnreadBodiesOfServedRequests:
    async def test_unread_body_within_the_limit_keeps_the_connection_alive(self) -> None:
        """A handler that ignores a 900 KiB body answers, and the connection serves the next
        request (hypercorn#314: unread bodies used to stall the connection)."""
        body = b"x" * (900 * 1024)
        async with live() as server, await connect(server) as stream:
            with trio.fail_after(WAIT):
                for _ in range(3):
                    await stream.send_all(
                        head("POST", "/ignore", f"content-length: {len(body)}") + body
                    )
                    answer, after = await read_answer(stream)
                    assert (answer.status, answer.body, after) == (200, b'"ignored"', b"")
                    assert "connection" not in answer.headers
                await stream.send_all(head("GET", "/ping"))
                answer, _ = await read_answer(stream)
                assert answer.body == b'"pong"'

    async def test_unread_body_over_the_limit_is_answered_and_closed(self) -> None:
        """The handler's answer still goes out, but an over-limit body is not read to its end."""
        async with live() as server, await connect(server) as stream:
            sent = [0]
            with trio.fail_after(WAIT):
                await stream.send_all(head("POST", "/ignore", f"content-length: {200 * MiB}"))
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(send_until_refused, stream, b"x" * 65536, sent)
                    answer, _ = await read_answer(stream)
                    await read_to_close(stream)
            assert (answer.status, answer.headers["connection"]) == (200, "close")
            assert sent[0] < 32 * MiB


class TestInheritedHTTPEdges:
    async def test_transfer_encoding_with_content_length_is_400_and_closed(self) -> None:
        """Both framings at once (request smuggling): a 400, and the connection is closed."""
        async with live() as server, await connect(server) as stream:
            with trio.fail_after(WAIT):
                await stream.send_all(
                    head("POST", "/upload", "transfer-encoding: chunked", "content-length: 5")
                    + b"0\r\n\r\n"
                )
                answer, after = await read_answer(stream)
                assert after + await read_to_close(stream) == b""
            assert answer.status == 400
            assert answer.headers["connection"] == "close"
            assert b"Transfer-Encoding and Content-Length" in answer.body

    async def test_a_request_smuggled_after_both_framings_is_never_served(self) -> None:
        """The request hidden behind the ambiguous body never reaches a handler: the server
        answers 400 and closes (or, when hypercorn's reader trips on the hidden bytes first,
        just closes), never a second response."""
        hits = [0]
        app = make_app()

        @app.get("/hidden")
        async def hidden() -> None:
            hits[0] += 1

        smuggled = b"0\r\n\r\nGET /hidden HTTP/1.1\r\nhost: test\r\n\r\n"
        async with serve_live(app, server="hypercorn") as server:
            for _ in range(10):
                async with await connect(server) as stream:
                    with trio.fail_after(WAIT):
                        await stream.send_all(
                            head(
                                "POST",
                                "/upload",
                                "transfer-encoding: chunked",
                                f"content-length: {len(smuggled)}",
                            )
                            + smuggled
                        )
                        received = await read_to_close(stream)
                assert received.count(b"HTTP/1.1 ") <= 1, received
                assert received == b"" or received.startswith(b"HTTP/1.1 400"), received
        assert hits == [0]

    async def test_absolute_form_target_is_routed_by_its_path(self) -> None:
        """``GET http://example.org/where/x?q=1`` reaches ``/where/{name}``, with the target's
        authority as the host (RFC 9112 section 3.2.2), and the connection stays usable."""
        async with live() as server, await connect(server) as stream:
            with trio.fail_after(WAIT):
                await stream.send_all(head("GET", "http://example.org:81/where/x?q=1"))
                answer, _ = await read_answer(stream)
                assert answer.status == 200, answer
                assert answer.body == b'["x","example.org:81","http://example.org:81/where/x?q=1"]'
                await stream.send_all(head("GET", "HTTPS://example.org"))
                answer, _ = await read_answer(stream)
                assert answer.status == 404  # routed as ``/``, which this app does not have
                assert b"Not Found" in answer.body

    async def test_no_server_header_by_default(self) -> None:
        """Responses do not advertise ``server: hypercorn-h11`` unless asked to."""
        async with live() as server, await connect(server) as stream:
            with trio.fail_after(WAIT):
                await stream.send_all(head("GET", "/ping"))
                answer, _ = await read_answer(stream)
            assert answer.status == 200
            assert "server" not in answer.headers

    async def test_server_header_can_be_turned_on(self) -> None:
        """``include_server_header=True`` on the hypercorn config given to ``serve`` is kept."""
        config = Config()
        config.include_server_header = True
        async with live(config=config) as server, await connect(server) as stream:
            with trio.fail_after(WAIT):
                await stream.send_all(head("GET", "/ping"))
                answer, _ = await read_answer(stream)
            assert answer.headers["server"] == "hypercorn-h11"


class TestHalfClose:
    async def test_half_closed_client_gets_a_whole_response_but_a_stream_stops(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A client that shuts down its sending side after the request counts as gone (hypercorn
        reports it as a disconnect): an endless stream stops and its task is discarded and
        named, while a complete 1 MiB response arrives whole and its task runs."""
        ran = trio.Event()
        caplog.set_level(logging.WARNING, logger="triobg.background")
        async with serve_live(make_app(ran), server="hypercorn") as server:
            async with await connect(server) as stream:
                with trio.fail_after(WAIT):
                    await stream.send_all(head("GET", "/whole"))
                    await stream.send_eof()
                    answer, after = await read_answer(stream)
                    assert (answer.status, len(answer.body), after) == (200, MiB, b"")
                    await ran.wait()
            async with await connect(server) as stream:
                with trio.fail_after(WAIT):
                    await stream.send_all(head("GET", "/endless"))
                    await stream.send_eof()
                    received = await read_to_close(stream, limit=64 * MiB)
            assert received.startswith(b"HTTP/1.1 200")
            assert len(received) < 64 * MiB  # the server stopped and closed, it did not run on
        assert "never_runs of GET /endless discarded" in caplog.text
        stats = server.app.background.statistics()
        assert (stats.completed, stats.discarded, stats.failed) == (1, 1, 0)


async def h2_request(
    server: LiveServer, method: str, path: str, length: int, sent: bytes
) -> tuple[int, bytes]:
    """One HTTP/2 request (prior knowledge, no TLS) announcing ``length`` body bytes and
    sending only ``sent`` of them; returns the status and body of the answer."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    headers = [
        (":method", method),
        (":path", path),
        (":scheme", "http"),
        (":authority", "test"),
        ("content-length", str(length)),
    ]
    conn.send_headers(1, headers)
    conn.send_data(1, sent, end_stream=len(sent) == length)
    status, body = 0, b""
    async with await connect(server) as stream:
        await stream.send_all(conn.data_to_send())
        while True:
            data = await stream.receive_some(65536)
            assert data, "closed before the answer"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    return status, body
            await stream.send_all(conn.data_to_send())


class TestHTTP2:
    async def test_refused_bodies_are_answered_at_once_over_http2(self) -> None:
        """Over HTTP/2 too, a refused body is not waited for: a 404 and a 413 arrive while the
        announced body is still unsent, and a served request still works."""
        async with live() as server:
            with trio.fail_after(WAIT):
                assert await h2_request(server, "POST", "/nowhere", 100_000, b"x" * 1000) == (
                    404,
                    b'{"detail":"Not Found"}',
                )
                status, body = await h2_request(server, "POST", "/upload", 200 * MiB, b"x")
                assert (status, b"limit 1048576" in body) == (413, True)
                assert await h2_request(server, "POST", "/ignore", 1000, b"x" * 1000) == (
                    200,
                    b'"ignored"',
                )
