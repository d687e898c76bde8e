"""``serve_native`` over real sockets on 127.0.0.1: start-up and lifespan, listeners (TCP, unix,
TLS), graceful shutdown with background tasks, and the hardening cases of issue 13 probed with
raw sockets as a client that does not mean well would."""

from __future__ import annotations

import logging
import shutil
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from _support import recording
from _wire import parse_responses, request
from hypercorn.config import Config
from hypercorn.utils import LifespanFailureError

import triobg
from triobg import App, BackgroundTasks, Request, Response, StreamingResponse
from triobg._cli import build_parser
from triobg._server import ServerConfig, serve_native
from triobg._server._listeners import parse_bind
from triobg.testing import HTTP11Connection, serve_live

pytestmark = pytest.mark.e2e

WAIT = 5.0


@asynccontextmanager
async def running(
    app: Any, bind: str | list[str] = "127.0.0.1:0", **options: Any
) -> AsyncIterator[tuple[list[str], Callable[[], Awaitable[None]]]]:
    """Serve ``app``; yields the URLs and an awaitable ``shutdown`` (called on leaving too)."""
    stop = trio.Event()
    stopped = trio.Event()

    async def run(task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve_native(
                app, bind=bind, shutdown_trigger=stop.wait, task_status=task_status, **options
            )
        finally:
            stopped.set()

    async def shutdown() -> None:
        stop.set()
        await stopped.wait()

    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(run)
        yield urls, shutdown
        stop.set()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def raw(port: int) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", port)


async def read_until_closed(stream: trio.abc.Stream, limit: int = 1_000_000) -> bytes:
    data = b""
    while len(data) < limit:
        try:
            chunk = await stream.receive_some()
        except trio.BrokenResourceError:  # a reset after the answer is a close, too
            break
        if not chunk:
            break
        data += chunk
    return data


async def send_until_refused(stream: trio.abc.Stream, chunk: bytes) -> int:
    """Bytes sent until the server closes (at most 200 MiB: the test fails long before)."""
    sent = 0
    while sent < 200 * 2**20:
        try:
            await stream.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return sent
        sent += len(chunk)
    raise AssertionError("the server kept reading")


def seed_app(**options: Any) -> tuple[App, list[str]]:
    app = App(**options)
    done: list[str] = []

    async def write_log(message: str) -> None:
        await trio.sleep(0.01)
        done.append(message)

    @app.post("/send-notification/{email}")
    async def send(email: str, tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(write_log, email)
        return {"message": "Message sent"}

    @app.post("/upload")
    async def upload(request: Request) -> int:
        return len(await request.body())

    @app.get("/big")
    async def big() -> Response:
        return Response(b"x" * 20_000_000, media_type="application/octet-stream")

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    return app, done


class TestStart:
    async def test_urls_lifespan_state_and_keep_alive(self) -> None:
        """Real ports come back after startup; lifespan state reaches requests; one connection
        carries many requests; shutdown runs the lifespan exit."""
        events: list[str] = []

        @asynccontextmanager
        async def lifespan(app: App) -> AsyncIterator[dict[str, str]]:
            events.append("start")
            yield {"greeting": "hi"}
            events.append("stop")

        app = App(lifespan=lifespan)

        @app.get("/state")
        async def state(request: Request) -> str:
            return str(request.state.greeting)

        with trio.fail_after(WAIT):
            async with running(app, ["127.0.0.1:0", "127.0.0.1:0"]) as (urls, shutdown):
                assert events == ["start"]
                assert len(urls) == 2 and all(port_of(u) for u in urls)
                async with await HTTP11Connection.connect("127.0.0.1", port_of(urls[0])) as c:
                    for _ in range(5):
                        assert (await c.request("GET", "/state")).json() == "hi"
                await shutdown()
        assert events == ["start", "stop"]

    async def test_failed_startup_raises_out_of_serve(self) -> None:
        """The same error ``triobg.serve`` raises on hypercorn, alone (not in a group)."""

        @asynccontextmanager
        async def lifespan(app: App) -> AsyncIterator[None]:
            await trio.lowlevel.checkpoint()
            raise RuntimeError("no database")
            yield  # type: ignore[unreachable]

        with trio.fail_after(WAIT), pytest.raises(LifespanFailureError, match="no database"):
            await serve_native(App(lifespan=lifespan), bind="127.0.0.1:0")

    async def test_unix_socket(self, tmp_path: Path) -> None:
        """``unix:/path`` binds a unix socket, reported as ``http://unix:/path``."""
        path = str(tmp_path / "s.sock")
        app, _ = seed_app()
        with trio.fail_after(WAIT):
            async with running(app, f"unix:{path}") as (urls, _):
                assert urls == [f"http://unix:{path}"]
                stream = await trio.open_unix_socket(path)
                async with stream:
                    await stream.send_all(request("GET", "/ping", connection="close"))
                    data = await read_until_closed(stream)
        assert data.endswith(b'"pong"')

    def test_bind_forms(self) -> None:
        """hypercorn's three bind forms; anything else is refused."""
        assert parse_bind("127.0.0.1:80") == ("tcp", "127.0.0.1:80")
        assert parse_bind("[::1]:80") == ("tcp", "[::1]:80")
        assert parse_bind("unix:/tmp/x") == ("unix", "/tmp/x")
        assert parse_bind("fd://3") == ("fd", 3)
        with pytest.raises(ValueError, match="host:port"):
            parse_bind("localhost")

    @pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
    async def test_tls(self, tmp_path: Path) -> None:
        """``certfile``/``keyfile`` serve HTTPS through ``trio.SSLStream``; scheme is https."""
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        await trio.run_process(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(key), "-out", str(cert)],
            capture_stdout=True, capture_stderr=True,
        )  # fmt: skip
        app = App()

        @app.get("/scheme")
        async def scheme(request: Request) -> str:
            return str(request.scope["scheme"])

        context = ssl.create_default_context(cafile=str(cert))
        with trio.fail_after(WAIT):
            async with running(app, certfile=str(cert), keyfile=str(key)) as (urls, _):
                assert urls[0].startswith("https://127.0.0.1:")
                tcp = await raw(port_of(urls[0]))
                stream = trio.SSLStream(tcp, context, server_hostname="127.0.0.1")
                async with stream:
                    await stream.send_all(request("GET", "/scheme", connection="close"))
                    data = await read_until_closed(stream)
        assert data.endswith(b'"https"')


class TestShutdown:
    async def test_every_task_completes_and_idle_connections_close_at_once(self) -> None:
        """Tasks finish inside the drain; an idle keep-alive connection does not hold the
        shutdown for its 60 s timeout."""
        app, done = seed_app()
        with trio.fail_after(WAIT):
            async with running(app, config=ServerConfig(keep_alive_timeout=60)) as (urls, stop):
                c = await HTTP11Connection.connect("127.0.0.1", port_of(urls[0]))
                async with c:
                    for index in range(20):
                        response = await c.request("POST", f"/send-notification/{index}")
                        assert response.status == 200
                    await stop()
        assert sorted(done, key=int) == [str(index) for index in range(20)]

    async def test_a_task_past_the_deadline_is_named(self) -> None:
        """At the drain deadline plus the margin, what still runs is cancelled and named."""
        app = App(drain_timeout=0.3)
        started = trio.Event()

        async def stuck() -> None:
            started.set()
            await trio.sleep_forever()

        @app.get("/stuck")
        async def handler(tasks: BackgroundTasks) -> str:
            tasks.add_task(stuck)
            return "ok"

        with recording("triobg", logging.INFO) as log, trio.fail_after(WAIT):
            async with running(app) as (urls, stop):
                c = await HTTP11Connection.connect("127.0.0.1", port_of(urls[0]))
                async with c:
                    assert (await c.request("GET", "/stuck")).status == 200
                    await started.wait()
                    await stop()
        (line,) = log.matching(r"test_server_serve.*stuck of GET /stuck cancelled while running")
        assert "deadline" in line

    async def test_a_slow_reader_cannot_hold_the_shutdown(self) -> None:
        """A client that asked for 20 MB and reads nothing: the server still stops by the
        drain deadline plus its margin."""
        app, _ = seed_app(drain_timeout=0.5)
        with trio.fail_after(WAIT):
            async with running(app) as (urls, stop):
                stream = await raw(port_of(urls[0]))
                async with stream:
                    await stream.send_all(request("GET", "/big"))
                    assert (await stream.receive_some(100)).startswith(b"HTTP/1.1 200 OK")
                    start = trio.current_time()
                    await stop()
                    assert trio.current_time() - start < 0.5 + 0.25 + 1.0


class TestHardening:
    """The raw-socket probes of issue 13, against the native server."""

    async def test_a_refused_200_mib_body_is_not_read(self) -> None:
        """413 from the Content-Length alone, no ``100 Continue``, then the connection closes
        although the client never sends a byte of the body."""
        app, _ = seed_app()
        with trio.fail_after(WAIT):
            async with running(app) as (urls, _):
                stream = await raw(port_of(urls[0]))
                async with stream:
                    await stream.send_all(
                        request(
                            "POST", "/upload", content_length=str(200 * 2**20),
                            expect="100-continue",
                        )
                    )  # fmt: skip
                    data = await read_until_closed(stream)
        assert data.startswith(b"HTTP/1.1 413 ")
        assert b"100 Continue" not in data

    async def test_an_endless_chunked_upload_to_a_404_is_cut(self) -> None:
        """The answer comes at once; the server then reads a bounded amount and closes, while
        the client would send forever."""
        app, _ = seed_app()
        chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
        with trio.fail_after(WAIT):
            async with running(app) as (urls, _):
                stream = await raw(port_of(urls[0]))
                async with stream:
                    await stream.send_all(request("POST", "/nowhere", transfer_encoding="chunked"))
                    sent = await send_until_refused(stream, chunk)
                    data = await read_until_closed(stream)
        assert data.startswith(b"HTTP/1.1 404 ")
        assert sent < 64 * 2**20

    async def test_a_stalled_body_is_cut_at_the_read_timeout(self) -> None:
        """Headers complete, body never comes: 408 after ``read_timeout``."""
        app, _ = seed_app()
        with trio.fail_after(WAIT):
            async with running(app, config=ServerConfig(read_timeout=0.3)) as (urls, _):
                stream = await raw(port_of(urls[0]))
                async with stream:
                    await stream.send_all(request("POST", "/upload", content_length="100"))
                    start = trio.current_time()
                    data = await read_until_closed(stream)
                    assert 0.3 <= trio.current_time() - start < 2
        assert data.startswith(b"HTTP/1.1 408 ")

    async def test_transfer_encoding_and_content_length_is_refused(self) -> None:
        """Request smuggling's favourite: 400 and closed, whatever follows."""
        app, _ = seed_app()
        smuggled = request("GET", "/ping")
        with trio.fail_after(WAIT):
            async with running(app) as (urls, _):
                stream = await raw(port_of(urls[0]))
                async with stream:
                    await stream.send_all(
                        request(
                            "POST", "/upload", b"0\r\n\r\n" + smuggled,
                            transfer_encoding="chunked", content_length="5",
                        )
                    )  # fmt: skip
                    data = await read_until_closed(stream)
        responses, _ = parse_responses(data)
        assert [r.status for r in responses] == [400]

    async def test_absolute_form_is_routed(self) -> None:
        """``GET http://host/ping`` is the ``/ping`` route, not a 404."""
        app, _ = seed_app()
        with trio.fail_after(WAIT):
            async with running(app) as (urls, _):
                stream = await raw(port_of(urls[0]))
                async with stream:
                    await stream.send_all(
                        request("GET", "http://example.com/ping", connection="close")
                    )
                    data = await read_until_closed(stream)
        assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b'"pong"')

    async def test_pipelined_requests_answer_in_order(self) -> None:
        """Ten requests in one write, ten answers in order on one connection."""
        app, _ = seed_app()
        batch = b"".join(request("POST", f"/send-notification/{i}") for i in range(10))
        with trio.fail_after(WAIT):
            async with running(app) as (urls, _):
                stream = await raw(port_of(urls[0]))
                async with stream:
                    await stream.send_all(batch + request("GET", "/ping", connection="close"))
                    data = await read_until_closed(stream)
        responses, rest = parse_responses(data)
        assert [r.status for r in responses] == [200] * 11 and rest == b""
        assert responses[-1].body == b'"pong"'


