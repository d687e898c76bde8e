"""The in-process TestClient itself: requests, cookies, streaming, tasks, lifespan, errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from triobg import App, BackgroundTasks, Request, Response, StreamingResponse
from triobg.testing import SyncTestClient, TestClient, serve_live


def echo_app() -> App:
    app = App()

    @app.route("/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    async def echo(request: Request) -> dict[str, Any]:
        return {
            "method": request.method,
            "query": request.query_params.multi_items(),
            "body": (await request.body()).decode(),
            "type": request.headers.get("content-type"),
            "cookies": request.cookies,
            "x": request.headers.get("x-test"),
        }

    @app.post("/login")
    async def login(response: Response) -> None:
        response.set_cookie("session", "s1")

    @app.post("/logout")
    async def logout(response: Response) -> None:
        response.delete_cookie("session")

    return app


class TestRequests:
    async def test_every_method_and_body_encoding(self) -> None:
        """params, json, content and data are encoded the way a real client would."""
        async with TestClient(echo_app(), headers={"x-test": "default"}) as client:
            got = (await client.put("/echo?a=1", params={"b": "2"}, json={"k": 1})).json()
            form = (await client.post("/echo", data={"name": "a b"})).json()
            raw = (await client.patch("/echo", content="plain", headers={"x-test": "mine"})).json()
            methods = [
                (await getattr(client, m)("/echo")).json()["method"]
                for m in ("get", "delete", "options")
            ]
        assert got["query"] == [["a", "1"], ["b", "2"]]
        assert (got["body"], got["type"], got["x"]) == ('{"k": 1}', "application/json", "default")
        assert (form["body"], form["type"]) == ("name=a+b", "application/x-www-form-urlencoded")
        assert (raw["body"], raw["x"]) == ("plain", "mine")
        assert methods == ["GET", "DELETE", "OPTIONS"]

    async def test_cookies_persist_and_are_deleted(self) -> None:
        """Set-Cookie updates the jar; a Max-Age=0 cookie removes the entry."""
        async with TestClient(echo_app()) as client:
            await client.post("/login")
            assert (await client.get("/echo")).json()["cookies"] == {"session": "s1"}
            await client.post("/logout")
            assert (await client.get("/echo")).json()["cookies"] == {}

    async def test_using_the_client_outside_its_block_is_an_error(self) -> None:
        """A clear message instead of a hang."""
        client = TestClient(echo_app())
        with pytest.raises(RuntimeError, match="async with TestClient"):
            await client.get("/echo")


class TestStreaming:
    async def test_chunks_arrive_one_at_a_time(self) -> None:
        """The app waits for the test to read each chunk, so a test can look in between."""
        app = App()
        produced: list[int] = []

        async def numbers() -> AsyncIterator[bytes]:
            for i in range(3):
                produced.append(i)
                yield f"{i};".encode()

        @app.get("/numbers")
        async def stream() -> StreamingResponse:
            return StreamingResponse(numbers())

        async with TestClient(app) as client, client.stream("GET", "/numbers") as response:
            assert response.status_code == 200
            chunks = response.iter_bytes()
            assert await chunks.__anext__() == b"0;"
            await trio.testing.wait_all_tasks_blocked()
            assert produced == [0, 1]  # one chunk ahead at most: the send is waiting for us
            assert await response.read() == b"1;2;"

    async def test_leaving_a_stream_early_stops_the_app(self) -> None:
        """Closing the stream after one chunk ends the app's call; the client exits cleanly."""
        app = App()

        async def endless() -> AsyncIterator[bytes]:
            while True:
                yield b"x"

        @app.get("/endless")
        async def stream() -> StreamingResponse:
            return StreamingResponse(endless())

        with trio.fail_after(5):
            async with TestClient(app) as client, client.stream("GET", "/endless") as response:
                async for chunk in response.iter_bytes():
                    assert chunk == b"x"
                    break
        assert app.background.statistics().accepted == 0


class TestBackgroundTasks:
    async def test_wait_for_tasks_makes_each_call_wait(self) -> None:
        """With ``wait_for_tasks=True`` the task is done when the call returns."""
        app = App()
        done: list[str] = []

        async def task() -> None:
            await trio.lowlevel.checkpoint()
            done.append("task")

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> None:
            tasks.add_task(task)

        async with TestClient(app, wait_for_tasks=True) as client:
            await client.get("/")
            assert done == ["task"]

    async def test_task_errors_can_be_only_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        """``raise_task_errors=False`` behaves like production: logged, not raised."""
        app = App()

        def bad() -> None:
            raise ValueError("boom")

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> None:
            tasks.add_task(bad)

        async with TestClient(app, raise_task_errors=False) as client:
            await client.get("/")
            await client.wait_background()
        assert "boom" in caplog.text

    async def test_several_failures_raise_an_exception_group(self) -> None:
        """Every failure is reported, not only the first."""
        app = App()

        async def bad(n: int) -> None:
            raise ValueError(n)

        @app.get("/{n}")
        async def handler(n: int, tasks: BackgroundTasks) -> None:
            tasks.add_task(bad, n)

        async with TestClient(app) as client:
            await client.get("/1")
            await client.get("/2")
            with pytest.raises(ExceptionGroup) as info:
                await client.wait_background()
        assert sorted(e.args[0] for e in info.value.exceptions) == [1, 2]

    async def test_leaving_the_client_raises_unreported_task_failures(self) -> None:
        """A test that forgets ``wait_background()`` still fails on a broken task."""
        app = App()

        async def bad() -> None:
            raise KeyError("late")

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> None:
            tasks.add_task(bad)

        with pytest.raises(KeyError, match="late"):
            async with TestClient(app) as client:
                await client.get("/")


