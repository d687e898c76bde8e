"""The native server's connection loop, driven by feeding bytes over in-memory streams:
keep-alive, pipelining, limits and timeouts (timeouts on ``autojump_clock``: no real waiting)."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from _wire import WAIT, connection, echo_scope_app, request

from triobg import App, BackgroundTasks, Request
from triobg._server._config import ServerConfig


def ping_app() -> App:
    app = App()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    return app


class TestKeepAlive:
    async def test_requests_on_one_connection(self) -> None:
        """Three requests one after another on one connection, each answered in full."""
        app, scopes = echo_scope_app()
        with trio.fail_after(WAIT):
            async with connection(app) as wire:
                for index in range(3):
                    await wire.send(request("POST", f"/n/{index}", b"body%d" % index))
                    (response,) = await wire.read_responses(1)
                    assert response.status == 200
                    assert response.body == b"body%d" % index
                    assert response.headers["content-length"] == str(len(response.body))
                    assert "connection" not in response.headers
        assert [scope["path"] for scope in scopes] == ["/n/0", "/n/1", "/n/2"]
        assert scopes[0]["client"] == ("10.0.0.1", 4321)
        assert scopes[0]["server"] == ("127.0.0.1", 8000)
        assert scopes[0]["scheme"] == "http"

    async def test_connection_close_from_the_client_is_honoured(self) -> None:
        """``Connection: close`` gets its response and then the server closes."""
        with trio.fail_after(WAIT):
            async with connection(ping_app()) as wire:
                await wire.send(request("GET", "/ping", connection="close"))
                data = await wire.read_all()
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"connection: close" in data.lower()

    async def test_http_1_0_closes_after_the_response(self) -> None:
        """An HTTP/1.0 request without keep-alive is answered and closed."""
        with trio.fail_after(WAIT):
            async with connection(ping_app()) as wire:
                await wire.send(b"GET /ping HTTP/1.0\r\n\r\n")
                data = await wire.read_all()
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert data.endswith(b'{"pong":"yes"}')

    async def test_absolute_form_target_is_routed_by_its_path(self) -> None:
        """``GET http://host/ping`` reaches the ``/ping`` route."""
        with trio.fail_after(WAIT):
            async with connection(ping_app()) as wire:
                await wire.send(request("GET", "http://example.com/ping"))
                (response,) = await wire.read_responses(1)
        assert response.status == 200
        assert response.body == b'{"pong":"yes"}'


class TestPipelining:
    async def test_responses_come_in_request_order(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A slow first request still answers first; the later ones wait in h11's buffer."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["path"] == "/slow":
                await trio.sleep(1)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": scope["path"].encode()})

        async with connection(app) as wire:
            await wire.send(request("GET", "/slow") + request("GET", "/a") + request("GET", "/b"))
            responses = await wire.read_responses(3)
        assert [r.body for r in responses] == [b"/slow", b"/a", b"/b"]

    async def test_the_next_request_is_answered_while_the_first_one_runs_its_task(self) -> None:
        """Background tasks run in the connection's nursery; the connection moves on."""
        gate = trio.Event()
        app = App()

        async def blocked() -> None:
            await gate.wait()

        @app.get("/task")
        async def with_task(tasks: BackgroundTasks) -> str:
            tasks.add_task(blocked)
            return "queued"

        with trio.fail_after(WAIT):
            async with connection(app) as wire:
                await wire.send(request("GET", "/task") + request("GET", "/task"))
                responses = await wire.read_responses(2)
                assert [r.status for r in responses] == [200, 200]
                gate.set()

    async def test_requests_in_flight_are_capped_per_connection(self) -> None:
        """With a cap of 1, the second request waits until the first one's task has ended."""
        gate = trio.Event()
        ran: list[str] = []
        app = App()

        async def blocked() -> None:
            await gate.wait()
            ran.append("task")

        @app.get("/task")
        async def with_task(tasks: BackgroundTasks) -> str:
            ran.append("handler")
            tasks.add_task(blocked)
            return "queued"

        with trio.fail_after(WAIT):
            async with connection(app, ServerConfig(max_requests_in_flight=1)) as wire:
                await wire.send(request("GET", "/task") + request("GET", "/task"))
                await wire.read_responses(1)
                await trio.testing.wait_all_tasks_blocked()
                assert ran == ["handler"]
                gate.set()
                await wire.read_responses(1)
        assert ran[:3] == ["handler", "task", "handler"]


class TestRefused:
    async def test_transfer_encoding_with_content_length_is_refused_and_closed(self) -> None:
        """RFC 9112 §6.3: 400, ``Connection: close``, and the app never sees the request."""
        app, scopes = echo_scope_app()
        with trio.fail_after(WAIT):
            async with connection(app) as wire:
                await wire.send(
                    request(
                        "POST",
                        "/",
                        b"5\r\nhello\r\n0\r\n\r\n",
                        transfer_encoding="chunked",
                        content_length="5",
                    )
                )
                data = await wire.read_all()
        assert data.startswith(b"HTTP/1.1 400 ")
        assert b"connection: close" in data.lower()
        assert b"Transfer-Encoding and Content-Length" in data
        assert scopes == []

    async def test_too_many_headers_is_431(self) -> None:
        """More header lines than ``max_header_count`` is answered 431 and closed."""
        app, scopes = echo_scope_app()
        extra: dict[str, Any] = {f"x_h{index}": "1" for index in range(5)}
        with trio.fail_after(WAIT):
            async with connection(app, ServerConfig(max_header_count=4)) as wire:
                await wire.send(request("GET", "/", **extra))
                data = await wire.read_all()
        assert data.startswith(b"HTTP/1.1 431 ")
        assert scopes == []

    async def test_too_large_a_head_is_431(self) -> None:
        """A head over ``max_header_size`` is answered 431 without waiting for its end."""
        app, scopes = echo_scope_app()
        with trio.fail_after(WAIT):
            async with connection(app, ServerConfig(max_header_size=1024)) as wire:
                await wire.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2048)
                data = await wire.read_all()
        assert data.startswith(b"HTTP/1.1 431 ")
        assert scopes == []

    async def test_a_bad_target_is_400(self) -> None:
        """A target that is not a path, an absolute URL or ``*`` is a located 400."""
        app, scopes = echo_scope_app()
        with trio.fail_after(WAIT):
            async with connection(app) as wire:
                await wire.send(request("GET", "ping"))
                data = await wire.read_all()
        assert data.startswith(b"HTTP/1.1 400 ")
        assert b"must start with '/'" in data
        assert scopes == []

    async def test_a_malformed_head_is_400(self) -> None:
        """What h11 cannot parse is a 400, then the connection closes."""
        with trio.fail_after(WAIT):
            async with connection(ping_app()) as wire:
                await wire.send(b"GET /ping HTTP/1.1\r\nno colon here\r\n\r\n")
                data = await wire.read_all()
        assert data.startswith(b"HTTP/1.1 400 ")