class TestHalfClose:
    async def test_a_client_that_half_closes_gets_the_whole_stream_and_its_tasks_run(
        self,
    ) -> None:
        """Issue 13 (8): nobody reads the socket while a response is written, so a client's EOF
        after its request does not cut a streaming response short."""
        app = App()
        ran = trio.Event()

        async def after() -> None:
            ran.set()

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(64):
                yield b"x" * 16384
                await trio.lowlevel.checkpoint()

        @app.get("/stream")
        async def stream_it(tasks: BackgroundTasks) -> StreamingResponse:
            tasks.add_task(after)
            return StreamingResponse(chunks())

        with trio.fail_after(WAIT):
            async with running(app) as (urls, _):
                stream = await raw(port_of(urls[0]))
                async with stream:
                    await stream.send_all(request("GET", "/stream"))
                    await stream.send_eof()
                    data = await read_until_closed(stream, limit=10_000_000)
                await ran.wait()
        (response,) = parse_responses(data)[0]
        assert len(response.body) == 64 * 16384


class TestWorkersShareAPort:
    @pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")
    async def test_two_servers_bind_one_port_with_reuse_port(self) -> None:
        """With ``reuse_port`` two servers listen on the same port (what ``--workers`` uses)."""
        config = ServerConfig(reuse_port=True)
        app, _ = seed_app()
        with trio.fail_after(WAIT):
            async with running(app, config=config) as (urls, _):
                port = port_of(urls[0])
                async with running(app, f"127.0.0.1:{port}", config=config) as (again, _):
                    assert port_of(again[0]) == port


