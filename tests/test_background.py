"""BackgroundTasks semantics, in-process: order, timing, threads, failures, drain, accounting."""

from __future__ import annotations

import contextvars
import functools
import logging
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio
import trio.testing

from triobg import (
    App,
    BackgroundStatistics,
    BackgroundTasks,
    Depends,
    HTTPException,
    JSONResponse,
    Response,
    StreamingResponse,
    TaskFailure,
)
from triobg._background import _is_task_failure, is_async_callable
from triobg.testing import TestClient, serve_live


def assert_books_balance(stats: BackgroundStatistics) -> None:
    assert stats.accepted == (
        stats.queued
        + stats.running
        + stats.completed
        + stats.failed
        + stats.cancelled
        + stats.discarded
    )


class TestCollecting:
    async def test_one_object_per_request_shared_by_handler_dependency_and_subdependency(
        self,
    ) -> None:
        """Every level sees the same object; tasks run in the order they were added."""
        app = App()
        seen: list[BackgroundTasks] = []
        ran: list[str] = []

        async def record(what: str) -> None:
            ran.append(what)

        def sub(tasks: BackgroundTasks) -> None:
            seen.append(tasks)
            tasks.add_task(record, "sub-dependency")

        def dep(tasks: BackgroundTasks, _: None = Depends(sub)) -> None:
            seen.append(tasks)
            tasks.add_task(record, "dependency")

        @app.get("/")
        async def handler(tasks: BackgroundTasks, _: None = Depends(dep)) -> str:
            seen.append(tasks)
            tasks.add_task(record, "handler")
            return "ok"

        async with TestClient(app, wait_for_tasks=True) as client:
            await client.get("/")
            await client.get("/")
        assert seen[0] is seen[1] is seen[2]
        assert seen[3] is not seen[0]
        assert ran == ["sub-dependency", "dependency", "handler"] * 2

    async def test_add_task_passes_args_and_kwargs(self) -> None:
        """``add_task(func, *args, **kwargs)`` calls ``func(*args, **kwargs)``."""
        app = App()
        got: list[tuple[Any, ...]] = []

        def task(a: int, b: int, *, c: str) -> None:
            got.append((a, b, c))

        @app.post("/")
        async def handler(tasks: BackgroundTasks) -> None:
            tasks.add_task(task, 1, 2, c="three")

        async with TestClient(app, wait_for_tasks=True) as client:
            await client.post("/")
        assert got == [(1, 2, "three")]

    def test_add_task_rejects_non_callables(self) -> None:
        """A typo such as ``add_task(func())`` fails at the call site, not later in the log."""
        with pytest.raises(TypeError, match="callable"):
            BackgroundTasks().add_task(None)  # type: ignore[arg-type]

    def test_async_detection(self) -> None:
        """Partials of async functions and objects with an async ``__call__`` count as async."""

        async def coro() -> None: ...

        def sync() -> None: ...

        class AsyncCallable:
            async def __call__(self) -> None: ...

        class SyncCallable:
            def __call__(self) -> None: ...

        assert is_async_callable(coro)
        assert is_async_callable(functools.partial(coro))
        assert is_async_callable(functools.partial(functools.partial(coro)))
        assert is_async_callable(AsyncCallable())
        assert not is_async_callable(sync)
        assert not is_async_callable(functools.partial(sync))
        assert not is_async_callable(SyncCallable())


