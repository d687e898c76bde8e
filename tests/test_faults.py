"""Faults over real hypercorn on 127.0.0.1: tasks that raise, are cut off or block, and clients
that misbehave (hang up mid-upload, mid-response, right after the response, stop reading,
upload slowly). Each test states the outcome: the server keeps serving other connections, the
task books balance, and the right line is logged.

Every network wait is bounded; tasks are held on events the test opens itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from _support import WAIT, assert_books_balance, recording

from triobg import App, BackgroundTasks, Request, StreamingResponse, TaskFailure
from triobg.testing import LiveServer, serve_live

pytestmark = pytest.mark.e2e


async def still_serving(server: LiveServer, count: int = 5) -> None:
    """A fresh connection gets ``count`` quick answers: the server is not stuck."""
    with trio.fail_after(WAIT):
        async with await server.connect(timeout=WAIT) as conn:
            for _ in range(count):
                response = await conn.request("GET", "/ping")
                assert response.status == 200 and response.json() == "pong"


def base_app(**options: Any) -> App:
    app = App(**options)

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    @app.get("/sync-ping")
    def sync_ping() -> str:
        return "pong"

    return app


async def raw_connection(server: LiveServer) -> trio.SocketStream:
    with trio.fail_after(WAIT):
        return await trio.open_tcp_stream(server.host, server.port)


async def read_until(stream: trio.SocketStream, marker: bytes) -> bytes:
    """Read until ``marker`` has arrived; bounded."""
    data = b""
    with trio.fail_after(WAIT):
        while marker not in data:
            chunk = await stream.receive_some(65536)
            assert chunk, f"closed before {marker!r}: {data!r}"
            data += chunk
    return data


class TestFailingTasks:
    async def test_a_raising_task_is_logged_reported_and_the_next_one_runs(self) -> None:
        """A task that raises is logged with its name and traceback, handed to
        ``on_task_error``, and the request's next task still runs."""
        reported: list[TaskFailure] = []
        second_ran = trio.Event()
        app = base_app(on_task_error=reported.append)

        async def explode(n: int) -> None:
            raise ValueError(f"task {n} exploded")

        def second() -> None:
            trio.from_thread.run_sync(second_ran.set)

        @app.get("/work")
        async def work(tasks: BackgroundTasks) -> str:
            tasks.add_task(explode, 1)
            tasks.add_task(second)
            return "accepted"

        with recording("triobg.background") as log:
            async with serve_live(app) as server:
                async with await server.connect(timeout=WAIT) as conn:
                    assert (await conn.request("GET", "/work")).json() == "accepted"
                with trio.fail_after(WAIT):
                    await second_ran.wait()
                await still_serving(server)
        (line,) = log.matching(r"failed$")
        assert "background task test_faults.TestFailingTasks." in line
        assert "explode of GET /work failed" in line
        record = next(r for r in log.records if r.levelno == logging.ERROR)
        assert record.exc_info is not None and record.exc_info[0] is ValueError
        assert [(f.task.rsplit(".", 1)[1], f.method, f.path) for f in reported] == [
            ("explode", "GET", "/work")
        ]
        stats = app.background.statistics()
        assert (stats.accepted, stats.completed, stats.failed) == (2, 1, 1)
        assert_books_balance(app)

    async def test_a_task_cancelling_its_own_work_counts_as_completed(self) -> None:
        """A task whose own timeout fires mid-way returns normally: completed, not cancelled."""
        app = base_app()
        done = trio.Event()

        async def bounded() -> None:
            with trio.move_on_after(0.01):
                await trio.sleep_forever()
            done.set()

        @app.get("/bounded")
        async def route(tasks: BackgroundTasks) -> str:
            tasks.add_task(bounded)
            return "ok"

        async with serve_live(app) as server, await server.connect(timeout=WAIT) as conn:
            await conn.request("GET", "/bounded")
            with trio.fail_after(WAIT):
                await done.wait()
        stats = app.background.statistics()
        assert (stats.completed, stats.cancelled) == (1, 0)
        assert_books_balance(app)

    async def test_a_task_cut_off_mid_way_by_the_drain_is_named(self) -> None:
        """At shutdown a task still running at the drain deadline is cancelled and named; a
        quick one on another request completes."""
        app = base_app(drain_timeout=0.3)
        started = trio.Event()
        quick_done = trio.Event()
        cleaned_up = trio.Event()

        async def endless(tag: str) -> None:
            started.set()
            try:
                await trio.sleep_forever()
            finally:
                cleaned_up.set()

        async def quick() -> None:
            await trio.sleep(0.05)
            quick_done.set()

        @app.get("/endless")
        async def endless_route(tasks: BackgroundTasks) -> str:
            tasks.add_task(endless, "e1")
            return "ok"

        @app.get("/quick")
        async def quick_route(tasks: BackgroundTasks) -> str:
            tasks.add_task(quick)
            return "ok"

        with recording("triobg.background") as log:
            async with serve_live(app) as server:
                async with await server.connect(timeout=WAIT) as conn:
                    await conn.request("GET", "/endless")
                    with trio.fail_after(WAIT):
                        await started.wait()
                    await conn.request("GET", "/quick")
                with trio.fail_after(WAIT):
                    await server.shutdown()
        assert quick_done.is_set() and cleaned_up.is_set()
        assert log.matching(
            r"endless of GET /endless cancelled while running \(the shutdown drain deadline"
        )
        stats = app.background.statistics()
        assert (stats.accepted, stats.completed, stats.cancelled) == (2, 1, 1)
        assert_books_balance(app)