class TestTimeouts:
    async def test_an_idle_keep_alive_connection_is_closed(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """After ``keep_alive_timeout`` without a new request the server closes, silently."""
        async with connection(ping_app(), ServerConfig(keep_alive_timeout=2)) as wire:
            await wire.send(request("GET", "/ping"))
            await wire.read_responses(1)
            start = trio.current_time()
            assert await wire.client.receive_some() == b""
            assert 2 <= trio.current_time() - start < 2.5

    async def test_a_slow_head_gets_408(self, autojump_clock: trio.testing.MockClock) -> None:
        """A head still incomplete after ``header_timeout`` is answered 408 and closed."""
        async with connection(ping_app(), ServerConfig(header_timeout=3)) as wire:
            await wire.send(b"GET /ping HTTP/1.1\r\nHost:")
            start = trio.current_time()
            data = await wire.read_all()
            assert 3 <= trio.current_time() - start < 3.5
        assert data.startswith(b"HTTP/1.1 408 ")

    async def test_a_silent_new_connection_is_closed(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A connection that never sends a byte is closed at ``header_timeout``."""
        async with connection(ping_app(), ServerConfig(header_timeout=3)) as wire:
            assert await wire.read_all() == b""
            assert 3 <= trio.current_time() < 3.5

    async def test_a_stalled_body_gets_408(self, autojump_clock: trio.testing.MockClock) -> None:
        """A body that stops arriving is cut off after ``read_timeout``; the app's tasks for it
        never run."""
        app = App()
        ran: list[str] = []

        async def task() -> None:
            ran.append("task")

        @app.post("/upload")
        async def upload(request: Request, tasks: BackgroundTasks) -> int:
            tasks.add_task(task)
            return len(await request.body())

        async with connection(app, ServerConfig(read_timeout=4)) as wire:
            await wire.send(request("POST", "/upload", content_length="100") + b"only a part")
            data = await wire.read_all()
            assert 4 <= trio.current_time() < 4.5
        assert data.startswith(b"HTTP/1.1 408 ")
        assert b"connection: close" in data.lower()
        assert ran == []

    async def test_a_client_that_stops_reading_is_dropped(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A write that the client does not take within ``send_timeout`` ends the connection."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x" * 1_000_000})

        async with connection(app, ServerConfig(send_timeout=5), lockstep=True) as wire:
            await wire.send(request("GET", "/big"))
            await wire.finished.wait()
            assert 5 <= trio.current_time() < 5.5


class TestShutdown:
    async def test_an_idle_connection_closes_at_once(self) -> None:
        """``begin_shutdown`` cancels the idle wait: no keep-alive timeout to sit out."""
        with trio.fail_after(WAIT):
            async with connection(ping_app(), ServerConfig(keep_alive_timeout=600)) as wire:
                await wire.send(request("GET", "/ping"))
                await wire.read_responses(1)
                await trio.testing.wait_all_tasks_blocked()
                wire.registry.begin_shutdown()
                assert await wire.client.receive_some() == b""

    async def test_a_busy_connection_finishes_its_response_with_close(self) -> None:
        """A request in flight when shutdown begins is answered, with ``Connection: close``."""
        started = trio.Event()
        release = trio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            started.set()
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"done"})

        with trio.fail_after(WAIT):
            async with connection(app) as wire:
                await wire.send(request("GET", "/") + request("GET", "/second"))
                await started.wait()
                wire.registry.begin_shutdown()
                release.set()
                data = await wire.read_all()
        assert data.count(b"HTTP/1.1 ") == 1
        assert b"connection: close" in data.lower()
        assert data.endswith(b"done")