class TestTiming:
    async def test_response_is_complete_before_the_task_starts(self) -> None:
        """The client has the whole response while the task has not started yet."""
        app = App()
        started = trio.Event()
        release = trio.Event()

        async def task() -> None:
            started.set()
            await release.wait()

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> dict[str, str]:
            tasks.add_task(task)
            return {"status": "accepted"}

        async with TestClient(app) as client:
            response = await client.get("/")
            assert response.json() == {"status": "accepted"}
            assert app.background.statistics().accepted == 1
            await started.wait()
            assert app.background.statistics().running == 1
            release.set()
            await client.wait_background()
        assert app.background.statistics().completed == 1

    async def test_streaming_tasks_start_after_the_last_chunk(self) -> None:
        """For a StreamingResponse, no task starts before the final chunk has been sent."""
        app = App()
        events: list[str] = []

        async def task() -> None:
            events.append("task")

        async def body() -> AsyncIterator[bytes]:
            for i in range(3):
                events.append(f"chunk {i}")
                yield b"x"

        @app.get("/stream")
        async def handler(tasks: BackgroundTasks) -> StreamingResponse:
            tasks.add_task(task)
            return StreamingResponse(body(), media_type="text/plain")

        async with TestClient(app) as client, client.stream("GET", "/stream") as response:
            chunks = [chunk async for chunk in response.iter_bytes()]
            await client.wait_background()
        assert chunks == [b"x", b"x", b"x"]
        assert events == ["chunk 0", "chunk 1", "chunk 2", "task"]


class TestExecution:
    async def test_async_tasks_run_in_the_loop_and_def_tasks_in_a_worker_thread(self) -> None:
        """async def tasks stay on the trio thread; plain def tasks never do."""
        app = App()
        threads: dict[str, int] = {}

        async def async_task() -> None:
            threads["async"] = threading.get_ident()

        def sync_task() -> None:
            threads["sync"] = threading.get_ident()

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> None:
            tasks.add_task(async_task)
            tasks.add_task(sync_task)

        async with TestClient(app, wait_for_tasks=True) as client:
            await client.get("/")
        assert threads["async"] == threading.get_ident()
        assert threads["sync"] != threading.get_ident()

    async def test_consecutive_def_tasks_share_one_thread_hop(self, monkeypatch: Any) -> None:
        """Three def tasks, an async one, then two def tasks: two hops, order kept."""
        app = App()
        order: list[str] = []
        hops = 0
        real = trio.to_thread.run_sync

        async def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal hops
            hops += 1
            return await real(*args, **kwargs)

        monkeypatch.setattr(trio.to_thread, "run_sync", counting)

        def sync(name: str) -> None:
            order.append(name)

        async def asynchronous(name: str) -> None:
            order.append(name)

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> None:
            for name in ("s1", "s2", "s3"):
                tasks.add_task(sync, name)
            tasks.add_task(asynchronous, "a1")
            tasks.add_task(sync, "s4")
            tasks.add_task(sync, "s5")

        async with TestClient(app, wait_for_tasks=True) as client:
            await client.get("/")
        assert order == ["s1", "s2", "s3", "a1", "s4", "s5"]
        assert hops == 2

    async def test_def_tasks_use_the_apps_task_thread_limiter(self) -> None:
        """def tasks are bounded by ``task_threads``, separate from the sync-handler limiter."""
        app = App(task_threads=1)
        assert app.background.thread_limiter.total_tokens == 1
        assert app.background.thread_limiter is not app.sync_limiter

    async def test_context_variables_set_by_the_request_are_visible_in_tasks(self) -> None:
        """ContextVars set in a sync dependency (in a thread) and the handler reach the tasks."""
        app = App()
        user: contextvars.ContextVar[str] = contextvars.ContextVar("user")
        trace: contextvars.ContextVar[str] = contextvars.ContextVar("trace")
        seen: dict[str, str] = {}

        def authenticate() -> None:  # sync: runs in a worker thread
            user.set("ada")

        async def async_task() -> None:
            seen["async"] = f"{user.get()}/{trace.get()}"

        def sync_task() -> None:
            seen["sync"] = f"{user.get()}/{trace.get()}"

        @app.get("/", dependencies=[Depends(authenticate)])
        async def handler(tasks: BackgroundTasks) -> None:
            trace.set("t-1")
            tasks.add_task(async_task)
            tasks.add_task(sync_task)

        async with TestClient(app, wait_for_tasks=True) as client:
            await client.get("/")
        assert seen == {"async": "ada/t-1", "sync": "ada/t-1"}