class TestBlockingDefTasks:
    async def test_blocked_task_threads_do_not_stall_requests(self) -> None:
        """With every task thread blocked, async and ``def`` handlers still answer at once; the
        queued task runs when a thread frees up."""
        app = base_app(task_threads=2)
        release = threading.Event()
        running = threading.Semaphore(0)
        finished: list[int] = []

        def block(n: int) -> None:
            running.release()
            release.wait(WAIT * 2)
            finished.append(n)

        @app.get("/block/{n}")
        async def block_route(n: int, tasks: BackgroundTasks) -> int:
            tasks.add_task(block, n)
            return n

        try:
            async with serve_live(app) as server:
                async with await server.connect(timeout=WAIT) as conn:
                    for n in range(3):
                        assert (await conn.request("GET", f"/block/{n}")).json() == n
                for _ in range(2):  # both task threads are now held
                    with trio.fail_after(WAIT):
                        await trio.to_thread.run_sync(running.acquire)
                assert app.background.statistics().running == 2
                with trio.fail_after(2):  # a thread is blocked, not the event loop
                    await still_serving(server, 10)
                    async with await server.connect(timeout=WAIT) as conn:
                        assert (await conn.request("GET", "/sync-ping")).json() == "pong"
                release.set()
        finally:
            release.set()
        assert sorted(finished) == [0, 1, 2]
        assert app.background.statistics().completed == 3
        assert_books_balance(app)

    async def test_a_def_task_blocked_past_the_drain_is_named_and_abandoned(self) -> None:
        """A ``def`` task cannot be interrupted: at the deadline it is named as abandoned in its
        thread, and the server still stops on time."""
        app = base_app(drain_timeout=0.3)
        release = threading.Event()
        running = threading.Event()

        def stuck() -> None:
            running.set()
            release.wait(WAIT * 2)

        @app.get("/stuck")
        async def stuck_route(tasks: BackgroundTasks) -> str:
            tasks.add_task(stuck)
            return "ok"

        try:
            with recording("triobg.background") as log:
                async with serve_live(app) as server:
                    async with await server.connect(timeout=WAIT) as conn:
                        await conn.request("GET", "/stuck")
                    with trio.fail_after(WAIT):
                        await trio.to_thread.run_sync(running.wait)
                    began = trio.current_time()
                    with trio.fail_after(WAIT):
                        await server.shutdown()
                    took = trio.current_time() - began
        finally:
            release.set()
        assert took < 0.3 + 1.0
        assert log.matching(
            r"stuck of GET /stuck cancelled while running \(the shutdown drain deadline passed; "
            r"it was still running in a worker thread, which cannot be interrupted: it runs on "
            r"there, and the process waits up to \d+\.\d s for it before exiting\)"
        )
        assert app.background.statistics().cancelled == 1
        assert_books_balance(app)