class TestWiring:
    @pytest.mark.parametrize(("server", "native"), [(None, True), ("hypercorn", False)])
    async def test_serve_runs_native_by_default(self, server: str | None, native: bool) -> None:
        """``triobg.serve`` runs the native server unless asked for hypercorn."""
        app = App()

        @app.get("/which")
        async def which(request: Request) -> bool:
            return "triobg.unread_body_closes" in request.scope.get("extensions", {})

        options: dict[str, Any] = {} if server is None else {"server": server}
        with trio.fail_after(WAIT):
            async with serve_live(app, **options) as live, await live.connect() as conn:
                assert (await conn.request("GET", "/which")).json() is native

    async def test_a_hypercorn_config_needs_the_hypercorn_server(self) -> None:
        """A hypercorn ``Config`` with ``server="native"`` is a mistake, said so at once."""
        with pytest.raises(ValueError, match="server='hypercorn'"):
            await triobg.serve(App(), server="native", config=Config())

    def test_cli_has_a_server_option(self) -> None:
        """``python -m triobg --server hypercorn`` picks hypercorn; unset means native for one
        process (hypercorn's runner for ``--workers N`` unless ``--server native``)."""
        parser = build_parser()
        assert parser.parse_args(["m:app"]).server is None
        assert parser.parse_args(["m:app", "--server", "hypercorn"]).server == "hypercorn"
