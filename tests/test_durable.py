"""Durable tasks above the store: ``@app.task``, ``add_task``, the pipeline step, ``app.tasks``.

All with the in-memory store. The pipeline step's promise is checked at the byte level: an
ASGI wrapper looks into the store at the instant the response starts.
"""

from __future__ import annotations

import inspect
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

import triobg
from triobg import (
    App,
    BackgroundTasks,
    DurableTask,
    SQLiteTaskStore,
    TaskNotFound,
    TaskResult,
    TaskStatus,
)
from triobg._durable._codec import (
    Parameters,
    _dumps,
    _plain_json,
    decode_arguments,
    encode_call,
)
from triobg._durable._memory import MemoryTaskStore
from triobg._durable._store import NewTask, TaskStore
from triobg.testing import TestClient

Message = dict[str, Any]


@attrs.frozen
class Point:
    x: int
    y: int


class FailingStore(MemoryTaskStore):
    """A memory store whose enqueue fails the way a full disk or a locked file does."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    async def enqueue(self, tasks: Any, *, claim: Any = None) -> Any:
        if self.broken:
            raise OSError(28, "No space left on device")
        return await super().enqueue(tasks, claim=claim)


async def wait_status(app: App, task_id: str, *statuses: TaskStatus) -> TaskResult:
    """Poll the store (bounded) until the task reaches one of ``statuses``."""
    with trio.fail_after(5):
        while True:
            result = await app.tasks.get(task_id)
            if result.status in statuses:
                return result
            await trio.sleep(0.005)


async def worker_started(app: App) -> None:
    """Wait (bounded) until the lifespan's worker has made its first claim."""
    with trio.fail_after(5):
        while app.tasks.worker is None or not app.tasks.worker.started:  # noqa: ASYNC110 - a state
            await trio.sleep(0.001)


def find(app: App, suffix: str) -> DurableTask[..., Any]:
    """The declared task whose name ends with ``.suffix``."""
    (task,) = [t for name, t in app.tasks.registry.items() if name.endswith("." + suffix)]
    return task


def make_app(store: TaskStore | None = None) -> tuple[App, list[Any]]:
    app = App(task_store=store or MemoryTaskStore())
    app.tasks.poll_interval = 60  # prove that local work never waits for a poll
    ran: list[Any] = []

    @app.task(retries=1)
    async def record(point: Point, note: str = "") -> dict[str, int]:
        ran.append((point, note))
        return {"sum": point.x + point.y}

    @app.task()
    def record_sync(items: list[Point]) -> int:
        ran.append(items)
        return len(items)

    def plain(tag: str) -> None:
        ran.append(("plain", tag))

    @app.post("/points")
    async def add(x: int, y: int, tasks: BackgroundTasks) -> dict[str, Any]:
        result = tasks.add_task(record, Point(x, y), note="hi")
        tasks.add_task(plain, "p")
        assert isinstance(result, TaskResult)
        return {"id": result.id, "status": result.status.value}

    @app.post("/many")
    def add_sync(tasks: BackgroundTasks) -> dict[str, Any]:
        result = tasks.add_task(record_sync, [Point(1, 2), Point(3, 4)])
        assert result is not None
        return {"id": result.id}

    @app.post("/broken")
    async def broken(tasks: BackgroundTasks) -> None:
        tasks.add_task(record, Point(0, 0))
        raise RuntimeError("handler bug")

    @app.get("/tasks/{task_id}")
    async def show(task_id: str) -> dict[str, Any]:
        try:
            result = await app.tasks.get(task_id)
        except TaskNotFound:
            raise triobg.HTTPException(404, "no such task") from None
        return {"status": result.status.value, "value": result.return_value}

    return app, ran