class TestClientsThatMisbehave:
    async def test_hang_up_mid_upload(self) -> None:
        """A client that closes after part of its body: the handler never gets the partial body
        as if it were whole, the task it added first is discarded and named, no task runs on a
        truncated upload, and the server keeps serving."""
        app = base_app()
        seen: list[int] = []
        ran: list[str] = []

        async def audit() -> None:
            ran.append("audit")

        async def process(size: int) -> None:
            ran.append(f"process {size}")

        @app.post("/upload")
        async def upload(request: Request, tasks: BackgroundTasks) -> int:
            tasks.add_task(audit)
            body = await request.body()
            seen.append(len(body))
            tasks.add_task(process, len(body))
            return len(body)

        with recording("triobg.background") as log:
            async with serve_live(app) as server:
                stream = await raw_connection(server)
                head = b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n"
                await stream.send_all(head + b"x" * 100)
                await stream.aclose()
                line = await log.wait_for(r"audit of POST /upload discarded, never run")
                await still_serving(server)
        assert "the request failed (HTTPException)" in line
        assert seen == [] and ran == []
        stats = app.background.statistics()
        assert (stats.accepted, stats.discarded) == (1, 1)
        assert_books_balance(app)

    async def test_hang_up_mid_response_stops_the_stream(self) -> None:
        """A client that closes after the first chunk of an endless stream: the stream's
        generator is closed, its task is named as never run, the server keeps serving."""
        app = base_app()
        closed = trio.Event()
        chunks_sent = 0

        async def endless() -> AsyncIterator[bytes]:
            nonlocal chunks_sent
            try:
                while True:
                    chunks_sent += 1
                    yield b"chunk\n"
                    await trio.sleep(0.01)
            finally:
                closed.set()

        async def after_stream() -> None:
            raise AssertionError("ran after a stream the client never received")

        @app.get("/stream")
        async def stream_route(tasks: BackgroundTasks) -> StreamingResponse:
            tasks.add_task(after_stream)
            return StreamingResponse(endless(), media_type="text/plain")

        with recording("triobg") as log:
            async with serve_live(app) as server:
                stream = await raw_connection(server)
                await stream.send_all(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
                await read_until(stream, b"chunk\n")
                await stream.aclose()
                with trio.fail_after(WAIT):
                    await closed.wait()
                await still_serving(server)
                await log.wait_for(r"after_stream of GET /stream (discarded|cancelled)")
        assert app.background.statistics().completed == 0
        assert_books_balance(app)

    async def test_hang_up_right_after_the_response_does_not_cancel_the_task(self) -> None:
        """Closing the connection once the response arrived does not touch its task."""
        app = base_app()
        started = trio.Event()
        release = trio.Event()
        finished = trio.Event()

        async def task() -> None:
            started.set()
            await release.wait()
            finished.set()

        @app.get("/work")
        async def work(tasks: BackgroundTasks) -> str:
            tasks.add_task(task)
            return "ok"

        async with serve_live(app) as server:
            async with await server.connect(timeout=WAIT) as conn:
                assert (await conn.request("GET", "/work")).json() == "ok"
            with trio.fail_after(WAIT):
                await started.wait()
            await still_serving(server)
            release.set()
            with trio.fail_after(WAIT):
                await finished.wait()
        stats = app.background.statistics()
        assert (stats.completed, stats.cancelled) == (1, 0)
        assert_books_balance(app)

    async def test_a_client_that_stops_reading_is_dropped_others_are_served(self) -> None:
        """A client that never reads a large response holds only its own connection, which the
        server drops after ``send_timeout``; its task is named as never run."""
        app = base_app()
        closed = trio.Event()
        block = b"x" * 65536

        async def huge() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield block
            finally:
                closed.set()

        async def after() -> None:
            raise AssertionError("ran after a response that was never delivered")

        @app.get("/huge")
        async def huge_route(tasks: BackgroundTasks) -> StreamingResponse:
            tasks.add_task(after)
            return StreamingResponse(huge(), media_type="application/octet-stream")

        with recording("triobg") as log:
            async with serve_live(app, send_timeout=1.0) as server:
                stream = await raw_connection(server)
                try:
                    await stream.send_all(b"GET /huge HTTP/1.1\r\nhost: x\r\n\r\n")
                    await read_until(stream, b"\r\n\r\n")  # then never read again
                    await still_serving(server)
                    with trio.fail_after(WAIT + 5):
                        await closed.wait()
                    await still_serving(server)
                finally:
                    await stream.aclose()
                await log.wait_for(r"after of GET /huge (discarded|cancelled)")
        assert app.background.statistics().completed == 0
        assert_books_balance(app)

    async def test_slow_upload_is_received_whole_while_others_are_served(self) -> None:
        """A chunked upload trickling in over half a second arrives complete, its task sees all
        of it, and other connections are answered in the meantime."""
        app = base_app()
        processed: list[int] = []
        done = trio.Event()

        async def process(size: int) -> None:
            processed.append(size)
            done.set()

        @app.post("/upload")
        async def upload(request: Request, tasks: BackgroundTasks) -> int:
            size = len(await request.body())
            tasks.add_task(process, size)
            return size

        sent_chunks = 0
        served_during_upload = 0

        async def trickle() -> AsyncIterator[bytes]:
            nonlocal sent_chunks
            for _ in range(10):
                sent_chunks += 1
                yield b"y" * 1000
                await trio.sleep(0.05)  # the client's pace, not a wait for the server

        async with serve_live(app) as server:
            async with trio.open_nursery() as nursery:

                async def others() -> None:
                    nonlocal served_during_upload
                    async with await server.connect(timeout=WAIT) as conn:
                        while sent_chunks < 10:
                            assert (await conn.request("GET", "/ping")).json() == "pong"
                            served_during_upload += 1

                nursery.start_soon(others)
                async with await server.connect(timeout=WAIT) as conn:
                    response = await conn.request("POST", "/upload", body=trickle())
            with trio.fail_after(WAIT):
                await done.wait()
        assert response.json() == 10_000
        assert processed == [10_000]
        assert served_during_upload >= 5
        assert_books_balance(app)
