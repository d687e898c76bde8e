"""Background tasks over real hypercorn and real sockets on 127.0.0.1.

What the in-process client cannot show: when the bytes reach a network client, what hypercorn
does with keep-alive connections, closed connections, big uploads and shutdown. Tasks here are
held on ``trio.Event`` gates the test opens only after observing what it wants to observe.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio

from triobg import App, BackgroundTasks, Request, StreamingResponse
from triobg.testing import serve_live

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("either_server")]

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[None]]

WAIT = 5  # seconds any single network step may take before the test fails


class Gate:
    """A task that records when it started and blocks until the test opens the gate."""

    def __init__(self) -> None:
        self.started = trio.Event()
        self.opened = trio.Event()
        self.finished = trio.Event()

    async def task(self) -> None:
        self.started.set()
        await self.opened.wait()
        self.finished.set()


def assert_books_balance(app: App) -> None:
    stats = app.background.statistics()
    assert stats.queued == stats.running == 0
    assert stats.accepted == stats.completed + stats.failed + stats.cancelled + stats.discarded


class TestStartAfterFlush:
    async def test_client_reads_whole_response_while_the_task_is_blocked(self) -> None:
        """The response reaches the client before its task is released: tasks never delay it."""
        gate = Gate()
        app = App()

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> dict[str, bool]:
            tasks.add_task(gate.task)
            return {"ok": True}

        async with serve_live(app) as server, await server.connect(timeout=WAIT) as conn:
            response = await conn.request("GET", "/")
            assert response.status == 200
            assert response.json() == {"ok": True}
            with trio.fail_after(WAIT):
                await gate.started.wait()
            assert not gate.finished.is_set()
            gate.opened.set()
            with trio.fail_after(WAIT):
                await gate.finished.wait()
        assert app.background.statistics().completed == 1
        assert_books_balance(app)

    async def test_streaming_task_starts_after_the_last_chunk(self) -> None:
        """A StreamingResponse's task starts only once every chunk has been sent."""
        gate = Gate()
        sent: list[int] = []
        seen_at_start: list[int] = []
        app = App()

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(20):
                sent.append(i)
                yield b"chunk %d\n" % i

        async def task() -> None:
            seen_at_start.append(len(sent))
            await gate.task()

        @app.get("/stream")
        async def stream(tasks: BackgroundTasks) -> StreamingResponse:
            tasks.add_task(task)
            return StreamingResponse(chunks(), media_type="text/plain")

        async with serve_live(app) as server, await server.connect(timeout=WAIT) as conn:
            response = await conn.request("GET", "/stream")
            assert response.body == b"".join(b"chunk %d\n" % i for i in range(20))
            with trio.fail_after(WAIT):
                await gate.started.wait()
            assert seen_at_start == [20]
            assert not gate.finished.is_set()
            gate.opened.set()
        assert app.background.statistics().completed == 1


class TestKeepAlive:
    async def test_second_request_answered_while_first_task_runs(self) -> None:
        """A task holding its request's ASGI call does not hold the keep-alive connection."""
        gate = Gate()
        app = App()

        @app.get("/first")
        async def first(tasks: BackgroundTasks) -> str:
            tasks.add_task(gate.task)
            return "first"

        @app.get("/second")
        async def second() -> str:
            return "second"

        async with serve_live(app) as server, await server.connect(timeout=WAIT) as conn:
            assert (await conn.request("GET", "/first")).json() == "first"
            with trio.fail_after(WAIT):
                await gate.started.wait()
            assert (await conn.request("GET", "/second")).json() == "second"
            assert not gate.finished.is_set()
            gate.opened.set()
        assert app.background.statistics().completed == 1

    async def test_pipelined_requests_answered_while_first_task_runs(self) -> None:
        """Two requests sent back to back on one connection both get answers in order."""
        gate = Gate()
        app = App()

        @app.get("/n/{n}")
        async def numbered(n: int, tasks: BackgroundTasks) -> int:
            if n == 1:
                tasks.add_task(gate.task)
            return n

        async with serve_live(app) as server, await server.connect(timeout=WAIT) as conn:
            await conn.send_request("GET", "/n/1")
            await conn.send_request("GET", "/n/2")
            assert (await conn.read_response()).json() == 1
            assert (await conn.read_response()).json() == 2
            assert not gate.finished.is_set()
            gate.opened.set()
        assert app.background.statistics().completed == 1


class DisconnectWatcher:
    """ASGI middleware: sets ``disconnected`` when hypercorn reports the client gone.

    It listens on ``receive`` only after the response is complete, when the pipeline no longer
    reads it, so the test knows the server has seen the close before it opens the gate.
    """

    def __init__(self, app: ASGIApp, *, disconnected: trio.Event) -> None:
        self.app = app
        self.disconnected = disconnected

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_done = trio.Event()

        async def watching_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                response_done.set()

        async def watch() -> None:
            await response_done.wait()
            while (await receive())["type"] != "http.disconnect":
                pass
            self.disconnected.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await self.app(scope, receive, watching_send)


class TestClientGoesAway:
    async def test_closing_the_connection_does_not_cancel_the_task(self) -> None:
        """The client hangs up right after the response; its task still runs to completion."""
        gate = Gate()
        app = App()

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> str:
            tasks.add_task(gate.task)
            return "bye"

        disconnected = trio.Event()
        app.add_middleware(DisconnectWatcher, disconnected=disconnected)
        async with serve_live(app) as server:
            conn = await server.connect(timeout=WAIT)
            assert (await conn.request("GET", "/")).json() == "bye"
            await conn.aclose()
            with trio.fail_after(WAIT):
                await disconnected.wait()
                await gate.started.wait()
            assert not gate.finished.is_set()
            gate.opened.set()
            with trio.fail_after(WAIT):
                await gate.finished.wait()
        stats = app.background.statistics()
        assert (stats.completed, stats.cancelled) == (1, 0)