class TestDeclaring:
    def test_the_function_stays_callable(self) -> None:
        """``@app.task`` returns a DurableTask that still calls the function directly."""
        app, ran = make_app()
        task = find(app, "record_sync")
        assert task([Point(1, 1)]) == 1
        assert task.name.endswith("record_sync")
        assert ran == [[Point(1, 1)]]

    def test_a_name_cannot_be_declared_twice(self) -> None:
        """Two functions under one name would make stored tasks ambiguous."""
        app = App(task_store=MemoryTaskStore())
        app.task(name="job")(lambda: None)
        with pytest.raises(ValueError, match="already declared"):
            app.task(name="job")(lambda: 1)

    def test_a_bad_store_url_fails_at_app_creation(self) -> None:
        """An unknown URL is reported where the app is built, not at the first request."""
        with pytest.raises(ValueError, match="unknown task store URL"):
            App(task_store="redis://localhost")

    def test_an_app_without_durable_tasks_creates_no_file(
        self, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Declaring nothing durable costs nothing: no store, no file."""
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("TRIOBG_TASK_STORE", raising=False)

        async def main() -> None:
            app = App()

            @app.get("/")
            async def root(tasks: BackgroundTasks) -> str:
                tasks.add_task(lambda: None)
                return "ok"

            async with TestClient(app) as client:
                assert (await client.get("/")).status_code == 200
            assert app.tasks._store is None

        trio.run(main)
        assert list(tmp_path.iterdir()) == []

    def test_an_unstorable_argument_fails_at_add_task_naming_it(self) -> None:
        """A value that is not JSON raises TypeError naming the task and the argument."""
        app, _ = make_app()
        task = find(app, "record")
        with pytest.raises(TypeError, match=r"record: argument 'note' \(object\)"):
            BackgroundTasks().add_task(task, Point(1, 2), note=object())
        with pytest.raises(TypeError, match="record: missing a required argument"):
            BackgroundTasks().add_task(task)


def _plain(a: str, b: int = 1, *, c: float = 0.5, d: bool = False) -> None: ...


def _varied(a: int, /, b: str, *args: int, c: str = "x", **kwargs: Any) -> None: ...


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    (("x",), {}),
    (("x", 2), {}),
    (("x",), {"d": True, "c": 1.5}),
    ((), {"b": 3, "a": "y"}),
    (("x", 2, 3), {}),  # too many positional
    ((), {}),  # a required argument missing
    (("x",), {"a": "y"}),  # given twice
    (("x",), {"e": 1}),  # unknown
    (("x", 2), {"b": 3}),  # given twice
]


class TestArguments:
    @pytest.mark.parametrize("func", [_plain, _varied])
    @pytest.mark.parametrize(("args", "kwargs"), CALLS)
    def test_binding_matches_the_signature_s(
        self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """The fast binding gives ``Signature.bind``'s arguments, in order, or its TypeError."""
        try:
            expected: Any = list(inspect.signature(func).bind(*args, **kwargs).arguments.items())
        except TypeError as error:
            expected = str(error)
        try:
            got: Any = list(Parameters.of(func).bind(args, kwargs).items())
        except TypeError as error:
            got = str(error)
        assert got == expected

    def test_plain_values_decode_as_the_converter_would(self) -> None:
        """A value already of its hint's exact type is kept; others still go through cattrs."""
        parameters = Parameters.of(_plain)
        hints = {"a": str, "b": int, "c": float, "d": bool}
        text = encode_call("t", parameters, {}, ("x", True), {"c": 2, "d": True})[0]
        assert text == '{"a":"x","b":true,"c":2,"d":true}'
        args, kwargs = decode_arguments(hints, parameters, text)
        assert args == []
        assert kwargs == {"a": "x", "b": 1, "c": 2.0, "d": True}
        assert [type(v) for v in kwargs.values()] == [str, int, float, bool]

    @pytest.mark.parametrize(
        "value",
        [
            "", "plain", 'quote " backslash \\ slash /', "tab\t nl\n nul\x00 del\x7f",
            "é ü ß 中文", "emoji \U0001f600", "lone surrogate \ud800", 0, -1, 2**70, -(2**70),
            0.1, -0.0, 1e300, 5e-324, 1.0, True, False, None,
        ],
    )  # fmt: skip
    def test_plain_arguments_are_written_as_json_dumps_writes_them(self, value: Any) -> None:
        """The direct writing of plain values gives ``_dumps``' very text."""
        arguments = {"a": value, "naïve key": value}
        assert _plain_json(arguments) == _dumps(arguments)

    def test_an_int_too_long_for_json_is_a_type_error_naming_it(self) -> None:
        """An ``int`` too long to write (Python's 4300-digit limit) is refused as every
        unstorable argument is: a ``TypeError`` naming the task and the argument."""
        with pytest.raises(TypeError, match="durable task t: argument 'a' \\(int\\)"):
            encode_call("t", Parameters.of(_plain), {}, (10**5000,), {})

    @pytest.mark.parametrize("value", [[1], {"x": 1}, (1,), Point(1, 2), float("nan"), 1 + 2j])
    def test_other_values_go_the_general_way(self, value: Any) -> None:
        """Anything but a finite plain value is left to cattrs and ``_dumps``."""
        assert _plain_json({"a": value}) is None

    @pytest.mark.parametrize(
        ("hints", "args", "kwargs", "call"),
        [
            ({"a": str, "b": int, "c": float, "d": bool}, ("x", 2), {"c": 1.5}, True),
            ({}, ("x", 2.5), {"d": None}, True),  # no hints: kept as they are
            ({"a": Any, "b": int}, ("x",), {}, True),
            ({"a": str, "b": int, "c": float}, ("x",), {"c": 2}, False),  # int for a float
            ({"a": str, "b": int}, ("x", True), {}, False),  # bool for an int
            ({"a": str | None}, ("x",), {}, False),  # decoding goes through cattrs
            ({"a": str}, (Point(1, 2),), {}, False),  # not plain
        ],
    )
    def test_the_call_is_kept_only_when_decoding_gives_it_back(
        self, hints: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any], call: bool
    ) -> None:
        """``encode_call`` hands the arguments on exactly when the decode would return them."""
        parameters = Parameters.of(_plain)
        text, kept = encode_call("t", parameters, hints, args, kwargs)
        assert text == encode_call("t", parameters, {}, args, kwargs)[0]
        if call:
            assert kept is not None
            assert decode_arguments(hints, parameters, text) == ([], kept)
            assert [type(v) for v in kept.values()] == [
                type(v) for v in decode_arguments(hints, parameters, text)[1].values()
            ]
        else:
            assert kept is None

    def test_a_positional_only_parameter_keeps_the_decode(self) -> None:
        """Arguments passed by position only cannot be handed on as keywords."""
        text, kept = encode_call("t", Parameters.of(_varied), {}, (1, "b"), {})
        assert text == '{"a":1,"b":"b"}' and kept is None

    async def test_this_process_runs_plain_arguments_without_decoding_them(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A request's task with plain arguments gets them as given; one with an attrs
        argument still gets it structured back from the stored text."""
        app, ran = make_app()
        decoded: list[str] = []
        original = DurableTask._decode

        def counting(task: DurableTask[..., Any], text: str) -> Any:
            decoded.append(text)
            return original(task, text)

        monkeypatch.setattr(DurableTask, "_decode", counting)

        @app.task()
        async def tag(name: str, times: int = 1) -> None:
            ran.append((name, times))

        @app.post("/tag")
        async def add(tasks: BackgroundTasks) -> None:
            tasks.add_task(tag, "t", times=2)

        async with TestClient(app) as client:
            await worker_started(app)
            assert (await client.post("/tag")).status_code == 200
            assert (await client.post("/points?x=1&y=2")).status_code == 200
            await client.wait_background()
        assert ("t", 2) in ran and (Point(1, 2), "hi") in ran
        assert decoded == ['{"point":{"x":1,"y":2},"note":"hi"}']


class TestTestClient:
    @pytest.mark.parametrize("kind", ["memory", "sqlite"])
    async def test_wait_background_waits_for_durable_tasks(self, kind: str, tmp_path: Path) -> None:
        """``wait_background()`` returns once the request's durable tasks have run."""
        store: TaskStore = (
            MemoryTaskStore() if kind == "memory" else SQLiteTaskStore(tmp_path / "t.sqlite3")
        )
        app = App(task_store=store)
        app.tasks.poll_interval = 60
        done: list[str] = []

        @app.task()
        async def slow(tag: str) -> None:
            for _ in range(20):  # several turns of the event loop, and a thread hop
                await trio.lowlevel.checkpoint()
            await trio.to_thread.run_sync(done.append, tag)

        @app.task()
        def blocking(tag: str) -> None:
            done.append(tag)

        @app.post("/")
        async def handler(tasks: BackgroundTasks) -> None:
            tasks.add_task(slow, "async")
            tasks.add_task(blocking, "def")

        async with TestClient(app) as client:
            await worker_started(app)
            for _ in range(3):
                assert (await client.post("/")).status_code == 200
            await client.wait_background()
            assert sorted(done) == ["async"] * 3 + ["def"] * 3
            assert (await app.tasks.statistics()).succeeded == 6

    async def test_wait_for_tasks_waits_for_durable_tasks_too(self) -> None:
        """With ``wait_for_tasks=True`` a call returns after its durable tasks have run."""
        app = App(task_store=MemoryTaskStore())
        done: list[int] = []

        @app.task()
        async def record(n: int) -> None:
            await trio.to_thread.run_sync(done.append, n)

        @app.post("/{n}")
        async def handler(n: int, tasks: BackgroundTasks) -> None:
            tasks.add_task(record, n)

        async with TestClient(app, wait_for_tasks=True) as client:
            await worker_started(app)
            await client.post("/1")
            assert done == [1]
            await client.post("/2")
            assert done == [1, 2]


class TestPipelineStep:
    @pytest.mark.parametrize("kind", ["memory", "sqlite"])
    async def test_stored_before_the_first_byte_then_run_with_its_result(
        self, kind: str, tmp_path: Path
    ) -> None:
        """The task is in the store when the response starts; it runs after, without a poll."""
        store: TaskStore = (
            MemoryTaskStore() if kind == "memory" else SQLiteTaskStore(tmp_path / "t.sqlite3")
        )
        app, ran = make_app(store)
        seen_at_start: list[list[str]] = []

        async def witness(
            scope: Message, receive: Any, send: Callable[[Message], Awaitable[None]]
        ) -> None:
            async def watching_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    seen_at_start.append([r.status.value for r in await store.list()])
                    assert ran == []  # nothing ran before the response either
                await send(message)

            await app(scope, receive, watching_send)

        async with TestClient(witness) as client:
            await worker_started(app)
            response = await client.post("/points?x=2&y=3")
            assert response.status_code == 200
            task_id = response.json()["id"]
            assert response.json()["status"] == "ready"
            # Stored, already claimed by this process's idle worker, which starts it after.
            assert seen_at_start == [["running"]]
            done = await wait_status(app, task_id, TaskStatus.SUCCEEDED)
        assert done.return_value == {"sum": 5}
        assert done.attempts == 1
        assert done.started_at is not None and done.finished_at is not None
        assert (Point(2, 3), "hi") in ran  # structured back into an attrs instance
        assert ("plain", "p") in ran

    async def test_a_stored_task_still_runs_when_the_send_fails(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Stored, then the response cannot be delivered: the task runs, not called discarded."""
        store = MemoryTaskStore()
        app, ran = make_app(store)

        async def broken_socket(scope: Message, receive: Any, send: Any) -> None:
            async def failing_send(message: Message) -> None:
                if message["type"] == "http.response.body":
                    raise OSError("connection reset")
                await send(message)

            await app(scope, receive, failing_send)

        async with TestClient(broken_socket, raise_task_errors=False) as client:
            await worker_started(app)
            with (
                caplog.at_level(logging.WARNING),
                pytest.raises(RuntimeError, match="without completing its response"),
            ):
                await client.post("/points?x=4&y=4")
            (record,) = await store.list()
            await wait_status(app, record.id, TaskStatus.SUCCEEDED)
        assert (Point(4, 4), "hi") in ran
        assert "never stored" not in caplog.text
        assert "could not be delivered" in caplog.text

    async def test_a_stored_task_still_runs_when_the_request_is_cancelled_while_sending(
        self,
    ) -> None:
        """Stored already claimed, then the request is cancelled mid-send: the task runs."""
        store = MemoryTaskStore()
        app, ran = make_app(store)

        async def cancelled_mid_send(scope: Message, receive: Any, send: Any) -> None:
            with trio.CancelScope() as cancel_scope:

                async def cancelling_send(message: Message) -> None:
                    if message["type"] == "http.response.body":
                        cancel_scope.cancel()
                        await trio.lowlevel.checkpoint()
                    await send(message)

                await app(scope, receive, cancelling_send)

        async with TestClient(cancelled_mid_send, raise_task_errors=False) as client:
            await worker_started(app)
            with pytest.raises(RuntimeError, match="without completing its response"):
                await client.post("/points?x=5&y=5")
            (record,) = await store.list()
            await wait_status(app, record.id, TaskStatus.SUCCEEDED)
        assert (Point(5, 5), "hi") in ran

    async def test_a_request_cancelled_mid_commit_gives_its_preclaims_back(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Cancelled while its commit went through: the pre-claimed task is released, READY,
        and the log says its fate is unknown (never that it was not stored), with its id."""

        class CommitsThenHangs(MemoryTaskStore):
            def __init__(self) -> None:
                super().__init__()
                self.stored = trio.Event()

            async def enqueue(self, tasks: Any, *, claim: Any = None) -> Any:
                await super().enqueue(tasks, claim=claim)
                self.stored.set()
                await trio.sleep_forever()  # the commit is done; its caller never learns it

        store = CommitsThenHangs()
        app, ran = make_app(store)
        scopes: list[trio.CancelScope] = []

        async def cancellable(scope: Message, receive: Any, send: Any) -> None:
            with trio.CancelScope() as cancel_scope:
                if scope["type"] == "http":
                    scopes.append(cancel_scope)
                await app(scope, receive, send)

        async with TestClient(cancellable, raise_task_errors=False) as client:
            await worker_started(app)
            async with trio.open_nursery() as nursery:

                async def post() -> None:
                    with (
                        caplog.at_level(logging.WARNING),
                        pytest.raises(RuntimeError, match="without completing its response"),
                    ):
                        await client.post("/points?x=6&y=6")

                nursery.start_soon(post)
                with trio.fail_after(5):
                    await store.stored.wait()
                (held,) = await store.list()
                assert held.status is TaskStatus.RUNNING  # stored claimed for the worker
                scopes[0].cancel()
            (record,) = await store.list()
            assert (record.status, record.attempts) == (TaskStatus.READY, 0)
            worker = app.tasks.worker
            assert worker is not None and worker.idle  # the reserved slot came back
        assert ran == []
        assert "never stored" not in caplog.text
        assert f"(id {record.id})" in caplog.text
        assert "stored or not is unknown" in caplog.text

    async def test_adding_a_durable_task_after_the_response_is_refused_loudly(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """After the response nothing can be stored before it: add_task says to use enqueue."""
        store = MemoryTaskStore()
        app, _ = make_app(store)
        record = find(app, "record")

        @app.post("/late")
        async def late(tasks: BackgroundTasks) -> str:
            tasks.add_task(lambda: tasks.add_task(record, Point(1, 1)))
            return "ok"

        async with TestClient(app, raise_task_errors=False) as client:
            assert (await client.post("/late")).status_code == 200
            await client.wait_background()
        assert await store.list() == []
        assert "cannot add durable task" in caplog.text
        assert "after its response was sent" in caplog.text
        assert "await record.enqueue(...)" in caplog.text

    async def test_a_sync_handler_adds_a_durable_def_task(self) -> None:
        """``def`` handler, ``def`` task, list of attrs instances: all round-trip."""
        app, ran = make_app()
        async with TestClient(app) as client:
            task_id = (await client.post("/many")).json()["id"]
            done = await wait_status(app, task_id, TaskStatus.SUCCEEDED)
            assert (await client.get(f"/tasks/{task_id}")).json() == {
                "status": "succeeded",
                "value": 2,
            }
            assert (await client.get("/tasks/nope")).status_code == 404
        assert done.return_value == 2
        assert [Point(1, 2), Point(3, 4)] in ran

    async def test_a_failed_commit_answers_503_and_nothing_else(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Store down: 503 with Retry-After, no task stored, the in-process task discarded."""
        store = FailingStore()
        app, ran = make_app(store)
        async with TestClient(app) as client:
            response = await client.post("/points?x=1&y=1")
            await client.wait_background()
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert "could not be stored" in response.json()["detail"]
        assert await store.list() == []
        assert ran == []
        assert "No space left on device" in caplog.text
        assert "discarded" in caplog.text

    async def test_a_locked_sqlite_file_answers_503_then_recovers(self, tmp_path: Path) -> None:
        """Another process holds the write lock: 503 and nothing stored; 200 once it is gone."""
        path = tmp_path / "tasks.sqlite3"
        store = SQLiteTaskStore(path, busy_timeout=0.05)
        app, _ = make_app(store)
        app.tasks.run_worker = False
        await store.statistics()  # creates the file
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            async with TestClient(app) as client:
                locked = await client.post("/points?x=1&y=2")
                blocker.execute("ROLLBACK")
                unlocked = await client.post("/points?x=1&y=2")
        finally:
            blocker.close()
        assert locked.status_code == 503
        assert unlocked.status_code == 200
        assert [r.id for r in await store.list()] == [unlocked.json()["id"]]
        await store.aclose()

    async def test_a_failed_handler_stores_nothing(self, caplog: pytest.LogCaptureFixture) -> None:
        """The handler raised before its response: the durable task is named, never stored."""
        store = MemoryTaskStore()
        app, ran = make_app(store)
        async with TestClient(app, raise_task_errors=False) as client:
            with caplog.at_level(logging.WARNING):
                response = await client.post("/broken")
        assert response.status_code == 500
        assert ran == []
        assert await store.list() == []
        assert "make_app.<locals>.record (id" in caplog.text
        assert "never stored" in caplog.text

    async def test_statistics_and_listing_through_app_tasks(self) -> None:
        """``app.tasks`` lists, counts, cancels and retries."""
        app, _ = make_app()
        app.tasks.run_worker = False  # nothing runs: the tasks stay where we put them
        async with TestClient(app) as client:
            ids = [(await client.post(f"/points?x={i}&y=0")).json()["id"] for i in range(3)]
        stats = await app.tasks.statistics()
        assert stats.ready == 3
        assert [r.id for r in await app.tasks.list()] == ids[::-1]
        assert (await app.tasks.cancel(ids[0])).status is TaskStatus.CANCELLED
        assert (await app.tasks.retry(ids[0])).status is TaskStatus.READY
        with pytest.raises(TaskNotFound):
            await app.tasks.get("missing")


class TestEnqueue:
    async def test_enqueue_outside_a_request_with_key_and_delay(self) -> None:
        """``enqueue`` stores from anywhere; a held key returns the first task."""
        app, ran = make_app()
        task = find(app, "record")
        async with TestClient(app):
            await worker_started(app)
            later = task.using(key="once", run_after=3600)
            first = await later.enqueue(Point(1, 1))
            second = await later.enqueue(Point(2, 2))
            assert second.id == first.id
            now = await task.using(priority=5).enqueue(Point(5, 5))
            await wait_status(app, now.id, TaskStatus.SUCCEEDED)
            assert (await app.tasks.get(first.id)).status is TaskStatus.READY  # delayed
        assert ran == [(Point(5, 5), "")]

    async def test_new_task_values(self) -> None:
        """``using`` keeps the other options; ``_new`` encodes arguments by name."""
        app, _ = make_app()
        task = find(app, "record")
        new = task.using(priority=3).using(key="k")._new((Point(1, 2),), {})
        assert isinstance(new, NewTask)
        assert (new.priority, new.key, new.max_attempts) == (3, "k", 2)
        assert new.arguments == '{"point":{"x":1,"y":2}}'

    def test_using_leaves_the_task_as_it_was_and_shares_its_signature(self) -> None:
        """A copy changes only what ``using`` was given; the signature and hints worked out
        for the task are shared, not worked out again in every request."""
        app, _ = make_app()
        task = find(app, "record")
        task._new((Point(1, 2),), {})  # the hints are resolved at the first use
        copy = task.using(key="k", priority=2, run_after=5)
        assert (task.key, task._priority, task._run_after) == (None, 0, None)
        assert (copy.key, copy._priority, copy._run_after) == ("k", 2, 5)
        assert (copy.name, copy.retries, copy.timeout, copy.func) == (
            task.name, task.retries, task.timeout, task.func,
        )  # fmt: skip
        assert copy._parameters is task._parameters and copy._hints is task._hints
        assert copy.is_async and copy.func is task.func
