"""The durable-task worker with the in-memory store: runs, retries, timeouts, shutdown, recovery.

Each test runs one ``Worker`` in a nursery and waits on store state or on events the tasks set,
always under ``trio.fail_after``; retries use a tiny backoff base so no test sleeps for real.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from triobg import App, DurableTask, MemoryTaskStore, NewTask, TaskError, TaskRecord, TaskStatus
from triobg._durable._worker import RECORD_GRACE, Worker, backoff, new_owner, owner_is_dead

WAIT = 5


def declare(app: App, func: Callable[..., Any], **options: Any) -> DurableTask[..., Any]:
    return app.task(name=func.__name__, **options)(func)


async def stored(store: MemoryTaskStore, task: DurableTask[..., Any], *args: Any) -> str:
    (record,) = await store.enqueue([task._new(args, {})])
    return record.id


async def wait_status(store: MemoryTaskStore, task_id: str, *statuses: TaskStatus) -> TaskRecord:
    with trio.fail_after(WAIT):
        while True:
            record = await store.get(task_id)
            if record.status in statuses:
                return record
            await trio.sleep(0.002)


@asynccontextmanager
async def running(app: App, store: MemoryTaskStore, **options: Any) -> AsyncIterator[Worker]:
    options = {"backoff_base": 0.001, "poll_interval": 60, **options}
    worker = Worker(store, app.tasks.registry, **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        try:
            yield worker
        finally:
            with trio.fail_after(WAIT):
                await worker.stop()


async def noop() -> None:
    await trio.lowlevel.checkpoint()


class TestRunning:
    async def test_async_and_def_tasks_run_and_record_results(self) -> None:
        """An ``async def`` runs in the loop, a ``def`` in a thread; results are stored."""
        app, store = App(), MemoryTaskStore()
        threads: list[int] = []

        async def double(n: int) -> int:
            return 2 * n

        def triple(n: int) -> int:
            threads.append(threading.get_ident())
            return 3 * n

        a, b = declare(app, double), declare(app, triple)
        async with running(app, store) as worker:
            ids = [await stored(store, a, 2), await stored(store, b, 2)]
            worker.wake()
            results = [await wait_status(store, i, TaskStatus.SUCCEEDED) for i in ids]
        assert [r.result for r in results] == ["4", "6"]
        assert threads and threads[0] != threading.get_ident()

    async def test_a_wake_starts_work_without_waiting_for_the_poll(self) -> None:
        """With a one-minute poll, a woken worker still claims within the test's bound."""
        app, store = App(), MemoryTaskStore()
        started = trio.Event()

        async def job() -> None:
            started.set()

        task = declare(app, job)
        async with running(app, store, poll_interval=60) as worker:
            await stored(store, task)
            worker.wake()
            with trio.fail_after(WAIT):
                await started.wait()

    async def test_concurrency_caps_running_tasks(self) -> None:
        """No more than ``concurrency`` tasks run at once; the rest wait for a slot."""
        app, store = App(), MemoryTaskStore()
        gate = trio.Event()
        peak = 0
        now = 0

        async def held() -> None:
            nonlocal peak, now
            now += 1
            peak = max(peak, now)
            await gate.wait()
            now -= 1

        task = declare(app, held)
        async with running(app, store, concurrency=3) as worker:
            ids = [await stored(store, task) for _ in range(7)]
            worker.wake()
            with trio.fail_after(WAIT):
                while worker.running < 3:  # noqa: ASYNC110 - a state of the worker, polled
                    await trio.sleep(0.002)
            assert (await store.statistics()).ready == 4
            gate.set()
            for i in ids:
                await wait_status(store, i, TaskStatus.SUCCEEDED)
        assert peak == 3

    async def test_claims_after_a_full_one_wait_for_the_slots_to_free(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """Under a backlog of short tasks each claim takes a full set of slots: the claim
        after a full one waits (``claim_cooldown``) for the slots still busy, rather than
        asking for the one or two already free."""
        app, store = App(), ClaimLog()

        async def short(n: int) -> None:
            await trio.sleep(0.001 * n)  # they finish one by one, within the cooldown

        task = declare(app, short)
        ids = [await stored(store, task, n % 4 + 1) for n in range(12)]
        async with running(app, store, concurrency=4) as worker:
            worker.wake()
            for task_id in ids:
                await wait_status(store, task_id, TaskStatus.SUCCEEDED)
        assert store.limits[:3] == [4, 4, 4]


class ClaimLog(MemoryTaskStore):
    """A memory store that keeps the ``limit`` of every claim."""

    def __init__(self) -> None:
        super().__init__()
        self.limits: list[int] = []

    async def claim(self, owner: str, limit: int, lease: float) -> list[TaskRecord]:
        self.limits.append(limit)
        return await super().claim(owner, limit, lease)


class TestFailures:
    async def test_retries_with_backoff_then_success(self) -> None:
        """``retries=2``: two failed attempts are stored as errors, the third succeeds."""
        app, store = App(), MemoryTaskStore()
        calls = 0

        async def flaky() -> str:
            nonlocal calls
            calls += 1
            if calls < 3:
                raise ValueError(f"try {calls}")
            return "ok"

        task = declare(app, flaky, retries=2)
        async with running(app, store) as worker:
            task_id = await stored(store, task)
            worker.wake()
            record = await wait_status(store, task_id, TaskStatus.SUCCEEDED)
        assert record.attempts == 3
        assert [e.message for e in record.errors] == ["try 1", "try 2"]
        assert record.errors[0].type == "builtins.ValueError"
        assert "raise ValueError" in record.errors[0].traceback

    async def test_a_poison_task_ends_failed_after_its_retries(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A task that always raises ends FAILED with one error per attempt, logged."""
        app, store = App(), MemoryTaskStore()

        def poison() -> None:
            raise RuntimeError("always")

        task = declare(app, poison, retries=1)
        async with running(app, store) as worker:
            task_id = await stored(store, task)
            worker.wake()
            record = await wait_status(store, task_id, TaskStatus.FAILED)
        assert record.attempts == 2
        assert len(record.errors) == 2
        assert f"durable task poison (id {task_id}, attempt 2/2) failed for good" in caplog.text

    async def test_timeouts_cancel_async_and_abandon_def_attempts(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An attempt over its timeout fails with a TimeoutError saying how it was stopped."""
        app, store = App(), MemoryTaskStore()
        release = threading.Event()

        async def sleepy() -> None:
            await trio.sleep_forever()

        def stuck() -> None:
            release.wait(WAIT)

        a = declare(app, sleepy, timeout=0.05)
        b = declare(app, stuck, timeout=0.05)
        try:
            async with running(app, store) as worker:
                ids = [await stored(store, a), await stored(store, b)]
                worker.wake()
                ra, rb = [await wait_status(store, i, TaskStatus.FAILED) for i in ids]
        finally:
            release.set()
        assert ra.errors[0].type == "builtins.TimeoutError"
        assert "timeout of 0.05 s (cancelled)" in ra.errors[0].message
        assert "(abandoned in its worker thread)" in rb.errors[0].message
        assert "timed out: abandoned in its worker thread" in caplog.text

    async def test_an_unknown_task_name_fails_with_a_clear_error(self) -> None:
        """A stored task whose function is no longer declared ends FAILED at once."""
        app, store = App(), MemoryTaskStore()
        new = NewTask(id="x1", name="gone.task", arguments="{}", enqueued_at=0.0, max_attempts=5)
        await store.enqueue([new])
        async with running(app, store):
            record = await wait_status(store, "x1", TaskStatus.FAILED)
        assert record.attempts == 1
        assert "no durable task named 'gone.task' is declared" in record.errors[0].message

    async def test_arguments_that_no_longer_fit_fail_with_a_clear_error(self) -> None:
        """Stored arguments the function no longer takes: FAILED, naming them."""
        app, store = App(), MemoryTaskStore()

        async def job(a: int) -> None:
            pass

        declare(app, job, retries=3)
        new = NewTask(id="x1", name="job", arguments='{"a":1,"b":2}', enqueued_at=0.0)
        await store.enqueue([new])
        async with running(app, store):
            record = await wait_status(store, "x1", TaskStatus.FAILED)
        assert "no longer takes: ['b']" in record.errors[0].message

    def test_backoff_grows_exponentially_with_jitter_and_a_cap(self) -> None:
        """Attempt n waits between half and all of base * 2**(n-1), capped."""
        assert [backoff(n, base=1, rand=lambda: 0.0) for n in (1, 2, 3, 4)] == [0.5, 1, 2, 4]
        assert [backoff(n, base=1, rand=lambda: 1.0) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
        assert backoff(50, base=1, cap=300, rand=lambda: 1.0) == 300
        assert backoff(10_000, base=1, cap=300, rand=lambda: 0.0) == 150


class GatedStore(MemoryTaskStore):
    """A memory store whose ``succeed_many`` waits at ``gate`` (while it is closed) and keeps
    the size of every call, so a test can hold the recorder's write open."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = trio.Event()
        self.calls: list[int] = []
        self.called = trio.Event()

    async def succeed_many(self, owner: str, results: Sequence[tuple[str, str]]) -> set[str]:
        self.calls.append(len(results))
        self.called.set()
        await self.gate.wait()
        return await super().succeed_many(owner, results)


class GatedFailStore(MemoryTaskStore):
    """A memory store whose ``fail`` never returns (it waits for a gate nobody opens)."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = trio.Event()

    async def fail(
        self, task_id: str, owner: str, error: TaskError, retry_at: float | None
    ) -> bool:
        self.failing.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")


class TestRecording:
    async def test_successes_while_a_write_is_in_flight_share_the_next_one(self) -> None:
        """Tasks that finish while the recorder's write is being committed are all written by
        its next one, not one write each."""
        app, store = App(), GatedStore()
        task = declare(app, noop)
        async with running(app, store) as worker:
            first = await stored(store, task)
            worker.wake()
            with trio.fail_after(WAIT):
                await store.called.wait()  # the first success is being written
                rest = [await stored(store, task) for _ in range(4)]
                worker.wake()
                while worker.running < 5 or len(worker._recording) < 5:  # noqa: ASYNC110
                    await trio.sleep(0.002)
            store.gate.set()
            for task_id in [first, *rest]:
                await wait_status(store, task_id, TaskStatus.SUCCEEDED)
            assert store.calls == [1, 4]
            assert worker.completed == 5

    async def test_a_task_whose_outcome_is_being_written_frees_its_slot(self) -> None:
        """With one slot, the next task starts while the first one's success is still being
        written: a finished task runs nothing, so it holds no slot."""
        app, store = App(), GatedStore()
        second_started = trio.Event()

        async def second() -> None:
            second_started.set()

        one, two = declare(app, noop), declare(app, second)
        async with running(app, store, concurrency=1) as worker:
            first_id = await stored(store, one)
            worker.wake()
            with trio.fail_after(WAIT):
                await store.called.wait()
                second_id = await stored(store, two)
                worker.wake()
                await second_started.wait()  # the gate is still closed
            store.gate.set()
            await wait_status(store, first_id, TaskStatus.SUCCEEDED)
            await wait_status(store, second_id, TaskStatus.SUCCEEDED)

    async def test_a_failed_write_is_logged_with_the_ids_and_frees_the_slots(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The store refusing the write: each task is named in the log, stays RUNNING in the
        store (to be recovered when its lease runs out) and frees its slot here."""
        app, store = App(), GatedStore()
        store.gate.set()

        async def refuse(owner: str, results: Sequence[tuple[str, str]]) -> set[str]:
            raise OSError("disk full")

        store.succeed_many = refuse  # type: ignore[method-assign]
        task = declare(app, noop)
        async with running(app, store) as worker:
            task_id = await stored(store, task)
            worker.wake()
            with trio.fail_after(WAIT):
                await worker.wait_idle()
            assert worker.completed == 0
        assert (await store.get(task_id)).status is TaskStatus.RUNNING
        assert "recording the outcome of 1 durable task(s) failed" in caplog.text
        assert task_id in caplog.text


class TestShutdown:
    async def test_an_outcome_being_written_at_the_deadline_is_not_released(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """At the drain deadline a finished task whose success is being written is left to
        its write (not released to run again), which lands within the grace."""
        app, store = App(), GatedStore()
        task_id = await stored(store, declare(app, noop))
        worker = Worker(store, app.tasks.registry, poll_interval=60)
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            with trio.fail_after(WAIT):
                await store.called.wait()
                nursery.start_soon(worker.stop, trio.current_time())  # the deadline is now
                await trio.testing.wait_all_tasks_blocked()
                store.gate.set()
        record = await store.get(task_id)
        assert (record.status, record.attempts) == (TaskStatus.SUCCEEDED, 1)
        assert "released at shutdown" not in caplog.text

    async def test_a_failure_being_written_at_the_deadline_is_released(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A task whose failure is being written when the drain deadline comes is released
        like a running one (its attempt given back), not left RUNNING with its write cut off;
        the log says which it was."""
        app, store = App(), GatedFailStore()

        async def boom() -> None:
            raise ValueError("boom")

        task_id = await stored(store, declare(app, boom, retries=1))
        worker = Worker(store, app.tasks.registry, poll_interval=60)
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            with trio.fail_after(WAIT):
                await store.failing.wait()  # the failure's write is under way, held open
                await worker.stop(trio.current_time())
        record = await store.get(task_id)
        assert (record.status, record.attempts) == (TaskStatus.READY, 0)
        assert (
            f"durable task {task_id} released at shutdown: its failure still being written"
            in caplog.text
        )

    async def test_an_outcome_not_written_within_the_grace_is_left_to_recovery(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A write that never lands: the worker stops after ``RECORD_GRACE`` anyway, and the
        task, still RUNNING under the stopped worker, is recovered (run again) by the next."""
        app, store = App(), GatedStore()
        runs = 0

        async def counted() -> None:
            nonlocal runs
            runs += 1

        task_id = await stored(store, declare(app, counted, retries=1))
        worker = Worker(store, app.tasks.registry, poll_interval=60)
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            with trio.fail_after(WAIT):
                await store.called.wait()
                before = trio.current_time()
                await worker.stop(trio.current_time())
            assert trio.current_time() - before == pytest.approx(RECORD_GRACE)
            nursery.cancel_scope.cancel()
        assert (await store.get(task_id)).status is TaskStatus.RUNNING
        store.gate.set()
        async with running(app, store):  # recovers the stopped worker's task at start
            await wait_status(store, task_id, TaskStatus.SUCCEEDED)
        assert runs == 2

    async def test_tasks_cut_off_by_the_deadline_are_released_and_named(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """At the deadline, running tasks go back to READY (attempt returned), each named."""
        app, store = App(), MemoryTaskStore()
        started = trio.Event()
        quick_done = trio.Event()

        async def forever() -> None:
            started.set()
            await trio.sleep_forever()

        async def quick() -> None:
            await started.wait()
            await trio.sleep(0.01)
            quick_done.set()

        slow_id = await stored(store, declare(app, forever))
        quick_id = await stored(store, declare(app, quick))
        worker = Worker(store, app.tasks.registry, poll_interval=60)
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            with trio.fail_after(WAIT):
                await started.wait()
                await worker.stop(trio.current_time() + 0.5)
        assert quick_done.is_set()  # given the drain time
        assert (await store.get(quick_id)).status is TaskStatus.SUCCEEDED
        slow = await store.get(slow_id)
        assert slow.status is TaskStatus.READY
        assert slow.attempts == 0
        assert f"durable task {slow_id} released at shutdown" in caplog.text

    async def test_held_tasks_never_started_are_released_at_the_deadline(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A pre-claimed task whose start never came is released like a running one."""
        app, store = App(), MemoryTaskStore()
        task = declare(app, noop)
        async with running(app, store) as worker:
            claim = worker.reserve(2)
            assert claim is not None and claim.limit == 2
            new = [task._new((), {}), task._new((), {})]
            records = await store.enqueue(new, claim=claim)
            held, orphans = worker.adopt(claim, records)
            assert [r.id for r in held] == [t.id for t in new] and orphans == []
            assert worker.running == 2 and not worker.idle
            with trio.fail_after(WAIT):
                await worker.stop(trio.current_time() + 0.05)
            assert worker.running == 0
            assert worker.adopt(claim, records)[1] == [t.id for t in new]  # too late: give back
            worker.start_held(held)  # too late: starts nothing
        for record in await store.list():
            assert (record.status, record.attempts) == (TaskStatus.READY, 0)
            assert f"durable task {record.id} released at shutdown" in caplog.text

    async def test_no_preclaim_while_older_tasks_wait_or_slots_are_full(self) -> None:
        """``reserve`` refuses while the last claim was full, and beyond the free slots."""
        app, store = App(), MemoryTaskStore()
        gate = trio.Event()

        async def held() -> None:
            await gate.wait()

        task = declare(app, held)
        for _ in range(3):
            await stored(store, task)
        async with running(app, store, concurrency=2) as worker:
            assert worker.reserve(1) is None  # the first claim filled every slot: a backlog
            gate.set()
            with trio.fail_after(WAIT):
                await worker.wait_idle()
            claim = worker.reserve(5)
            assert claim is not None and claim.limit == 2
            assert worker.reserve(1) is None  # both slots promised
            worker.adopt(claim, None)  # the enqueue failed: the slots come back
            assert worker.idle

    async def test_a_cancelled_running_task_is_stopped_at_the_next_heartbeat(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An operator's cancel reaches the running attempt through the lost lease."""
        app, store = App(), MemoryTaskStore()
        started = trio.Event()
        stopped = trio.Event()

        async def long() -> None:
            started.set()
            try:
                await trio.sleep_forever()
            finally:
                stopped.set()

        task_id = await stored(store, declare(app, long))
        async with running(app, store, lease=0.06) as worker:
            worker.wake()
            with trio.fail_after(WAIT):
                await started.wait()
                await store.cancel(task_id)
                await stopped.wait()
        assert (await store.get(task_id)).status is TaskStatus.CANCELLED
        assert "lost its lease" in caplog.text


class TestARequestsTasks:
    """The tasks one request stores run in one trio task, one after another (``_Run``)."""

    @staticmethod
    async def hold(
        worker: Worker,
        store: MemoryTaskStore,
        calls: Sequence[tuple[DurableTask[..., Any], tuple[Any, ...]]],
    ) -> list[str]:
        """Store ``calls`` as a request does (pre-claimed by ``worker``), then start them."""
        claim = worker.reserve(len(calls))
        assert claim is not None and claim.limit == len(calls)
        records = await store.enqueue([task._new(args, {}) for task, args in calls], claim=claim)
        held, orphans = worker.adopt(claim, records)
        assert len(held) == len(calls) and orphans == []
        worker.start_held(held)
        return [record.id for record in held]

    async def test_they_run_one_after_another_in_the_order_added(self) -> None:
        """As in-process tasks do: the second starts when the first has ended, a ``def`` task
        among them included."""
        app, store = App(), MemoryTaskStore()
        seen: list[str] = []

        async def first() -> None:
            seen.append("first started")
            await trio.sleep(0.01)
            seen.append("first ended")

        def second() -> None:
            seen.append("second")

        async def third() -> None:
            seen.append("third")

        a, b, c = declare(app, first), declare(app, second), declare(app, third)
        async with running(app, store) as worker:
            ids = await self.hold(worker, store, [(a, ()), (b, ()), (c, ())])
            for task_id in ids:
                await wait_status(store, task_id, TaskStatus.SUCCEEDED)
        assert seen == ["first started", "first ended", "second", "third"]

    async def test_a_timeout_cuts_off_its_own_task_only(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """The first task's timeout fails it; the next ones run, and a task with no timeout
        is not held to the timeout of the one before it."""
        app, store = App(), MemoryTaskStore()

        async def stuck() -> None:
            await trio.sleep_forever()

        async def quick() -> str:
            return "quick"

        async def slow() -> str:
            await trio.sleep(1)  # longer than the timeouts of the tasks before it
            return "slow"

        timed = {"timeout": 0.05}
        a, b = declare(app, stuck, **timed), declare(app, quick, **timed)
        c = declare(app, slow)
        async with running(app, store) as worker:
            ids = await self.hold(worker, store, [(a, ()), (c, ()), (b, ()), (c, ())])
            records = [
                await wait_status(store, task_id, TaskStatus.SUCCEEDED, TaskStatus.FAILED)
                for task_id in ids
            ]
        assert [r.status for r in records] == [TaskStatus.FAILED] + [TaskStatus.SUCCEEDED] * 3
        assert "timeout of 0.05 s (cancelled)" in records[0].errors[0].message
        assert [r.result for r in records[1:]] == ['"slow"', '"quick"', '"slow"']

    async def test_a_lost_lease_stops_the_running_task_and_skips_a_waiting_one(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Cancelled by an operator: the running task is stopped, a task cancelled before its
        turn never starts, and the one between them runs."""
        app, store = App(), MemoryTaskStore()
        started = trio.Event()
        seen: list[str] = []

        async def long() -> None:
            started.set()
            try:
                await trio.sleep_forever()
            finally:
                seen.append("long stopped")

        async def mark(tag: str) -> None:
            seen.append(tag)

        a, b = declare(app, long), declare(app, mark)
        async with running(app, store, lease=0.06) as worker:
            ids = await self.hold(worker, store, [(a, ()), (b, ("middle",)), (b, ("last",))])
            with trio.fail_after(WAIT):
                await started.wait()
            await store.cancel(ids[0])
            await store.cancel(ids[2])
            await wait_status(store, ids[1], TaskStatus.SUCCEEDED)
            with trio.fail_after(WAIT):
                await worker.wait_idle()
        assert seen == ["long stopped", "middle"]
        statuses = [(await store.get(task_id)).status for task_id in ids]
        assert statuses == [TaskStatus.CANCELLED, TaskStatus.SUCCEEDED, TaskStatus.CANCELLED]
        assert caplog.text.count("lost its lease") == 2

    async def test_at_the_deadline_the_running_and_the_waiting_are_released(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Shutdown mid-way: the task running and the one waiting its turn go back to READY,
        both named in the log."""
        app, store = App(), MemoryTaskStore()
        started = trio.Event()

        async def forever() -> None:
            started.set()
            await trio.sleep_forever()

        a, b = declare(app, forever), declare(app, noop)
        worker = Worker(store, app.tasks.registry, poll_interval=60)
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            ids = await self.hold(worker, store, [(a, ()), (b, ())])
            with trio.fail_after(WAIT):
                await started.wait()
                await worker.stop(trio.current_time() + 0.05)
        for task_id in ids:
            record = await store.get(task_id)
            assert (record.status, record.attempts) == (TaskStatus.READY, 0)
            assert f"durable task {task_id} released at shutdown" in caplog.text
        assert worker.running == 0

    async def test_an_error_beside_the_timeout_s_cancel_fails_the_task_not_the_worker(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A task whose own nursery ends with an error along with its timeout's ``Cancelled``
        fails that attempt (as before ``_Run``); the worker runs the request's next task."""
        app, store = App(), MemoryTaskStore()

        async def breaks_when_cancelled() -> None:
            try:
                await trio.sleep_forever()
            finally:
                raise ValueError("clean-up failed")

        async def with_a_nursery() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(breaks_when_cancelled)
                await trio.sleep_forever()

        a, b = declare(app, with_a_nursery, timeout=0.05), declare(app, noop)
        async with running(app, store) as worker:
            ids = await self.hold(worker, store, [(a, ()), (b, ())])
            first = await wait_status(store, ids[0], TaskStatus.FAILED)
            await wait_status(store, ids[1], TaskStatus.SUCCEEDED)
        assert "clean-up failed" in first.errors[0].traceback
        assert worker.running == 0

    async def test_one_key_twice_in_a_request_runs_its_task_once(self) -> None:
        """Two calls with one idempotency key in one request store one task (the store gives
        its record for both): it runs once, and its slot is given back once."""
        app, store = App(), MemoryTaskStore()
        ran: list[int] = []

        async def count(n: int) -> None:
            ran.append(n)

        keyed = declare(app, count).using(key="k")
        async with running(app, store) as worker:
            claim = worker.reserve(2)
            assert claim is not None
            new = [keyed._new((1,), {}), keyed._new((2,), {})]
            records = await store.enqueue(new, claim=claim)
            assert records[0].id == records[1].id == new[0].id
            held, _ = worker.adopt(claim, records, new)
            worker.start_held(held)
            await wait_status(store, new[0].id, TaskStatus.SUCCEEDED)
            with trio.fail_after(WAIT):
                await worker.wait_idle()
        assert ran == [1]
        assert worker.running == 0

    async def test_past_the_free_slots_a_request_s_tasks_are_claimed_side_by_side(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """Three tasks from one request with two free slots: the two held run in order, the
        third is stored READY and claimed like any other, so it runs beside the second (what
        the tutorial and the design page say: the order holds only for the held ones)."""
        app, store = App(), MemoryTaskStore()
        seen: list[str] = []

        async def step(name: str) -> None:
            seen.append(f"{name} started")
            await trio.sleep(1 if name == "b" else 0)
            seen.append(f"{name} ended")

        task = declare(app, step)
        async with running(app, store, concurrency=2) as worker:
            claim = worker.reserve(3)
            assert claim is not None and claim.limit == 2
            new = [task._new((name,), {}) for name in "abc"]
            records = await store.enqueue(new, claim=claim)
            held, _ = worker.adopt(claim, records, new)
            worker.start_held(held)
            worker.wake()  # what the request's start does for the tasks stored READY
            for each in new:
                await wait_status(store, each.id, TaskStatus.SUCCEEDED)
        assert seen.index("a ended") < seen.index("b started")
        assert seen.index("c started") < seen.index("b ended")


class TestRecovery:
    def test_owner_ids_tell_live_and_dead_processes_apart(self) -> None:
        """Our own live process is alive; a pid that does not exist, or was reused, is dead."""
        ours = new_owner()
        host, pid, _, _ = ours.rsplit(":", 3)
        assert int(pid) == os.getpid()
        assert owner_is_dead(ours)  # this process, but no live worker has that id
        parent = os.getppid()
        with open(f"/proc/{parent}/stat") as stat:
            parent_start = stat.read().rpartition(")")[2].split()[19]
        assert not owner_is_dead(f"{host}:{parent}:{parent_start}:x")
        assert owner_is_dead(f"{host}:{parent}:{int(parent_start) + 1}:x")  # pid reused
        assert owner_is_dead(f"{host}:999999999:1:x")
        assert not owner_is_dead("elsewhere:1:1:x")  # other machines: the lease decides
        assert not owner_is_dead("garbage")

    async def test_a_dead_local_owner_is_recovered_at_start(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A restarted worker takes back a dead process's tasks at once, not after the lease."""
        app, store = App(), MemoryTaskStore()
        done = trio.Event()

        async def job() -> None:
            done.set()

        task_id = await stored(store, declare(app, job, retries=1))
        host = new_owner().split(":")[0]
        await store.claim(f"{host}:999999999:1:dead", 1, lease=3600)
        async with running(app, store):
            with trio.fail_after(WAIT):
                await done.wait()
            record = await wait_status(store, task_id, TaskStatus.SUCCEEDED)
        assert record.attempts == 2
        assert record.errors[0].type == "triobg.WorkerLost"
        assert "recovered from lost worker" in caplog.text

    async def test_another_machines_expired_lease_is_taken_over(self) -> None:
        """A task leased by an owner elsewhere comes back once the lease has expired."""
        app, store = App(), MemoryTaskStore()
        now = [time.time() + 1]  # after every enqueued_at below
        store.clock = lambda: now[0]

        async def job() -> str:
            return "mine"

        task_id = await stored(store, declare(app, job, retries=1))
        await store.claim("elsewhere:1:1:x", 1, lease=10)
        async with running(app, store, recover_interval=0.01):
            assert (await store.get(task_id)).status is TaskStatus.RUNNING  # alive elsewhere?
            now[0] += 11
            record = await wait_status(store, task_id, TaskStatus.SUCCEEDED)
        assert record.result == '"mine"'


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="triobg.tasks")