class TestFailures:
    async def test_a_failing_task_is_logged_and_later_tasks_still_run(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The failure names the task and the request; the next task runs anyway."""
        app = App()
        ran: list[str] = []
        reported: list[TaskFailure] = []

        def explode() -> None:
            raise ValueError("smtp down")

        async def boom() -> None:
            raise KeyError("gone")

        def after() -> None:
            ran.append("after")

        @app.post("/notify/{who}")
        async def handler(who: str, tasks: BackgroundTasks) -> None:
            tasks.add_task(explode)
            tasks.add_task(boom)
            tasks.add_task(after)

        app.background.on_task_error = reported.append
        caplog.set_level(logging.ERROR, logger="triobg.background")
        async with TestClient(app, raise_task_errors=False) as client:
            assert (await client.post("/notify/ada")).status_code == 200
            assert (await client.post("/notify/bob")).status_code == 200
            await client.wait_background()
        assert ran == ["after", "after"]
        messages = [r.getMessage() for r in caplog.records]
        assert any("explode" in m and "POST /notify/ada" in m for m in messages)
        assert any("boom" in m and "POST /notify/bob" in m for m in messages)
        assert all(r.exc_info for r in caplog.records)
        # Within one request the order is fixed; across requests it depends on the threads.
        for who in ("ada", "bob"):
            mine = [f for f in reported if f.path == f"/notify/{who}"]
            assert [type(f.exception) for f in mine] == [ValueError, KeyError]
            assert all(f.method == "POST" for f in mine)
        stats = app.background.statistics()
        assert (stats.failed, stats.completed) == (4, 2)
        assert_books_balance(stats)

    async def test_async_on_task_error_is_awaited_and_its_own_failure_is_contained(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An async reporter is awaited; a reporter that raises is logged, nothing else breaks."""
        calls: list[str] = []

        async def report(failure: TaskFailure) -> None:
            calls.append(failure.task)
            raise RuntimeError("reporter broke")

        app = App(on_task_error=report)

        def bad() -> None:
            raise ValueError

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> None:
            tasks.add_task(bad)

        async with TestClient(app, raise_task_errors=False) as client:
            await client.get("/")
            await client.wait_background()
            assert (await client.get("/")).status_code == 200
        assert calls and calls[0].endswith("bad")
        assert "on_task_error raised" in caplog.text

    async def test_wait_background_raises_the_task_exception(self) -> None:
        """In tests, a failing task fails the test."""
        app = App()

        async def bad() -> None:
            raise ValueError("task broke")

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> None:
            tasks.add_task(bad)

        async with TestClient(app) as client:
            await client.get("/")
            with pytest.raises(ValueError, match="task broke"):
                await client.wait_background()


class TestTasksThatRaiseSystemExitOrKeyboardInterrupt:
    """One rule for both kinds of task: whatever a task raises is a failed task (#13)."""

    @pytest.mark.parametrize("kind", ["async", "def"])
    async def test_exit_and_interrupt_are_failed_tasks_and_the_app_keeps_serving(
        self, kind: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """``sys.exit()``, ``KeyboardInterrupt`` and a group of them are logged and reported as
        failures, the next task runs, and the app answers the next request."""
        reported: list[TaskFailure] = []
        app = App(on_task_error=reported.append)
        ran: list[str] = []

        async def grouped_exit() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(sys.exit, 2))

        async def async_raise(error: BaseException) -> None:
            raise error

        def sync_raise(error: BaseException) -> None:
            raise error

        def after() -> None:
            ran.append("after")

        raise_ = async_raise if kind == "async" else sync_raise

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> str:
            tasks.add_task(raise_, SystemExit(1))
            tasks.add_task(raise_, KeyboardInterrupt())
            if kind == "async":
                tasks.add_task(grouped_exit)
            tasks.add_task(after)
            return "ok"

        caplog.set_level(logging.ERROR, logger="triobg.background")
        async with TestClient(app, raise_task_errors=False) as client:
            assert (await client.get("/")).status_code == 200
            await client.wait_background()
            assert (await client.get("/")).status_code == 200
            await client.wait_background()
        assert ran == ["after", "after"]
        expected = [SystemExit, KeyboardInterrupt] + (
            [BaseExceptionGroup] if kind == "async" else []
        )
        assert [type(f.exception) for f in reported] == expected * 2
        assert sum("failed" in r.getMessage() for r in caplog.records) == len(expected) * 2
        stats = app.background.statistics()
        assert (stats.failed, stats.completed, stats.cancelled) == (len(expected) * 2, 2, 0)
        assert_books_balance(stats)

    async def test_sys_exit_in_an_async_task_does_not_stop_a_real_server(self) -> None:
        """Over hypercorn: the task fails, the server answers the next request and shuts down
        as usual."""
        app = App()
        failed = trio.Event()
        app.background.on_task_error = lambda failure: failed.set()

        async def quit_() -> None:
            sys.exit(3)

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> str:
            tasks.add_task(quit_)
            return "ok"

        async with serve_live(app) as server, await server.connect(timeout=5) as conn:
            with trio.fail_after(5):
                assert (await conn.request("GET", "/")).status == 200
                await failed.wait()
                assert (await conn.request("GET", "/")).status == 200
        assert server.stopped
        assert app.background.statistics().failed == 2

    def test_a_ctrl_c_delivered_by_trio_is_not_the_tasks_failure(self) -> None:
        """A ``KeyboardInterrupt`` raised by trio's SIGINT handler keeps propagating; one the
        task raised itself, a ``SystemExit`` or a group of them is the task's failure."""
        trio_handler: dict[str, Any] = {"__name__": "trio._core._ki"}
        exec("def handler():\n    raise KeyboardInterrupt", trio_handler)
        with pytest.raises(KeyboardInterrupt) as from_signal:
            trio_handler["handler"]()
        assert not _is_task_failure(from_signal.value)
        own = KeyboardInterrupt()
        try:
            raise own
        except KeyboardInterrupt:
            pass
        assert _is_task_failure(own)
        assert _is_task_failure(SystemExit(1))
        assert _is_task_failure(BaseExceptionGroup("g", [SystemExit(1), ValueError()]))
        cancelled = BaseExceptionGroup("g", [SystemExit(1), trio.Cancelled._create()])
        assert not _is_task_failure(cancelled)


class TestDefTasksThatReturnAnAwaitable:
    """A sync callable that returns a coroutine has not done its work yet (#13)."""

    async def test_lambda_and_sync_decorator_returning_coroutines_are_awaited_in_order(
        self,
    ) -> None:
        """``add_task(lambda: send(...))`` and a sync wrapper around an ``async def`` run their
        coroutine in the event loop, and the tasks after them wait for it."""
        app = App()
        ran: list[str] = []
        loop_thread = threading.get_ident()

        async def send(what: str) -> None:
            await trio.lowlevel.checkpoint()
            assert threading.get_ident() == loop_thread
            ran.append(what)

        def logged(func: Any) -> Any:
            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                ran.append("wrapper")
                return func(*args, **kwargs)

            return wrapper

        @logged
        async def decorated(what: str) -> None:
            await send(what)

        def plain(what: str) -> None:
            ran.append(what)

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> str:
            tasks.add_task(plain, "first")
            tasks.add_task(lambda: send("lambda"))
            tasks.add_task(plain, "between")
            tasks.add_task(decorated, "decorated")
            tasks.add_task(plain, "last")
            return "ok"

        async with TestClient(app) as client:
            assert (await client.get("/")).status_code == 200
            await client.wait_background()
        assert ran == ["first", "lambda", "between", "wrapper", "decorated", "last"]
        stats = app.background.statistics()
        assert (stats.completed, stats.failed) == (5, 0)
        assert_books_balance(stats)

    async def test_a_returned_coroutine_that_fails_is_a_failed_task(self) -> None:
        """The failure of the awaited coroutine is the task's failure, reported and logged."""
        reported: list[TaskFailure] = []
        app = App(on_task_error=reported.append)

        async def broken() -> None:
            raise ValueError("smtp down")

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> str:
            tasks.add_task(lambda: broken())
            return "ok"

        async with TestClient(app, raise_task_errors=False) as client:
            await client.get("/")
            await client.wait_background()
        assert [type(f.exception) for f in reported] == [ValueError]
        assert "<lambda>" in reported[0].task
        stats = app.background.statistics()
        assert (stats.completed, stats.failed) == (0, 1)

    async def test_a_returned_coroutine_cut_off_by_the_drain_is_named(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A returned coroutine still running at the drain deadline is cancelled and named.

        (A real clock: MockClock's autojump would skip ahead while the worker thread runs.)
        """
        app = App(drain_timeout=0.2)
        started = trio.Event()

        async def forever() -> None:
            started.set()
            await trio.sleep_forever()

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> str:
            tasks.add_task(lambda: forever())
            return "ok"

        caplog.set_level(logging.WARNING, logger="triobg.background")
        with trio.fail_after(10):
            async with TestClient(app, raise_task_errors=False) as client:
                await client.get("/")
                await started.wait()
        assert "cancelled while running" in caplog.text
        assert "<lambda>" in caplog.text
        stats = app.background.statistics()
        assert (stats.cancelled, stats.running) == (1, 0)


class TestErrorsBeforeTheResponse:
    async def test_tasks_added_before_an_http_exception_are_discarded_and_named(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A failed request's follow-up work does not run, and the log says so by name."""
        app = App()
        ran: list[str] = []

        def send_receipt() -> None:
            ran.append("receipt")

        @app.post("/pay")
        async def pay(tasks: BackgroundTasks) -> None:
            tasks.add_task(send_receipt)
            raise HTTPException(402, "card declined")

        async with TestClient(app) as client:
            response = await client.post("/pay")
            await client.wait_background()
        assert response.status_code == 402
        assert ran == []
        assert "send_receipt" in caplog.text
        assert "discarded" in caplog.text
        stats = app.background.statistics()
        assert stats.discarded == 1
        assert_books_balance(stats)

    async def test_an_exception_handlers_response_can_carry_its_own_tasks(self) -> None:
        """Work that must happen on failure goes on the error response's ``background``."""
        app = App()
        ran: list[str] = []

        class Declined(Exception):
            pass

        def audit(what: str) -> None:
            ran.append(what)

        @app.exception_handler(Declined)
        async def declined(request: Any, error: Declined) -> Response:
            tasks = BackgroundTasks()
            tasks.add_task(audit, "declined")
            return JSONResponse({"detail": "declined"}, 402, background=tasks)

        @app.post("/pay")
        async def pay(tasks: BackgroundTasks) -> None:
            tasks.add_task(audit, "receipt")
            raise Declined

        async with TestClient(app, wait_for_tasks=True) as client:
            assert (await client.post("/pay")).status_code == 402
        assert ran == ["declined"]


class TestMerging:
    async def test_response_background_is_merged_after_injected_tasks(self) -> None:
        """Unlike FastAPI (fastapi#11215), a custom Response's tasks do not replace the
        injected ones: both run, injected first."""
        app = App()
        ran: list[str] = []

        def task(name: str) -> None:
            ran.append(name)

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> Response:
            tasks.add_task(task, "injected")
            own = BackgroundTasks()
            own.add_task(task, "response")
            return JSONResponse({"ok": True}, background=own)

        async with TestClient(app, wait_for_tasks=True) as client:
            await client.get("/")
        assert ran == ["injected", "response"]
        assert app.background.statistics().completed == 2


class TestTeardown:
    async def test_yield_dependency_tears_down_after_the_tasks_that_use_it(self) -> None:
        """A task can still use the dependency's resource; teardown waits for the tasks."""
        app = App()
        events: list[str] = []

        async def connection() -> AsyncIterator[str]:
            events.append("open")
            yield "conn"
            events.append("close")

        async def task(conn: str) -> None:
            events.append(f"task uses {conn}")

        @app.get("/")
        async def handler(tasks: BackgroundTasks, conn: str = Depends(connection)) -> None:
            tasks.add_task(task, conn)
            events.append("handler")

        async with TestClient(app, wait_for_tasks=True) as client:
            await client.get("/")
        assert events == ["open", "handler", "task uses conn", "close"]

    async def test_function_scope_tears_down_before_the_response(self) -> None:
        """``Depends(scope="function")`` is the opt-out: teardown before the response."""
        app = App()
        events: list[str] = []

        def resource() -> Iterator[str]:
            yield "r"
            events.append("closed")

        async def task() -> None:
            events.append("task")

        @app.get("/")
        async def handler(
            tasks: BackgroundTasks, r: str = Depends(resource, scope="function")
        ) -> None:
            tasks.add_task(task)
            events.append("handler")

        async with TestClient(app) as client:
            await client.get("/")
            assert events[:2] == ["handler", "closed"]
            await client.wait_background()
        assert events == ["handler", "closed", "task"]

    async def test_tasks_added_during_teardown_still_run(self) -> None:
        """Never silently dropped (FastAPI drops them): they run after the teardown."""
        app = App()
        events: list[str] = []

        async def task(name: str) -> None:
            events.append(name)

        async def session(tasks: BackgroundTasks) -> AsyncIterator[None]:
            yield
            events.append("teardown")
            tasks.add_task(task, "added in teardown")

        @app.get("/")
        async def handler(tasks: BackgroundTasks, _: None = Depends(session)) -> None:
            tasks.add_task(task, "from handler")

        async with TestClient(app, wait_for_tasks=True) as client:
            await client.get("/")
        assert events == ["from handler", "teardown", "added in teardown"]

    async def test_add_task_after_the_request_finished_raises(self) -> None:
        """A leaked BackgroundTasks object refuses work loudly instead of losing it."""
        app = App()
        leaked: list[BackgroundTasks] = []

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> None:
            leaked.append(tasks)

        async with TestClient(app, wait_for_tasks=True) as client:
            await client.get("/")
        with pytest.raises(RuntimeError, match="has finished"):
            leaked[0].add_task(print)


class TestShutdownDrain:
    async def test_drain_waits_for_running_tasks_within_the_deadline(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A 20 s task finishes inside the default 30 s drain (instantly, with MockClock)."""
        app = App()
        done: list[float] = []

        async def slow() -> None:
            await trio.sleep(20)
            done.append(trio.current_time())

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> None:
            tasks.add_task(slow)

        start = trio.current_time()
        async with TestClient(app) as client:
            await client.get("/")
        assert done and done[0] - start == pytest.approx(20)
        stats = app.background.statistics()
        assert (stats.completed, stats.cancelled) == (1, 0)

    async def test_tasks_past_the_deadline_are_cancelled_and_every_one_is_named(
        self, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """At the 30 s deadline the running task and the ones queued behind it are named."""
        app = App()
        caplog.set_level(logging.INFO, logger="triobg.background")

        async def forever(label: str) -> None:
            await trio.sleep(3600)

        async def never_started(label: str) -> None:
            raise AssertionError("must not start")

        @app.get("/{n}")
        async def handler(n: int, tasks: BackgroundTasks) -> None:
            tasks.add_task(forever, f"f{n}")
            tasks.add_task(never_started, f"n{n}")

        start = trio.current_time()
        async with TestClient(app) as client:
            for n in range(3):
                await client.get(f"/{n}")
        assert trio.current_time() - start == pytest.approx(30)
        cancelled = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert sum("forever" in m and "while running" in m for m in cancelled) == 3
        assert sum("never_started" in m and "before it started" in m for m in cancelled) == 3
        assert all("drain deadline" in m for m in cancelled)
        stats = app.background.statistics()
        assert (stats.accepted, stats.cancelled, stats.completed) == (6, 6, 0)
        assert_books_balance(stats)

    async def test_drain_timeout_is_configurable(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """``App(drain_timeout=...)`` sets the deadline."""
        app = App(drain_timeout=2.5)

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> None:
            tasks.add_task(trio.sleep, 100)

        start = trio.current_time()
        async with TestClient(app) as client:
            await client.get("/")
        assert trio.current_time() - start == pytest.approx(2.5)
        assert app.background.statistics().cancelled == 1

    async def test_a_blocking_def_task_at_the_deadline_is_abandoned_and_named(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A thread cannot be interrupted: at the deadline its task is named as abandoned in
        its worker thread, later def tasks of the batch never start, and shutdown returns."""
        app = App(drain_timeout=0)
        release = threading.Event()
        entered = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def blocking() -> None:
            token.run_sync_soon(entered.set)
            release.wait(10)

        def second() -> None:
            raise AssertionError("must not start")

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> None:
            tasks.add_task(blocking)
            tasks.add_task(second)

        try:
            async with TestClient(app) as client:
                await client.get("/")
                await entered.wait()
        finally:
            release.set()
        assert "abandoned" in caplog.text
        assert "blocking" in caplog.text
        assert "second" in caplog.text and "before it started" in caplog.text
        stats = app.background.statistics()
        assert (stats.cancelled, stats.running) == (2, 0)
        assert_books_balance(stats)

    async def test_cancelling_the_owner_names_the_cut_off_tasks(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """If the nursery that owns the request is cancelled, the lost tasks are named."""
        app = App()
        started = trio.Event()

        async def long(label: str) -> None:
            started.set()
            await trio.sleep_forever()

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> None:
            tasks.add_task(long, "first")
            tasks.add_task(long, "second")

        with trio.CancelScope() as scope:
            async with TestClient(app) as client:
                await client.get("/")
                await started.wait()
                scope.cancel()
        named = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(named) == 2
        assert "while running" in named[0] and "before it started" in named[1]
        assert all("cancelled during the shutdown drain" in m for m in named)
        assert_books_balance(app.background.statistics())


class TestBackpressure:
    async def test_running_tasks_are_capped_and_the_rest_wait_their_turn(self) -> None:
        """With ``max_running_tasks=2``, a third request's task starts only when one ends."""
        app = App(max_running_tasks=2)
        running = 0
        peak = 0
        gates = [trio.Event() for _ in range(3)]

        async def task(i: int) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await gates[i].wait()
            running -= 1

        @app.get("/{i}")
        async def handler(i: int, tasks: BackgroundTasks) -> None:
            tasks.add_task(task, i)

        async with TestClient(app) as client:
            for i in range(3):
                await client.get(f"/{i}")
            await trio.testing.wait_all_tasks_blocked()
            stats = app.background.statistics()
            assert (stats.running, stats.queued) == (2, 1)
            gates[0].set()
            await trio.testing.wait_all_tasks_blocked()
            assert app.background.statistics().running == 2
            gates[1].set()
            gates[2].set()
            await client.wait_background()
        assert peak == 2

    async def test_a_full_queue_answers_503_and_counts_the_rejection(self) -> None:
        """Beyond ``max_queued_tasks`` add_task refuses: the client learns the work was not
        accepted (503 + Retry-After) instead of being told it was."""
        app = App(max_running_tasks=1, max_queued_tasks=2)
        gate = trio.Event()

        @app.get("/")
        async def handler(tasks: BackgroundTasks) -> None:
            tasks.add_task(gate.wait)

        async with TestClient(app) as client:
            codes = [(await client.get("/")).status_code for _ in range(4)]
            last = await client.get("/")
            gate.set()
            await client.wait_background()
        # One running, two queued; the fourth and fifth are refused.
        assert codes == [200, 200, 200, 503]
        assert last.status_code == 503
        assert last.headers["retry-after"] == "1"
        assert "too many background tasks" in last.json()["detail"]
        stats = app.background.statistics()
        assert (stats.rejected, stats.completed) == (2, 3)
        assert_books_balance(stats)
