"""The blocking SyncTestClient: lifespan, redirects, server errors, tasks, WebSockets, files."""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from triobg import (
    App,
    BackgroundTasks,
    EventSourceResponse,
    JSONResponse,
    RedirectResponse,
    Request,
    StreamingResponse,
    WebSocket,
    WebSocketDisconnect,
)
from triobg.testing import SyncTestClient, TestClient

#: Bound for every wait on a thread in these tests: a hang fails instead of blocking CI.
TIMEOUT = 10


def lifespan_app(events: list[str]) -> App:
    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[dict[str, str]]:
        events.append("startup")
        yield {"greeting": "hello"}
        events.append("shutdown")

    app = App(lifespan=lifespan)

    @app.get("/")
    async def root(request: Request) -> str:
        return str(request.state.greeting)

    @app.get("/plain")
    async def plain() -> str:
        return "plain"

    return app


class TestLifecycle:
    def test_with_runs_the_lifespan_around_the_block(self) -> None:
        """Startup before the first line of the block, shutdown when it ends (as Starlette)."""
        events: list[str] = []
        with SyncTestClient(lifespan_app(events)) as client:
            assert events == ["startup"]
            assert client.get("/").json() == "hello"
        assert events == ["startup", "shutdown"]

    def test_without_with_there_is_no_lifespan_and_close_ends_the_loop(self) -> None:
        """A module-level client works without ``with``; the lifespan then never runs."""
        events: list[str] = []
        client = SyncTestClient(lifespan_app(events))
        assert client.get("/plain").json() == "plain"
        client.close()
        client.close()  # twice is harmless
        assert events == []
        assert client.get("/plain").status_code == 200  # a later call starts a new loop
        client.close()

    def test_first_calls_from_several_threads_share_one_loop(self) -> None:
        """Four threads calling at once without ``with``: one loop thread answers them all."""
        app = App()

        @app.get("/")
        async def where() -> int:
            return threading.get_ident()

        client = SyncTestClient(app)
        start = threading.Barrier(4, timeout=TIMEOUT)
        answered: list[int] = []

        def call() -> None:
            start.wait()
            answered.append(client.get("/").json())

        threads = [threading.Thread(target=call) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
        client.close()
        assert len(answered) == 4
        assert len(set(answered)) == 1

    async def test_inside_a_trio_test_it_says_what_to_use(self) -> None:
        """A blocking client in an ``async def`` test is refused with the way out."""
        client = SyncTestClient(App())
        with pytest.raises(RuntimeError, match=r"async with triobg\.testing\.TestClient"):
            client.get("/")
        with pytest.raises(RuntimeError, match="cannot be used inside trio"):
            client.__enter__()
        assert client._loop is None

    def test_a_failed_startup_is_raised_by_with(self) -> None:
        """The lifespan's failure comes out of ``__enter__``, as the trio client's does."""

        @contextlib.asynccontextmanager
        async def lifespan(app: App) -> AsyncIterator[None]:
            raise LookupError("no database")
            yield  # type: ignore[unreachable]

        client = SyncTestClient(App(lifespan=lifespan))
        with pytest.raises(RuntimeError, match="no database"):
            client.__enter__()
        assert client._loop is None

    def test_an_exception_in_the_block_comes_out_as_it_is(self) -> None:
        """The test's own exception, unwrapped, and the loop's thread is gone afterwards."""
        client = SyncTestClient(App())

        def fail_inside() -> None:
            with client:
                raise LookupError("mine")

        with pytest.raises(LookupError, match="mine"):
            fail_inside()
        assert client._loop is None  # stopped: its thread was joined

    def test_the_app_runs_on_another_thread_in_its_own_trio_run(self) -> None:
        """Nothing of the test's thread is borrowed: a plain ``def`` test needs no trio."""
        app = App()

        @app.get("/")
        async def where() -> int:
            return threading.get_ident()

        with SyncTestClient(app) as client:
            assert client.get("/").json() != threading.get_ident()


def redirect_app() -> App:
    app = App()

    @app.route("/echo", methods=["GET", "POST"])
    async def echo(request: Request) -> dict[str, Any]:
        return {"method": request.method, "body": (await request.body()).decode()}

    @app.post("/see-other")
    async def see_other() -> RedirectResponse:
        return RedirectResponse("/echo?from=303", status_code=303)

    @app.post("/temporary")
    async def temporary() -> RedirectResponse:
        return RedirectResponse("/echo", status_code=307)

    @app.get("/away")
    async def away() -> RedirectResponse:
        return RedirectResponse("https://example.com/", allow_external=True)

    @app.get("/loop")
    async def loop() -> RedirectResponse:
        return RedirectResponse("/loop")

    return app


class TestRedirects:
    def test_followed_by_default_with_the_method_rules_of_browsers(self) -> None:
        """303 becomes a GET without the body; 307 keeps the method and the body."""
        with SyncTestClient(redirect_app()) as client:
            other = client.post("/see-other", json={"a": 1})
            kept = client.post("/temporary", content=b"again")
        assert other.json() == {"method": "GET", "body": ""}
        assert other.url == "http://testserver/echo?from=303"
        assert [r.status_code for r in other.history] == [303]
        assert kept.json() == {"method": "POST", "body": "again"}

    def test_not_followed_when_turned_off(self) -> None:
        """``follow_redirects=False`` on the client or on one call returns the redirect."""
        with SyncTestClient(redirect_app(), follow_redirects=False) as client:
            response = client.post("/see-other")
            followed = client.post("/see-other", follow_redirects=True)
        assert (response.status_code, response.headers["location"]) == (303, "/echo?from=303")
        assert followed.status_code == 200

    def test_another_host_is_out_of_reach_so_the_redirect_is_returned(self) -> None:
        """The app cannot answer for example.com: the test sees the 307 and its location."""
        with SyncTestClient(redirect_app()) as client:
            response = client.get("/away")
        assert (response.status_code, response.headers["location"]) == (307, "https://example.com/")

    def test_a_redirect_loop_is_an_error_not_a_hang(self) -> None:
        """After ``max_redirects`` hops the call raises."""
        client = SyncTestClient(redirect_app(), max_redirects=3)
        with pytest.raises(RuntimeError, match="more than 3 redirects"):
            client.get("/loop")
        client.close()


def failing_app() -> App:
    app = App()

    @app.get("/boom")
    async def boom() -> None:
        raise ZeroDivisionError("the handler's bug")

    @app.get("/boom-in-a-thread")
    def boom_sync() -> None:
        raise PermissionError("the def handler's bug")

    @app.get("/handled")
    async def handled() -> None:
        raise KeyError("handled")

    @app.exception_handler(KeyError)
    async def on_key_error(request: Request, error: KeyError) -> JSONResponse:
        return JSONResponse({"detail": "missing"}, 404)

    return app


class TestServerExceptions:
    def test_an_unhandled_exception_is_raised_in_the_test(self) -> None:
        """As Starlette's ``raise_server_exceptions=True``: the handler's own exception."""
        with SyncTestClient(failing_app()) as client:
            with pytest.raises(ZeroDivisionError, match="the handler's bug"):
                client.get("/boom")
            with pytest.raises(PermissionError, match="the def handler's bug"):
                client.get("/boom-in-a-thread")
            assert client.get("/handled").status_code == 404  # a handler answered it

    def test_only_the_clients_own_app_counts(self) -> None:
        """An error answered for another client's app is not raised by this one."""
        with SyncTestClient(failing_app()) as other, SyncTestClient(echo_app()) as client:
            assert client.get("/echo").status_code == 200
            with pytest.raises(ZeroDivisionError):
                other.get("/boom")
            assert client._errors.errors == []  # not seen by the other client's listener

    def test_or_answered_with_the_500(self) -> None:
        """With ``raise_server_exceptions=False`` the test sees the response a client would."""
        with SyncTestClient(failing_app(), raise_server_exceptions=False) as client:
            response = client.get("/boom")
        assert (response.status_code, response.json()) == (500, {"detail": "Internal Server Error"})

    def test_a_raw_asgi_app_that_raises(self) -> None:
        """An exception escaping an ASGI app is raised too, or becomes a 500."""

        async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                raise OSError("raw app")

        client = SyncTestClient(raw)
        for _ in range(10):  # it was a race, lost about one time in two: every time now
            with pytest.raises(OSError, match="raw app"):
                client.get("/")
        client.close()
        assert SyncTestClient(raw, raise_server_exceptions=False).get("/").status_code == 500


def tasks_app(release: threading.Event, done: list[str]) -> App:
    app = App()

    def slow() -> None:  # a ``def`` task: runs in a worker thread, waits for the test
        if not release.wait(TIMEOUT):
            raise TimeoutError("the test never released the task")
        done.append("slow")

    def bad() -> None:
        raise ValueError("task failed")

    @app.get("/slow")
    async def start_slow(tasks: BackgroundTasks) -> str:
        tasks.add_task(slow)
        return "accepted"

    @app.get("/bad")
    async def start_bad(tasks: BackgroundTasks) -> str:
        tasks.add_task(bad)
        return "accepted"

    return app


class TestBackgroundTasks:
    def test_a_call_returns_after_the_response_and_wait_background_waits(self) -> None:
        """The response arrives while the task waits; ``wait_background()`` sees it finish."""
        release, done = threading.Event(), list[str]()
        with SyncTestClient(tasks_app(release, done)) as client:
            assert client.get("/slow").json() == "accepted"
            assert done == []
            release.set()
            client.wait_background()
            assert done == ["slow"]

    def test_wait_for_tasks_makes_every_call_wait(self) -> None:
        """``wait_for_tasks=True`` (Starlette's way): the task is done when the call returns."""
        release, done = threading.Event(), list[str]()
        release.set()
        with SyncTestClient(tasks_app(release, done), wait_for_tasks=True) as client:
            client.get("/slow")
            assert done == ["slow"]

    def test_leaving_the_block_waits_for_tasks(self) -> None:
        """Tasks still running at the end of ``with`` are drained, not dropped."""
        release, done = threading.Event(), list[str]()
        with SyncTestClient(tasks_app(release, done)) as client:
            client.get("/slow")
            release.set()
        assert done == ["slow"]

    def test_task_failures_are_raised_by_wait_background_and_by_the_exit(self) -> None:
        """A failing task surfaces in the test, once."""
        release, done = threading.Event(), list[str]()
        with SyncTestClient(tasks_app(release, done)) as client:
            client.get("/bad")
            with pytest.raises(ValueError, match="task failed"):
                client.wait_background()
        client = SyncTestClient(tasks_app(release, done))
        client.get("/bad")
        with pytest.raises(ValueError, match="task failed"):
            client.close()


def echo_app() -> App:
    app = App()

    @app.route("/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
    async def echo(request: Request) -> dict[str, Any]:
        return {
            "method": request.method,
            "query": request.query_params.multi_items(),
            "body": (await request.body()).decode(),
            "type": request.headers.get("content-type"),
            "x": request.headers.get("x-test"),
            "cookies": request.cookies,
        }

    return app


class TestRequests:
    def test_every_method_and_argument_reaches_the_app(self) -> None:
        """Methods, params, headers, cookies, json, content and form data all pass through."""
        with SyncTestClient(echo_app(), headers={"x-test": "default"}) as client:
            methods = [
                getattr(client, m)("/echo").json()["method"]
                for m in ("get", "post", "put", "patch", "delete", "options")
            ]
            assert client.head("/echo").content == b""
            got = client.put("/echo?a=1", params={"b": "2"}, json={"k": 1}, cookies={"c": "3"})
            listed = client.get("/echo", params={"q": ["x", "y"], "n": 1})
            form = client.post("/echo", data={"name": "a b"}).json()
            raw = client.post("/echo", data="raw text", headers={"x-test": "mine"}).json()
            client.headers["x-test"] = "changed"
            later = client.get("/echo").json()
        assert methods == ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        body = got.json()
        assert (body["query"], body["body"], body["cookies"]) == (
            [["a", "1"], ["b", "2"]],
            '{"k": 1}',
            {"c": "3"},
        )
        assert got.headers["content-type"] == "application/json"
        assert got.text == got.content.decode() and got.is_success
        assert (form["body"], form["type"]) == ("name=a+b", "application/x-www-form-urlencoded")
        assert (raw["body"], raw["x"]) == ("raw text", "mine")
        assert later["x"] == "changed"
        assert listed.json()["query"] == [["q", "x"], ["q", "y"], ["n", "1"]]
        assert listed.url == "http://testserver/echo?q=x&q=y&n=1"

    @pytest.mark.skipif(
        "files" not in inspect.signature(TestClient.request).parameters,
        reason="TestClient has no files= yet (uploads)",
    )
    def test_files_go_through_as_multipart(self) -> None:
        """``files=`` is passed to the trio client, which encodes the multipart body."""
        with SyncTestClient(echo_app()) as client:
            got = client.post("/echo", files={"upload": ("a.txt", b"hello")}).json()
        assert got["type"].startswith("multipart/form-data")
        assert "hello" in got["body"]


class TestStreaming:
    def test_an_endless_event_stream_is_read_a_few_lines_then_left(self) -> None:
        """``iter_lines()`` yields each line once complete; leaving closes the app's stream."""
        app = App()
        closed: list[bool] = []

        async def ticks() -> AsyncIterator[dict[str, int]]:
            try:
                n = 0
                while True:
                    n += 1
                    yield {"n": n}
            finally:
                closed.append(True)

        @app.get("/events")
        async def events() -> EventSourceResponse:
            return EventSourceResponse(ticks(), ping_interval=None)

        with SyncTestClient(app) as client:
            with client.stream("GET", "/events") as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                data = []
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        data.append(line)
                    if len(data) == 2:
                        break
            client.wait_background()
        assert data == ['data: {"n":1}', 'data: {"n":2}']
        assert closed == [True]

    def test_chunks_text_and_read(self) -> None:
        """Chunks as sent, text split inside a character kept whole, the rest with ``read()``."""
        app = App()

        async def parts() -> AsyncIterator[bytes]:
            for chunk in (b"caf", b"\xc3", b"\xa9\n", b"end"):
                yield chunk

        @app.post("/parts")
        async def stream(request: Request) -> StreamingResponse:
            assert await request.json() == {"go": True}
            return StreamingResponse(parts())

        with SyncTestClient(app) as client:
            with client.stream("POST", "/parts", json={"go": True}) as response:
                assert list(response.iter_text()) == ["caf", "\u00e9\n", "end"]
            with client.stream("POST", "/parts", json={"go": True}) as response:
                assert next(response.iter_bytes()) == b"caf"
                assert response.read() == b"\xc3\xa9\nend"


class TestClientState:
    def test_cookies_and_headers_assigned_later_are_used(self) -> None:
        """Assigning or ``cookies.set`` after the first call reaches the running loop."""
        with SyncTestClient(echo_app()) as client:
            client.get("/echo")
            client.cookies = {"a": "1"}
            client.cookies.set("b", "2")
            client.headers = {"x-test": "assigned"}
            got = client.get("/echo").json()
        assert (got["cookies"], got["x"]) == ({"a": "1", "b": "2"}, "assigned")


class TestWebSockets:
    def test_an_exception_escaping_a_raw_websocket_app_is_raised(self) -> None:
        """The app's own exception every time, not a 1006 disconnect (it was a race)."""

        async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            raise OSError("raw socket app")

        client = SyncTestClient(raw)
        with client.websocket_connect("/") as ws, pytest.raises(OSError, match="raw socket"):
            ws.receive()
        client.close()

    async def test_the_trio_client_reports_it_even_to_a_waiting_reader(self) -> None:
        """The facade relies on it: a reader already waiting sees the exception, not a 1006."""
        release = trio.Event()

        async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await release.wait()
            raise OSError("raw socket app")

        async def release_once_the_reader_waits() -> None:
            await trio.testing.wait_all_tasks_blocked()
            release.set()

        async with TestClient(raw, lifespan=False) as client, trio.open_nursery() as nursery:
            for _ in range(10):  # it was a race, lost about one time in two
                release = trio.Event()
                nursery.start_soon(release_once_the_reader_waits)
                async with client.websocket_connect("/") as ws:
                    with pytest.raises(OSError, match="raw socket app"):
                        await ws.receive()

    def test_a_blocking_session(self) -> None:
        """Send and receive text, bytes and JSON; the app's close code is reported."""
        app = App()

        @app.websocket("/ws")
        async def echo(websocket: WebSocket) -> None:
            await websocket.accept(subprotocol="v1")
            await websocket.send_text(await websocket.receive_text())
            await websocket.send_bytes(await websocket.receive_bytes())
            await websocket.send_json({"got": await websocket.receive_json()})
            await websocket.close(4000)

        with (
            SyncTestClient(app) as client,
            client.websocket_connect("/ws", subprotocols=["v1"]) as ws,
        ):
            assert ws.subprotocol == "v1"
            ws.send_text("hi")
            assert ws.receive_text() == "hi"
            ws.send_bytes(b"\x00")
            assert ws.receive() == b"\x00"
            ws.send_json([1])
            assert ws.receive_json() == {"got": [1]}
            assert ws.wait_closed() == 4000
            assert ws.close_code == 4000

    def test_the_client_leaving_is_a_disconnect_for_the_app(self) -> None:
        """Leaving the block sends the close; a refused handshake raises as in ``TestClient``."""
        app = App()
        codes: list[int] = []

        @app.websocket("/ws")
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()
            try:
                await websocket.receive_text()
            except WebSocketDisconnect as gone:
                codes.append(gone.code)

        @app.websocket("/closed")
        async def closed(websocket: WebSocket) -> None:
            await websocket.close(4003)

        with SyncTestClient(app) as client:
            with client.websocket_connect("/ws"):
                pass
            with pytest.raises(WebSocketDisconnect) as refused:
                client.websocket_connect("/closed").__enter__()
            client.wait_background()
        assert codes == [1000]
        assert refused.value.code == 4003