class TestLifecycle:
    async def test_exceptions_from_the_block_come_out_unwrapped(self) -> None:
        """Not an ExceptionGroup from the client's nursery: the exception the test raised."""
        with pytest.raises(LookupError, match="mine"):
            async with TestClient(echo_app()):
                raise LookupError("mine")

    async def test_an_exception_from_the_block_closes_the_lifespans(self) -> None:
        """The app's lifespan (and a mounted app's) is exited with the cancellation, its
        generator closed, rather than left to the garbage collector (a ResourceWarning)."""
        events: list[str] = []

        def lifespan_of(name: str) -> Any:
            @contextlib.asynccontextmanager
            async def lifespan(app: App) -> AsyncIterator[None]:
                events.append(f"{name} up")
                try:
                    yield
                except trio.Cancelled:
                    events.append(f"{name} cancelled")
                    raise
                finally:
                    events.append(f"{name} closed")

            return lifespan

        app = App(lifespan=lifespan_of("app"))
        app.mount("/sub", App(lifespan=lifespan_of("sub")))
        with pytest.raises(LookupError, match="mine"):
            async with TestClient(app):
                raise LookupError("mine")
        assert sorted(events) == [
            "app cancelled", "app closed", "app up", "sub cancelled", "sub closed", "sub up"
        ]  # fmt: skip

    async def test_lifespan_can_be_skipped(self) -> None:
        """``lifespan=False`` drives requests without startup/shutdown."""
        events: list[str] = []

        @contextlib.asynccontextmanager
        async def lifespan(app: App) -> AsyncIterator[None]:
            events.append("startup")
            yield

        app = App(lifespan=lifespan)
        app.add_route("/", lambda: "ok")
        async with TestClient(app, lifespan=False) as client:
            assert (await client.get("/")).json() == "ok"
        assert events == []

    async def test_a_raw_asgi_app_that_never_responds_is_reported(self) -> None:
        """An app returning without a response is an error, not a hang."""

        async def broken(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                await receive()
                await send({"type": "lifespan.startup.complete"})
                await receive()
                await send({"type": "lifespan.shutdown.complete"})

        with trio.fail_after(5):
            async with TestClient(broken) as client:
                with pytest.raises(RuntimeError, match="without completing its response"):
                    await client.get("/")


TARGET = "/files/a b é%2Fx?q=é ü&q=%26"
EXPECTED: dict[str, Any] = {
    "name": "a b é/x",
    "path": "/files/a b é/x",
    "raw_path": "/files/a%20b%20%C3%A9%2Fx",
    "query_string": "q=%C3%A9%20%C3%BC&q=%26",
    "q": ["é ü", "&"],
}


def scope_app() -> App:
    app = App()

    @app.get("/files/{name}")
    async def files(name: str, request: Request) -> dict[str, Any]:
        scope = request.scope
        return {
            "name": name,
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode("ascii"),
            "query_string": scope["query_string"].decode("ascii"),
            "q": request.query_params.getlist("q"),
        }

    return app


class TestRequestTarget:
    async def test_path_is_decoded_and_raw_path_encoded_as_a_server_gives_them(self) -> None:
        """A space, ``é`` and ``%2F`` reach the app as they do behind hypercorn."""
        async with TestClient(scope_app()) as client:
            got = (await client.get(TARGET)).json()
        assert got == EXPECTED
        target = f"{EXPECTED['raw_path']}?{EXPECTED['query_string']}"
        async with (
            serve_live(scope_app(), server="hypercorn") as server,
            await server.connect() as conn,
        ):
            live = (await conn.request("GET", target)).json()
        assert live == EXPECTED

    async def test_params_repeat_the_key_for_lists_as_httpx_does(self) -> None:
        """``params=`` repeats a key for list values and writes booleans as httpx does."""
        async with TestClient(echo_app()) as client:
            got = await client.get("/echo?a=1", params={"q": ["x", "y z"], "n": 1, "f": True})
            pairs = await client.get("/echo", params=[("q", "x"), ("q", ["y"])])
        assert got.json()["query"] == [
            ["a", "1"], ["q", "x"], ["q", "y z"], ["n", "1"], ["f", "true"]
        ]  # fmt: skip
        assert pairs.json()["query"] == [["q", "x"], ["q", "y"]]

    def test_the_sync_client_sends_the_same_target(self) -> None:
        """SyncTestClient encodes paths and params exactly as TestClient does."""
        with SyncTestClient(scope_app()) as client:
            got = client.get(TARGET).json()
            listed = client.get("/files/x", params={"q": ["a b", "é"]}).json()
        assert got == EXPECTED
        assert (listed["query_string"], listed["q"]) == ("q=a+b&q=%C3%A9", ["a b", "é"])
