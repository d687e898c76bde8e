"""``triobg.serve``, ``serve_live`` and the HTTP/1.1 test client, over real sockets.

Also the known hypercorn hazards: its 3 s ``graceful_timeout``, its shielded socket writes
(a client that stops reading), and a lifespan call that returns without a checkpoint.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.utils import LifespanFailureError

import triobg
import triobg.testing
from examples import embedded, graceful_shutdown
from triobg import App, BackgroundTasks, StreamingResponse
from triobg._responses import BODY_SLICE
from triobg._serve import DEFAULT_READ_TIMEOUT, DRAIN_MARGIN, STRAGGLER_MARGIN, build_config
from triobg.testing import HTTP11Connection, HTTP11Error, serve_live

WAIT = 5


def fail(message: str) -> None:
    raise RuntimeError(message)


def read_outputs(directory: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in directory.iterdir()}


def port_of(url: str) -> int:
    return int(url.rpartition(":")[2])


class TestPublicNames:
    def test_serve_and_live_helpers_are_exported(self) -> None:
        """``serve`` and the live-test helpers are public where users look for them."""
        assert triobg.serve is triobg._serve.serve
        assert "serve" in triobg.__all__
        for name in ("serve_live", "LiveServer", "HTTP11Connection", "HTTP11Response"):
            assert name in triobg.testing.__all__
            assert hasattr(triobg.testing, name)


class TestBuildConfig:
    def test_graceful_timeout_follows_the_drain_timeout(self) -> None:
        """hypercorn's 3 s never cuts the drain short: it gets the drain plus a margin."""
        config = build_config(App(drain_timeout=30))
        assert config.graceful_timeout == 30 + DRAIN_MARGIN
        assert config.shutdown_timeout > config.graceful_timeout
        assert build_config(App(drain_timeout=120)).shutdown_timeout >= 120

    def test_arguments_win_and_the_given_config_is_not_modified(self) -> None:
        """A given Config is a starting point, copied; arguments override it."""
        base = Config()
        base.keep_alive_timeout = 11
        base.h11_max_incomplete_size = 1234
        config = build_config(
            App(), bind=["127.0.0.1:0", "127.0.0.1:1"], config=base, graceful_timeout=7
        )
        assert config.bind == ["127.0.0.1:0", "127.0.0.1:1"]
        assert (config.keep_alive_timeout, config.h11_max_incomplete_size) == (11, 1234)
        assert config.graceful_timeout == 7
        assert base.bind == ["127.0.0.1:8000"]
        assert base.graceful_timeout == 3

    def test_timeouts_set_on_purpose_in_the_config_are_kept(self) -> None:
        """Only hypercorn's class defaults are replaced, not values a user chose."""
        base = Config()
        base.graceful_timeout = 1.5
        base.shutdown_timeout = 9
        config = build_config(App(drain_timeout=30), config=base)
        assert (config.graceful_timeout, config.shutdown_timeout) == (1.5, 9)

    def test_access_log_and_tls_options(self) -> None:
        """``access_log`` picks hypercorn's access logger; cert and key reach hypercorn."""
        config = build_config(App(), access_log=True, certfile="c.pem", keyfile="k.pem")
        assert config.accesslog is logging.getLogger("hypercorn.access")
        assert (config.certfile, config.keyfile) == ("c.pem", "k.pem")
        assert build_config(App()).accesslog is None

    def test_read_timeout_is_set_by_default_and_can_be_turned_off(self) -> None:
        """hypercorn never times out a read; serve does, in whole seconds, unless told not to."""
        assert build_config(App()).read_timeout == DEFAULT_READ_TIMEOUT
        assert build_config(App(), read_timeout=2.5).read_timeout == 3
        assert build_config(App(), read_timeout=None).read_timeout is None
        for bad in (0, -1, float("inf"), float("nan")):
            with pytest.raises(ValueError, match="read_timeout"):
                build_config(App(), read_timeout=bad)

    def test_negative_graceful_timeout_is_refused(self) -> None:
        with pytest.raises(ValueError, match="graceful_timeout"):
            build_config(App(), graceful_timeout=-1)

    @pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="Linux only")
    def test_send_timeout_is_set_on_the_listening_sockets(self) -> None:
        """Accepted connections inherit TCP_USER_TIMEOUT from the listener."""
        config = build_config(App(), bind="127.0.0.1:0", send_timeout=2.5)
        sockets = config.create_sockets()
        try:
            (sock,) = sockets.insecure_sockets
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 2500
        finally:
            for sock in sockets.insecure_sockets:
                sock.close()