class TestGracefulShutdown:
    async def test_drain_completes_running_tasks_and_names_the_late_one(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """At shutdown, tasks that finish in time complete; the one that cannot is named."""
        caplog.set_level(logging.INFO, logger="triobg")
        app = App(drain_timeout=0.5)
        quick_started = trio.Event()
        forever_started = trio.Event()
        release = trio.Event()

        async def quick() -> None:
            quick_started.set()
            await release.wait()

        async def forever() -> None:
            forever_started.set()
            await trio.sleep_forever()

        async def broken() -> None:
            raise RuntimeError("boom")

        @app.get("/quick")
        async def quick_route(tasks: BackgroundTasks) -> str:
            tasks.add_task(quick)
            tasks.add_task(broken)
            return "ok"

        @app.get("/forever")
        async def forever_route(tasks: BackgroundTasks) -> str:
            tasks.add_task(forever)
            return "ok"

        async with serve_live(app) as server:
            async with await server.connect(timeout=WAIT) as a, await server.connect() as b:
                await a.request("GET", "/quick")
                await b.request("GET", "/forever")
            with trio.fail_after(WAIT):
                await quick_started.wait()
                await forever_started.wait()
            start = trio.current_time()
            server.begin_shutdown()
            release.set()  # the quick task finishes well inside the deadline
            with trio.fail_after(WAIT):
                await server.shutdown()
            took = trio.current_time() - start

        assert 0.45 < took < 0.5 + 1.0  # the drain deadline, not hypercorn's 3 s or forever
        stats = app.background.statistics()
        assert (stats.accepted, stats.completed, stats.failed, stats.cancelled) == (3, 1, 1, 1)
        assert_books_balance(app)
        cut = [r.getMessage() for r in caplog.records if "cancelled while running" in r.message]
        assert len(cut) == 1
        assert f"{__name__}." in cut[0]
        assert "forever of GET /forever" in cut[0]
        assert "drain deadline passed" in cut[0]

    async def test_queued_task_is_named_when_it_never_got_to_run(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With one running slot taken until the deadline, the waiting task is named too."""
        app = App(drain_timeout=0.3, max_running_tasks=1)
        hog_started = trio.Event()

        async def hog() -> None:
            hog_started.set()
            await trio.sleep_forever()

        async def waiter() -> None:
            raise AssertionError("never gets a slot")

        @app.get("/hog")
        async def hog_route(tasks: BackgroundTasks) -> str:
            tasks.add_task(hog)
            return "ok"

        @app.get("/wait")
        async def wait_route(tasks: BackgroundTasks) -> str:
            tasks.add_task(waiter)
            return "ok"

        async with serve_live(app) as server, await server.connect(timeout=WAIT) as conn:
            await conn.request("GET", "/hog")
            with trio.fail_after(WAIT):
                await hog_started.wait()
            await conn.request("GET", "/wait")
        # Leaving ``serve_live`` shut the server down gracefully.
        stats = app.background.statistics()
        assert (stats.accepted, stats.cancelled, stats.completed) == (2, 2, 0)
        assert_books_balance(app)
        messages = [r.getMessage() for r in caplog.records if r.name == "triobg.background"]
        assert any("waiter of GET /wait cancelled" in m for m in messages)
        assert any("hog of GET /hog cancelled while running" in m for m in messages)

    async def test_idle_keep_alive_connection_is_closed_at_shutdown(self) -> None:
        """An idle kept-alive connection does not hold the shutdown for keep_alive_timeout."""
        app = App(drain_timeout=0.2)

        @app.get("/")
        async def root() -> str:
            return "hi"

        async with serve_live(app, keep_alive_timeout=60) as server:
            conn = await server.connect(timeout=WAIT)
            async with conn:
                await conn.request("GET", "/")
                with trio.fail_after(WAIT):
                    await server.shutdown()
                await conn.wait_closed()


class TestLargeUpload:
    async def test_large_chunked_upload_to_a_handler_that_ignores_it(
        self, either_server: str
    ) -> None:
        """5 MB in 320 chunks to a handler that never reads the body still gets its answer.

        Regression for hypercorn#314: hypercorn's per-request queue fills when the app does not
        read, and the connection stalls; triobg drains the unread body before responding. The
        native server never reads a body nobody asked for: it answers with ``Connection:
        close`` and the client reconnects.
        """
        app = App(max_body_size=8 * 1024 * 1024)
        ran = trio.Event()

        async def after() -> None:
            ran.set()

        @app.post("/ignore")
        async def ignore(tasks: BackgroundTasks) -> str:
            tasks.add_task(after)
            return "ignored"

        @app.post("/count")
        async def count(request: Request) -> int:
            return len(await request.body())

        chunk = b"x" * 16384
        async with serve_live(app) as server, await server.connect(timeout=10) as conn:
            with trio.fail_after(15):
                response = await conn.request("POST", "/ignore", body=[chunk] * 320)
                assert (response.status, response.json()) == (200, "ignored")
                await ran.wait()
                if either_server == "native":
                    assert response.header("connection") == "close"
                    await conn.wait_closed()
                    conn = await server.connect(timeout=10)
                # The connection is (still) usable, and a handler that reads sees every byte.
                async with conn:
                    response = await conn.request("POST", "/count", body=iter([chunk] * 320))
                assert response.json() == 320 * 16384