def hello_app(**options: Any) -> App:
    app = App(**options)

    @app.get("/")
    async def root() -> str:
        return "hello"

    return app


class TestServe:
    async def test_start_reports_the_bound_urls_with_real_ports(self) -> None:
        """``nursery.start(serve, ...)`` returns once the sockets listen, with real ports."""
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(
                functools.partial(
                    triobg.serve,
                    hello_app(),
                    bind=["127.0.0.1:0", "127.0.0.1:0"],
                    shutdown_trigger=stop.wait,
                )
            )
            assert len(urls) == 2
            for url in urls:
                assert url.startswith("http://127.0.0.1:")
                assert port_of(url) != 0
                async with await HTTP11Connection.connect("127.0.0.1", port_of(url)) as conn:
                    assert (await conn.request("GET", "/")).json() == "hello"
            stop.set()

    async def test_shutdown_trigger_runs_lifespan_shutdown_and_returns(self) -> None:
        """A graceful shutdown ends with the lifespan's exit, after the drain."""
        events: list[str] = []

        @contextlib.asynccontextmanager
        async def lifespan(app: App) -> AsyncIterator[None]:
            events.append("startup")
            yield
            events.append(f"shutdown, tasks left: {app.background.statistics().running}")

        app = App(lifespan=lifespan, drain_timeout=1)

        async def task() -> None:
            await trio.sleep(0.05)
            events.append("task done")

        @app.get("/")
        async def root(tasks: BackgroundTasks) -> str:
            tasks.add_task(task)
            return "ok"

        async with serve_live(app) as server, await server.connect() as conn:
            await conn.request("GET", "/")
            with trio.fail_after(WAIT):
                await server.shutdown()
        assert events == ["startup", "task done", "shutdown, tasks left: 0"]

    async def test_cancelling_the_enclosing_nursery_stops_at_once_and_names_tasks(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Cancellation is not a graceful shutdown: prompt, and every task cut off is named."""
        app = App(drain_timeout=60)
        started = trio.Event()

        async def endless() -> None:
            started.set()
            await trio.sleep_forever()

        @app.get("/")
        async def root(tasks: BackgroundTasks) -> str:
            tasks.add_task(endless)
            tasks.add_task(endless)
            return "ok"

        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                urls = await nursery.start(functools.partial(triobg.serve, app, bind="127.0.0.1:0"))
                async with await HTTP11Connection.connect("127.0.0.1", port_of(urls[0])) as c:
                    await c.request("GET", "/")
                await started.wait()
                nursery.cancel_scope.cancel()
        stats = app.background.statistics()
        assert (stats.accepted, stats.cancelled) == (2, 2)
        messages = [r.getMessage() for r in caplog.records if r.name == "triobg.background"]
        assert any("endless of GET / cancelled while running" in m for m in messages)
        assert any("endless of GET / cancelled before it started" in m for m in messages)

    async def test_failed_startup_raises_out_of_serve(self) -> None:
        """A lifespan that fails at startup stops ``serve`` with hypercorn's error, cleanly."""

        @contextlib.asynccontextmanager
        async def lifespan(app: App) -> AsyncIterator[None]:
            fail("no database")
            yield

        app = App(lifespan=lifespan)
        with trio.fail_after(WAIT), pytest.raises(LifespanFailureError, match="no database"):
            await triobg.serve(app, bind="127.0.0.1:0")

    async def test_graceful_timeout_shorter_than_the_drain_cuts_tasks_short(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Why ``serve`` raises graceful_timeout: hypercorn cancels connections, tasks and all.

        The task is still named, but it got 0.2 s instead of the app's 30 s drain.
        """
        app = App(drain_timeout=30)
        started = trio.Event()

        async def long_task() -> None:
            started.set()
            await trio.sleep_forever()

        @app.get("/")
        async def root(tasks: BackgroundTasks) -> str:
            tasks.add_task(long_task)
            return "ok"

        async with serve_live(app, graceful_timeout=0.2) as server:
            async with await server.connect() as conn:
                await conn.request("GET", "/")
            with trio.fail_after(WAIT):
                await started.wait()
                await server.shutdown()
        assert app.background.statistics().cancelled == 1
        [message] = [r.getMessage() for r in caplog.records if "cancelled while" in r.message]
        assert "long_task of GET / cancelled while running" in message
        assert "drain deadline passed" not in message  # hypercorn cut it, not the drain


def streaming_forever_app(flowing: trio.Event) -> App:
    """An endless response; ``flowing`` is set once chunks are going out."""
    app = App(drain_timeout=0.1)

    async def forever() -> AsyncIterator[bytes]:
        block = b"x" * 65536
        sent = 0
        while True:
            yield block
            sent += 1
            if sent == 2:
                flowing.set()

    @app.get("/firehose")
    async def firehose() -> StreamingResponse:
        return StreamingResponse(forever())

    return app


@pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="Linux only")
class TestClientThatStopsReading:
    """A client asks for an endless response and never reads it.

    Once the response is flowing, loopback fills both socket buffers within milliseconds, far
    inside the 0.1 s graceful timeout; after that the server's task sits in hypercorn's
    shielded ``send_all``, where hypercorn's own cancellation cannot reach it.
    """

    async def start_firehose(
        self, server: triobg.testing.LiveServer, flowing: trio.Event
    ) -> HTTP11Connection:
        conn = await server.connect()
        await conn.send_request("GET", "/firehose")
        with trio.fail_after(WAIT):
            await flowing.wait()
        return conn

    async def test_send_timeout_bounds_the_shutdown(self) -> None:
        """The kernel's send timeout (TCP_USER_TIMEOUT) ends the stuck send."""
        flowing = trio.Event()
        app = streaming_forever_app(flowing)
        async with serve_live(app, graceful_timeout=0.1, send_timeout=0.5) as server:
            conn = await self.start_firehose(server, flowing)
            async with conn:
                start = trio.current_time()
                with trio.fail_after(WAIT):
                    await server.shutdown()
                assert trio.current_time() - start < 3

    async def test_without_send_timeout_the_stalled_client_is_cut(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With no send timeout, serve cuts the stalled connection after the graceful timeout.

        hypercorn's write is shielded from its own cancellation, so before the cut existed this
        shutdown lasted as long as the client kept its socket open.
        """
        flowing = trio.Event()
        app = streaming_forever_app(flowing)
        hypercorn = {"server": "hypercorn"}  # the native server bounds every write itself
        async with serve_live(app, graceful_timeout=0.1, send_timeout=None, **hypercorn) as server:
            conn = await self.start_firehose(server, flowing)
            async with conn:
                start = trio.current_time()
                with trio.fail_after(WAIT):
                    await server.shutdown()
                assert trio.current_time() - start < 0.1 + STRAGGLER_MARGIN + 2
        assert "closed 1 connection(s) still open at the end of the graceful shutdown" in (
            caplog.text
        )


@pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="Linux only")
class TestSlowReader:
    """A client that does read, but slowly: the kernel's send timeout never fires for it."""

    async def test_a_slow_reader_cannot_hold_the_shutdown(self) -> None:
        """Shutdown ends about a second after the graceful timeout, not when the client is done.

        20 MB read 2 KB at a time every 20 ms would take over three minutes.
        """
        app = App(drain_timeout=0.5)
        body = b"x" * (20 * 1024 * 1024)

        @app.get("/big")
        async def big() -> triobg.Response:
            return triobg.Response(body, media_type="application/octet-stream")

        async with serve_live(app) as server:
            client = trio.socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            received = 0
            async with trio.open_nursery() as nursery:
                await client.connect((server.host, server.port))
                await client.send(b"GET /big HTTP/1.1\r\nhost: test\r\n\r\n")
                first = await client.recv(2048)
                assert first.startswith(b"HTTP/1.1 200")

                async def read_slowly() -> None:
                    nonlocal received
                    with trio.fail_after(WAIT * 2):
                        while data := await client.recv(2048):
                            received += len(data)
                            await trio.sleep(0.02)  # the client's own pace, not a wait

                nursery.start_soon(read_slowly)
                start = trio.current_time()
                with trio.fail_after(WAIT):
                    await server.shutdown()
                elapsed = trio.current_time() - start
            client.close()
        graceful = 0.5 + DRAIN_MARGIN
        assert elapsed < graceful + STRAGGLER_MARGIN + 2, elapsed
        assert received < len(body)


class TestReadTimeout:
    async def test_headers_then_silence_is_closed_after_the_read_timeout(self) -> None:
        """A request announcing a body that never comes loses its connection (was: for ever)."""
        app = App()

        @app.post("/upload")
        async def upload(request: triobg.Request) -> dict[str, int]:
            return {"size": len(await request.body())}

        async with serve_live(app, read_timeout=0.5) as server:
            with trio.socket.socket() as client:
                await client.connect((server.host, server.port))
                await client.send(
                    b"POST /upload HTTP/1.1\r\nhost: test\r\ncontent-length: 10\r\n\r\n"
                )
                start = trio.current_time()
                with trio.fail_after(WAIT):
                    while await client.recv(4096):
                        pass
                assert trio.current_time() - start >= 0.5
        assert app.background.statistics().accepted == 0


class TestLargeBodies:
    @pytest.mark.parametrize("size", [BODY_SLICE, 2 * BODY_SLICE, 3 * BODY_SLICE + 5, 7])
    async def test_bodies_sent_in_slices_arrive_whole(self, size: int) -> None:
        """A plain body larger than one slice goes out in slices and arrives byte for byte."""
        app = App()
        body = bytes(range(256)) * (size // 256) + b"z" * (size % 256)

        @app.get("/body")
        async def get_body() -> triobg.Response:
            return triobg.Response(body)

        async with serve_live(app) as server, await server.connect() as conn:
            response = await conn.request("GET", "/body")
            assert response.body == body
            assert response.header("content-length") == str(size)


class TestLifespanCheckpoints:
    async def run_lifespan(self, app: App, messages: list[dict[str, Any]]) -> list[str]:
        sent: list[str] = []
        queue = iter(messages)

        async def receive() -> dict[str, Any]:
            return next(queue)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])

        with trio.testing.assert_checkpoints():
            await app({"type": "lifespan", "state": {}}, receive, send)
        return sent

    async def test_every_way_out_of_the_lifespan_checkpoints(self) -> None:
        """hypercorn's trio worker crashes if the lifespan call returns without a checkpoint."""

        @contextlib.asynccontextmanager
        async def failing(app: App) -> AsyncIterator[None]:
            fail("startup failed")
            yield

        startup, shutdown = {"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}
        assert await self.run_lifespan(App(), [startup, shutdown]) == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]
        assert await self.run_lifespan(App(lifespan=failing), [startup]) == [
            "lifespan.startup.failed"
        ]
        assert await self.run_lifespan(App(), [shutdown]) == []

    async def test_the_hazard_is_real_in_hypercorn(self) -> None:
        """A raw ASGI app that returns from lifespan at once makes hypercorn's serve fail."""
        from hypercorn.trio import serve

        async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
            return None

        config = Config()
        config.bind = ["127.0.0.1:0"]
        app: Any = bare

        async def start_and_stop() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(functools.partial(serve, app, config))
                nursery.cancel_scope.cancel()

        with trio.fail_after(WAIT), pytest.raises(BaseExceptionGroup) as info:
            await start_and_stop()
        group = info.value
        assert isinstance(group, BaseExceptionGroup)
        assert group.subgroup(trio.ClosedResourceError) is not None


class TestServeLive:
    async def test_an_error_in_the_block_stops_the_server_and_comes_out_as_itself(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Leaving with an exception cancels at once (no drain wait) and re-raises it plainly."""
        app = App(drain_timeout=60)
        started = trio.Event()

        async def endless() -> None:
            started.set()
            await trio.sleep_forever()

        @app.get("/")
        async def root(tasks: BackgroundTasks) -> str:
            tasks.add_task(endless)
            return "ok"

        async def fail_inside() -> None:
            async with serve_live(app) as server, await server.connect() as conn:
                await conn.request("GET", "/")
                await started.wait()
                raise KeyError("boom")

        with trio.fail_after(WAIT), pytest.raises(KeyError, match="boom"):
            await fail_inside()
        assert app.background.statistics().cancelled == 1


class TestHTTP11Connection:
    async def test_early_close_is_reported_not_hung_on(self) -> None:
        """A server that closes without answering gives HTTP11Error, within the timeout."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]

        async def hang_up(stream: trio.SocketStream) -> None:
            await stream.receive_some(1024)
            await stream.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(trio.serve_listeners, hang_up, listeners))
            async with await HTTP11Connection.connect("127.0.0.1", port, timeout=WAIT) as conn:
                with pytest.raises(HTTP11Error, match="closed"):
                    await conn.request("GET", "/")
            nursery.cancel_scope.cancel()

    async def test_silent_server_times_out(self) -> None:
        """Every read is bounded: a server that never answers fails the request."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]

        async def silent(stream: trio.SocketStream) -> None:
            async with stream:
                await trio.sleep_forever()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(trio.serve_listeners, silent, listeners))
            async with await HTTP11Connection.connect("127.0.0.1", port, timeout=0.2) as conn:
                with pytest.raises(trio.TooSlowError):
                    await conn.request("GET", "/")
            nursery.cancel_scope.cancel()

    async def test_head_json_and_async_chunked_body(self) -> None:
        """HEAD has no body; JSON bodies and async-iterable chunked uploads round-trip."""
        app = App()

        @app.post("/echo")
        async def echo(request: triobg.Request) -> Any:
            return {"got": (await request.body()).decode()}

        async def parts() -> AsyncIterator[bytes]:
            for part in (b"a", b"", b"bc"):
                yield part

        async with serve_live(app) as server, await server.connect() as conn:
            head = await conn.request("HEAD", "/echo")
            assert head.status == 405
            assert head.body == b""
            assert (await conn.request("POST", "/echo", json=[1])).json() == {"got": "[1]"}
            response = await conn.request("POST", "/echo", body=parts())
            assert response.json() == {"got": "abc"}
            assert response.header("Content-Type") == "application/json"
            with pytest.raises(HTTP11Error, match="no request"):
                await conn.read_response()


class TestExamples:
    @pytest.fixture
    def out(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """The examples write to the working directory: this test's ``tmp_path``."""
        monkeypatch.chdir(tmp_path)
        return tmp_path

    async def test_embedded_program_shuts_its_api_down_itself(self, out: Path) -> None:
        """Jobs posted over HTTP are done by the program's worker, which then stops the API."""
        result: list[embedded.Progress] = []

        async def program(task_status: trio.TaskStatus[list[str]]) -> None:
            result.append(
                await embedded.run(bind="127.0.0.1:0", jobs_wanted=3, task_status=task_status)
            )

        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                urls: list[str] = await nursery.start(program)
                async with await HTTP11Connection.connect("127.0.0.1", port_of(urls[0])) as c:
                    for text in ("one", "two", "three"):
                        response = await c.request("POST", "/jobs", body=text.encode())
                        assert response.status == 202
                # No shutdown from the test: the program stops itself after the third job.
        [progress] = result
        assert (progress.accepted, progress.done) == (3, 3)
        assert read_outputs(out) == {
            "job-1.txt": "ONE",
            "job-2.txt": "TWO",
            "job-3.txt": "THREE",
        }

    async def test_graceful_shutdown_example_logs_the_task_it_cut_off(
        self, out: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The quick task completes within the drain; the slow one is cancelled and named."""
        monkeypatch.setattr(graceful_shutdown.app.background, "drain_timeout", 0.3)
        with trio.fail_after(WAIT):
            stats = await graceful_shutdown.demo()
        assert (stats.completed, stats.cancelled) == (1, 1)
        assert (out / "quick.txt").exists()
        assert not (out / "slow.txt").exists()
        log = (out / "shutdown.log").read_text()
        assert "slow_report of GET /report cancelled while running" in log
        assert "drain finished: 1 completed, 0 failed, 1 cancelled" in log


@pytest.mark.usefixtures("either_server")
class TestNoBodyStatuses:
    async def test_204_and_304_go_out_without_a_body(self) -> None:
        """A ``None`` returned with ``status_code=204`` is no ``null`` body, nor is a 304's.

        Found by schemathesis on the native server, where h11 refused the 4 bytes of ``null``
        for a 204 and the response never went out.
        """
        app = App()

        @app.delete("/items/{n}", status_code=204)
        async def delete_item(n: int) -> None:
            return None

        @app.get("/cached")
        async def cached() -> triobg.Response:
            return triobg.Response(b"stale", status_code=304)

        async with serve_live(app) as server, await server.connect() as conn:
            deleted = await conn.request("DELETE", "/items/1")
            not_modified = await conn.request("GET", "/cached")
            again = await conn.request("DELETE", "/items/2")  # the connection is still good
        assert (deleted.status, deleted.body) == (204, b"")
        assert (not_modified.status, not_modified.body) == (304, b"")
        assert again.status == 204

    async def test_204_and_304_carry_no_content_type_and_head_keeps_its_headers(
        self, tmp_path: Path
    ) -> None:
        """No body, no ``Content-Type``: returned values, JSON/plain/file responses and a static
        file's 304; a HEAD of a 200 keeps the type and length its GET would have."""
        (tmp_path / "a.txt").write_text("file")
        app = App()

        @app.delete("/items/{n}", status_code=204)
        async def delete_item(n: int) -> None:
            return None

        @app.get("/json")
        async def json_204() -> triobg.JSONResponse:
            return triobg.JSONResponse(None, status_code=204)

        @app.get("/plain")
        async def plain_304() -> triobg.PlainTextResponse:
            return triobg.PlainTextResponse("stale", status_code=304)

        @app.get("/file")
        async def file_304() -> triobg.FileResponse:
            return triobg.FileResponse(tmp_path / "a.txt", status_code=304)

        @app.get("/item")
        async def item() -> dict[str, int]:
            return {"n": 1}

        app.mount("/static", triobg.StaticFiles(directory=tmp_path))
        async with serve_live(app) as server, await server.connect() as conn:
            fresh = await conn.request("GET", "/static/a.txt")
            etag = fresh.header("etag") or ""
            no_bodies = [
                await conn.request("DELETE", "/items/1"),
                await conn.request("GET", "/json"),
                await conn.request("GET", "/plain"),
                await conn.request("GET", "/file"),
                await conn.request("GET", "/static/a.txt", headers={"if-none-match": etag}),
            ]
            head = await conn.request("HEAD", "/item")
        assert [(r.status, r.header("content-type")) for r in no_bodies] == [
            (204, None), (204, None), (304, None), (304, None), (304, None)
        ]  # fmt: skip
        assert [r.header("content-length") for r in no_bodies] == [None] * 5
        assert no_bodies[-1].header("etag") == etag
        assert (head.status, head.body) == (200, b"")
        assert head.header("content-type") == "application/json"
        assert head.header("content-length") == "7"


class TestServerChoice:
    async def test_an_app_with_websocket_routes_is_served_by_hypercorn(self) -> None:
        """triobg's own server speaks HTTP/1.1 only, so by default an app with WebSocket routes
        goes to hypercorn, and its sockets work without a ``server=`` of its own."""
        from trio_websocket import open_websocket_url

        app = App()

        @app.websocket("/echo")
        async def echo(websocket: triobg.WebSocket) -> None:
            await websocket.accept()
            await websocket.send_text(await websocket.receive_text())
            await websocket.close()

        async with serve_live(app) as server:
            url = server.url.replace("http://", "ws://") + "/echo"
            with trio.fail_after(WAIT):
                async with open_websocket_url(url) as socket:
                    await socket.send_message("hello")
                    assert await socket.get_message() == "hello"
