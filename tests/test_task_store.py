"""The durable-task store contract: one suite, every store (memory, SQLite; PostgreSQL later).

Each test drives a store through the transitions of ``triobg/_durable/_status.py`` with a fake
wall clock, so leases expire and delays pass without sleeping. A store is correct when this
whole file passes against it unchanged; register it in ``STORE_FACTORIES``.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from _durable_support import STORE_FACTORIES, FakeClock, new_task

from triobg._durable._sqlite import (
    _MIGRATIONS,
    _SQL,
    SQLiteTaskStore,
    _insert_sql,
    _list_status,
    _succeed_sql,
    _upgrade,
)
from triobg._durable._status import TaskStatus
from triobg._durable._store import Preclaim, TaskError, TaskNotFound, TaskStore

A, B = "host:1:1:a", "host:2:2:b"  # two owners
LEASE = 10.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(STORE_FACTORIES))
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[TaskStore]:
    store = STORE_FACTORIES[request.param](tmp_path, clock)
    try:
        yield store
    finally:
        await store.aclose()


def error(attempt: int = 1, message: str = "boom") -> TaskError:
    return TaskError(attempt=attempt, type="builtins.ValueError", message=message, at=1.0)


class TestEnqueue:
    async def test_enqueue_stores_ready_tasks_readable_by_id(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """Enqueued tasks come back READY, with no attempt, in the order given."""
        records = await store.enqueue(
            [new_task("t1", clock), new_task("t2", clock, arguments='{"x":1}')]
        )
        assert [r.id for r in records] == ["t1", "t2"]
        got = await store.get("t2")
        assert got.status is TaskStatus.READY
        assert got.attempts == 0
        assert got.arguments == '{"x":1}'
        assert got.enqueued_at == clock.now
        assert got.run_after == clock.now
        assert got.errors == ()

    async def test_unknown_id_raises_task_not_found(self, store: TaskStore) -> None:
        """``get`` of an unknown id raises ``TaskNotFound``, a ``LookupError``."""
        with pytest.raises(LookupError, match="nope"):
            await store.get("nope")
        with pytest.raises(TaskNotFound):
            await store.cancel("nope")
        with pytest.raises(TaskNotFound):
            await store.retry("nope")

    async def test_idempotency_key_returns_the_unfinished_holder(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """A second task with a held key is not stored; the first is returned instead."""
        await store.enqueue([new_task("t1", clock, key="k")])
        again = await store.enqueue(
            [new_task("t2", clock, key="k"), new_task("t3", clock, key="k")]
        )
        assert [r.id for r in again] == ["t1", "t1"]
        with pytest.raises(TaskNotFound):
            await store.get("t2")
        # Still held while running; free once finished.
        await store.claim(A, 1, LEASE)
        assert [r.id for r in await store.enqueue([new_task("t4", clock, key="k")])] == ["t1"]
        assert await store.succeed("t1", A, "null")
        assert [r.id for r in await store.enqueue([new_task("t5", clock, key="k")])] == ["t5"]

    async def test_key_within_one_batch(self, store: TaskStore, clock: FakeClock) -> None:
        """Two tasks with one key in one batch: the first is stored, the second gets it."""
        records = await store.enqueue(
            [new_task("t1", clock, key="k"), new_task("t2", clock, key="k")]
        )
        assert [r.id for r in records] == ["t1", "t1"]


class TestClaim:
    async def test_claim_sets_running_under_a_lease_and_counts_the_attempt(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """Claiming makes a task RUNNING for its owner, lease from now, attempt counted."""
        await store.enqueue([new_task("t1", clock, max_attempts=3)])
        clock.advance(1)
        (claimed,) = await store.claim(A, 10, LEASE)
        assert claimed.status is TaskStatus.RUNNING
        assert claimed.owner == A
        assert claimed.attempts == 1
        assert claimed.lease_until == clock.now + LEASE
        assert claimed.started_at == clock.now
        assert await store.get("t1") == claimed

    async def test_order_priority_then_time_then_enqueue_order(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """Higher priority first; then earlier ``run_after``; then enqueue order; up to limit."""
        await store.enqueue(
            [new_task("low", clock, priority=-1), new_task("n1", clock), new_task("n2", clock)]
        )
        await store.enqueue(
            [new_task("high", clock, priority=5), new_task("early", clock, run_after=clock.now - 5)]
        )
        first = await store.claim(A, 3, LEASE)
        assert [r.id for r in first] == ["high", "early", "n1"]
        rest = await store.claim(B, 10, LEASE)
        assert [r.id for r in rest] == ["n2", "low"]
        assert await store.claim(B, 10, LEASE) == []

    async def test_run_after_delays_the_claim(self, store: TaskStore, clock: FakeClock) -> None:
        """A task is not claimed before its ``run_after``."""
        await store.enqueue([new_task("later", clock, run_after=clock.now + 60)])
        assert await store.claim(A, 10, LEASE) == []
        clock.advance(59.9)
        assert await store.claim(A, 10, LEASE) == []
        clock.advance(0.1)
        assert [r.id for r in await store.claim(A, 10, LEASE)] == ["later"]

    async def test_a_claimed_task_is_not_claimed_again_while_leased(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """One owner at a time: another claim does not return a leased task."""
        await store.enqueue([new_task("t1", clock)])
        assert len(await store.claim(A, 10, LEASE)) == 1
        clock.advance(LEASE)
        assert await store.claim(B, 10, LEASE) == []

    async def test_concurrent_claims_never_share_a_task(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """Claims racing in one process hand out each task exactly once."""
        await store.enqueue([new_task(f"t{i}", clock) for i in range(40)])
        got: list[str] = []

        async def claim(owner: str) -> None:
            for _ in range(10):
                got.extend(r.id for r in await store.claim(owner, 3, LEASE))

        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(claim, f"host:{n}:0:x")
        assert sorted(got) == sorted(f"t{i}" for i in range(40))


class TestPreclaim:
    async def test_stored_claimed_as_a_claim_would_leave_it(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """``enqueue(claim=...)`` stores a task RUNNING for the owner, attempt 1, leased."""
        (record,) = await store.enqueue(
            [new_task("t1", clock, max_attempts=3)], claim=Preclaim(owner=A, lease=LEASE, limit=5)
        )
        assert record.status is TaskStatus.RUNNING
        assert (record.owner, record.attempts) == (A, 1)
        assert record.started_at == clock.now
        assert record.lease_until == clock.now + LEASE
        assert await store.get("t1") == record
        assert await store.owners() == {A}
        assert await store.claim(B, 10, LEASE) == []
        assert await store.heartbeat(A, ["t1"], LEASE) == {"t1"}
        assert await store.succeed("t1", A, "7")
        assert (await store.get("t1")).result == "7"

    async def test_only_up_to_the_limit_and_only_tasks_due_now(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """Past ``limit``, a delayed task, and a key's holder's answer are not claimed."""
        await store.enqueue([new_task("holder", clock, key="k")])
        records = await store.enqueue(
            [
                new_task("later", clock, run_after=clock.now + 5),
                new_task("dup", clock, key="k"),
                new_task("t1", clock),
                new_task("t2", clock),
                new_task("t3", clock),
            ],
            claim=Preclaim(owner=A, lease=LEASE, limit=2),
        )
        assert [(r.id, r.status) for r in records] == [
            ("later", TaskStatus.READY),
            ("holder", TaskStatus.READY),
            ("t1", TaskStatus.RUNNING),
            ("t2", TaskStatus.RUNNING),
            ("t3", TaskStatus.READY),
        ]
        assert [r.id for r in await store.claim(B, 10, LEASE)] == ["holder", "t3"]

    async def test_a_preclaimed_task_of_a_dead_owner_is_recovered(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """Pre-claimed tasks come back like claimed ones: dead owner at once, else the lease."""
        claim = Preclaim(owner=A, lease=LEASE, limit=5)
        await store.enqueue([new_task("t1", clock, max_attempts=2)], claim=claim)
        (recovered,) = await store.recover([A])
        assert recovered.status is TaskStatus.READY
        assert recovered.errors[-1].type == "triobg.WorkerLost"
        assert recovered.errors[-1].attempt == 1
        await store.enqueue([new_task("t2", clock)], claim=claim)
        clock.advance(LEASE + 0.001)
        (expired,) = await store.recover()
        assert (expired.id, expired.status) == ("t2", TaskStatus.FAILED)  # no attempts left
        assert not await store.succeed("t2", A, "null")


class TestOwnerTransitions:
    async def test_heartbeat_extends_only_held_leases(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """A heartbeat renews the owner's leases and reports which ids it still holds."""
        await store.enqueue([new_task("t1", clock), new_task("t2", clock)])
        await store.claim(A, 1, LEASE)
        await store.claim(B, 1, LEASE)
        clock.advance(LEASE - 1)
        assert await store.heartbeat(A, ["t1", "t2", "nope"], LEASE) == {"t1"}
        assert (await store.get("t1")).lease_until == clock.now + LEASE
        clock.advance(2)  # B's lease has expired; A's has not
        assert [r.id for r in await store.recover()] == ["t2"]

    async def test_succeed_records_the_result(self, store: TaskStore, clock: FakeClock) -> None:
        """RUNNING -> SUCCEEDED with the result; another owner's succeed changes nothing."""
        await store.enqueue([new_task("t1", clock)])
        await store.claim(A, 1, LEASE)
        assert not await store.succeed("t1", B, '"no"')
        clock.advance(2)
        assert await store.succeed("t1", A, '{"ok":true}')
        record = await store.get("t1")
        assert record.status is TaskStatus.SUCCEEDED
        assert record.result == '{"ok":true}'
        assert record.finished_at == clock.now
        assert not await store.succeed("t1", A, "null")  # only once

    async def test_succeed_many_records_the_tasks_still_held(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """Each held task -> SUCCEEDED with its own result; a task the owner no longer holds
        (cancelled, or another owner's) is left alone and missing from the answer."""
        await store.enqueue([new_task(f"t{n}", clock) for n in range(4)])
        await store.claim(A, 3, LEASE)
        await store.claim(B, 1, LEASE)  # t3 is B's
        await store.cancel("t1")
        clock.advance(2)
        results = [("t0", "0"), ("t1", "1"), ("t2", '"two"'), ("t3", "3")]
        assert await store.succeed_many(A, results) == {"t0", "t2"}
        records = {record.id: record for record in await store.list()}
        assert (records["t0"].status, records["t0"].result) == (TaskStatus.SUCCEEDED, "0")
        assert (records["t2"].status, records["t2"].result) == (TaskStatus.SUCCEEDED, '"two"')
        assert records["t2"].finished_at == clock.now
        assert records["t1"].status is TaskStatus.CANCELLED
        assert records["t3"].status is TaskStatus.RUNNING
        assert await store.succeed_many(A, [("t0", "again")]) == set()  # only once
        assert await store.succeed_many(A, []) == set()

    async def test_concurrent_succeeds_keep_their_answers(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """Succeeds made at once (which a group commit merges into one statement) each get
        their own answer: ``True`` for the owner, ``False`` for another owner or a second report
        of one task; a store that batches them takes far fewer transactions than reports."""
        await store.enqueue([new_task(f"t{n}", clock) for n in range(8)])
        claimed = await store.claim(A, 8, LEASE)
        answers: dict[str, bool] = {}

        async def succeed(label: str, task_id: str, owner: str) -> None:
            answers[label] = await store.succeed(task_id, owner, f'"{label}"')

        batches = getattr(store, "batches", None)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(succeed, "first", "t1", A)  # leads a batch alone
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(succeed, "stranger", "t0", B)
            for record in claimed:
                if record.id != "t1":
                    nursery.start_soon(succeed, record.id, record.id, A)
            nursery.start_soon(succeed, "again", "t7", A)
        if batches is not None:
            assert store.batches - batches < 9  # type: ignore[attr-defined]
        # (trio starts the tasks in no fixed order, so neither the stranger nor the second
        # report of t7 can count on coming after the owner's first one.)
        assert answers["first"]
        assert all(answers[f"t{n}"] for n in range(7) if n != 1)
        assert not answers["stranger"]
        assert answers["t7"] != answers["again"]  # only one of the two reports counts
        records = {record.id: record for record in await store.list()}
        assert all(r.status is TaskStatus.SUCCEEDED for r in records.values())
        assert records["t0"].result == '"t0"'

    async def test_succeed_many_refuses_an_id_twice_and_changes_nothing(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """The same id twice in one call is a ``ValueError`` before anything is written."""
        await store.enqueue([new_task("t1", clock), new_task("t2", clock)])
        await store.claim(A, 2, LEASE)
        with pytest.raises(ValueError, match="'t1' appears twice"):
            await store.succeed_many(A, [("t1", "1"), ("t2", "2"), ("t1", "1")])
        assert {r.status for r in await store.list()} == {TaskStatus.RUNNING}

    async def test_fail_with_retry_then_for_good(self, store: TaskStore, clock: FakeClock) -> None:
        """fail(retry_at) -> RETRYING until then; the last fail(None) -> FAILED; errors kept."""
        await store.enqueue([new_task("t1", clock, max_attempts=2)])
        await store.claim(A, 1, LEASE)
        assert await store.fail("t1", A, error(1, "first"), clock.now + 30)
        record = await store.get("t1")
        assert record.status is TaskStatus.RETRYING
        assert record.run_after == clock.now + 30
        assert await store.claim(A, 1, LEASE) == []
        clock.advance(30)
        (claimed,) = await store.claim(B, 1, LEASE)
        assert claimed.attempts == 2
        assert not await store.fail("t1", A, error(), None)  # A no longer holds it
        assert await store.fail("t1", B, error(2, "second"), None)
        record = await store.get("t1")
        assert record.status is TaskStatus.FAILED
        assert [e.message for e in record.errors] == ["first", "second"]
        assert record.errors[0] == error(1, "first")
        assert record.finished_at == clock.now

    async def test_release_gives_the_task_and_the_attempt_back(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """RUNNING -> READY at once, attempt returned; only the holder can release."""
        await store.enqueue([new_task("t1", clock)])
        await store.claim(A, 1, LEASE)
        assert await store.release(B, ["t1"]) == 0
        assert await store.release(A, ["t1", "nope"]) == 1
        record = await store.get("t1")
        assert record.status is TaskStatus.READY
        assert record.attempts == 0
        (again,) = await store.claim(B, 1, LEASE)
        assert again.attempts == 1


class TestRecovery:
    async def test_expired_lease_goes_back_to_ready_with_an_error(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """After its lease, a task is recovered READY; the old owner can no longer record it."""
        await store.enqueue([new_task("t1", clock, max_attempts=2)])
        await store.claim(A, 1, LEASE)
        assert await store.owners() == {A}
        clock.advance(LEASE)
        assert await store.recover() == []  # the lease ends *after* lease_until
        clock.advance(0.001)
        (recovered,) = await store.recover()
        assert recovered.status is TaskStatus.READY
        assert recovered.errors[-1].type == "triobg.WorkerLost"
        assert A in recovered.errors[-1].message
        assert await store.get("t1") == recovered
        (claimed,) = await store.claim(B, 1, LEASE)
        assert claimed.attempts == 2
        assert not await store.succeed("t1", A, "null")
        assert await store.succeed("t1", B, "null")

    async def test_dead_owner_recovered_before_its_lease_expires(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """Naming an owner dead takes its tasks back at once, and no one else's."""
        await store.enqueue([new_task("t1", clock, max_attempts=3), new_task("t2", clock)])
        await store.claim(A, 1, LEASE)
        await store.claim(B, 1, LEASE)
        recovered = await store.recover([A])
        assert [r.id for r in recovered] == ["t1"]
        assert (await store.get("t2")).status is TaskStatus.RUNNING
        assert await store.owners() == {B}

    async def test_a_task_that_keeps_killing_its_worker_ends_failed(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """Attempts are counted at claim, so recovery fails a task with none left."""
        await store.enqueue([new_task("t1", clock, max_attempts=2)])
        for owner in (A, B):
            await store.claim(owner, 1, LEASE)
            (recovered,) = await store.recover([owner])
        assert recovered.status is TaskStatus.FAILED
        assert recovered.attempts == 2
        assert len(recovered.errors) == 2
        assert (await store.get("t1")).status is TaskStatus.FAILED
        assert await store.claim(A, 1, LEASE) == []


class TestOperator:
    async def test_cancel_ready_and_running(self, store: TaskStore, clock: FakeClock) -> None:
        """Cancelled tasks are not claimed; a running one's owner loses it; finished stay."""
        await store.enqueue([new_task("t1", clock), new_task("t2", clock)])
        await store.claim(A, 1, LEASE)  # t1
        assert (await store.cancel("t2")).status is TaskStatus.CANCELLED
        assert await store.claim(B, 1, LEASE) == []
        cancelled = await store.cancel("t1")
        assert cancelled.status is TaskStatus.CANCELLED
        assert cancelled.finished_at == clock.now
        assert await store.heartbeat(A, ["t1"], LEASE) == set()
        assert not await store.succeed("t1", A, "null")
        await store.enqueue([new_task("t3", clock)])
        await store.claim(A, 1, LEASE)
        await store.succeed("t3", A, "1")
        assert (await store.cancel("t3")).status is TaskStatus.SUCCEEDED

    async def test_retry_failed_or_cancelled_with_fresh_attempts(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """retry: FAILED/CANCELLED -> READY with attempts 0 and the errors kept."""
        await store.enqueue([new_task("t1", clock), new_task("t2", clock)])
        await store.claim(A, 1, LEASE)
        await store.fail("t1", A, error(), None)
        clock.advance(5)
        again = await store.retry("t1")
        assert again.status is TaskStatus.READY
        assert again.attempts == 0
        assert again.finished_at is None
        assert len(again.errors) == 1
        await store.cancel("t2")
        assert (await store.retry("t2")).status is TaskStatus.READY
        assert sorted(r.id for r in await store.claim(A, 5, LEASE)) == ["t1", "t2"]
        await store.succeed("t1", A, "1")
        assert (await store.retry("t1")).status is TaskStatus.SUCCEEDED  # unchanged

    async def test_list_newest_first_with_filter_and_limit(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """``list`` shows the most recently enqueued first, by status if asked."""
        await store.enqueue([new_task(f"t{i}", clock) for i in range(5)])
        await store.claim(A, 2, LEASE)
        assert [r.id for r in await store.list(limit=3)] == ["t4", "t3", "t2"]
        assert [r.id for r in await store.list(TaskStatus.RUNNING)] == ["t1", "t0"]
        assert await store.list(TaskStatus.FAILED) == []

    async def test_list_by_status_finds_the_newest_under_newer_tasks(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """By status, the newest enqueued come first even when 40 newer tasks of another status
        sit above them and they finished in the opposite order."""
        await store.enqueue([new_task(f"t{i:02d}", clock) for i in range(60)])
        await store.claim(A, 60, LEASE)
        for i in reversed(range(20)):  # t19 finishes first, t00 last
            clock.advance(1)
            await store.succeed(f"t{i:02d}", A, "1")
        newest = [r.id for r in await store.list(TaskStatus.SUCCEEDED, limit=2)]
        assert newest == ["t19", "t18"]
        assert [r.id for r in await store.list(TaskStatus.RUNNING, limit=2)] == ["t59", "t58"]
        listed = [r.id for r in await store.list(TaskStatus.SUCCEEDED, limit=100)]
        assert listed == [f"t{i:02d}" for i in reversed(range(20))]

    async def test_statistics_count_each_status_and_the_lag(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """Counts by status, and the age of the oldest claimable task."""
        assert (await store.statistics()).ready == 0
        await store.enqueue([new_task(f"t{i}", clock, max_attempts=2) for i in range(6)])
        await store.enqueue([new_task("later", clock, run_after=clock.now + 100)])
        await store.claim(A, 4, LEASE)
        await store.succeed("t0", A, "1")
        await store.fail("t1", A, error(), None)
        await store.fail("t2", A, error(), clock.now + 50)
        await store.cancel("t4")
        clock.advance(7)
        stats = await store.statistics()
        assert (stats.ready, stats.running, stats.retrying) == (2, 1, 1)
        assert (stats.succeeded, stats.failed, stats.cancelled) == (1, 1, 1)
        assert stats.oldest_ready_age == 7.0  # t5; "later" is not claimable yet

    async def test_prune_deletes_finished_tasks_past_retention(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """Finished tasks older than the cut-off go; recent and unfinished ones stay."""
        await store.enqueue([new_task(f"t{i}", clock) for i in range(4)])
        await store.claim(A, 3, LEASE)
        await store.succeed("t0", A, "1")
        await store.fail("t1", A, error(), None)
        clock.advance(100)
        await store.succeed("t2", A, "1")
        assert await store.prune(clock.now - 50) == 2
        assert {r.id for r in await store.list()} == {"t2", "t3"}
        assert await store.prune(clock.now + 1) == 1
        assert [r.id for r in await store.list()] == ["t3"]


#: The SQLite store's indexes at the newest schema version.
_SQLITE_INDEXES = {
    "sqlite_autoindex_triobg_tasks_1",  # id UNIQUE
    "triobg_tasks_claimable",
    "triobg_tasks_key",
    "triobg_tasks_status_finished",
}

#: Parameters to plan each statement with (values do not matter, their number does).
_PLAN_PARAMETERS: dict[str, Any] = {
    "holder": ("k",),
    "claim": {"owner": A, "lease_until": 1.0, "now": 1.0, "limit": 5},
    "heartbeat": (1.0, '["t1"]', A),
    "fail": ("{}", 1.0, "t1", A),
    "fail_retry": ("{}", 1.0, "t1", A),
    "release": (1.0, '["t1"]', A),
    "owners": (),
    "lost": (1.0, '["t1"]'),
    "recover_ready": ("{}", 1.0, "t1"),
    "recover_failed": ("{}", 1.0, "t1"),
    "get": ("t1",),
    "list": (5,),
    "list_status_recent": (80, "failed", 5),
    "list_status": ("failed", 5),
    "cancel": (1.0, "t1"),
    "retry": (1.0, "t1"),
    "counts": (),
    "oldest_ready": (1.0,),
    "prune": (1.0,),
    "succeed": (1.0, "t1", "1", A, "t2", "1", A),
    "insert": (None,) * 26,
}

_BY_ID = r"USING INDEX sqlite_autoindex_triobg_tasks_1 \(id=\?\)"
_BY_STATUS = r"USING INDEX triobg_tasks_status_finished \(status=\?\)"

#: What each statement's plan must contain (SQLite's ``EXPLAIN QUERY PLAN`` wording).
_EXPECTED_PLANS = {
    "holder": r"USING INDEX triobg_tasks_key \(key=\?\)",
    "claim": r"SCAN (TABLE )?triobg_tasks USING INDEX triobg_tasks_claimable",
    "heartbeat": _BY_ID,
    "fail": _BY_ID,
    "fail_retry": _BY_ID,
    "release": _BY_ID,
    "owners": _BY_STATUS,
    "lost": _BY_STATUS,
    "recover_ready": _BY_ID,
    "recover_failed": _BY_ID,
    "get": _BY_ID,
    "list": r"^SCAN (TABLE )?triobg_tasks$",
    "list_status_recent": r"USING INTEGER PRIMARY KEY \(rowid>\?\)",
    "list_status": r"USING COVERING INDEX triobg_tasks_status_finished \(status=\?\)",
    "cancel": _BY_ID,
    "retry": _BY_ID,
    "counts": r"SCAN (TABLE )?triobg_tasks USING COVERING INDEX triobg_tasks_status_finished",
    "oldest_ready": r"triobg_tasks USING INDEX triobg_tasks_claimable",
    "prune": r"USING INDEX triobg_tasks_status_finished \(status=\? AND finished_at<\?\)",
    "succeed": _BY_ID,
    "insert": r"^(SCAN \d+ CONSTANT ROWS)?$",  # the VALUES; no index read
}


@contextlib.contextmanager
def _schema_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to a new file holding the store's newest schema and no rows."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        _upgrade(db, path)
        yield db


def _plan(db: sqlite3.Connection, sql: str, parameters: Any) -> str:
    rows = db.execute(f"EXPLAIN QUERY PLAN {sql}", parameters)
    return " | ".join(row[3] for row in rows)


def _schema(path: Path) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name")
        return [*rows, ("user_version", db.execute("PRAGMA user_version").fetchone()[0])]


def _write_version_1_file(path: Path, clock: FakeClock, *, version: int = 1) -> None:
    """A file as triobg wrote it at schema version 1 (or before versions, 0), with one task
    in each of four states."""
    now = clock.now
    errors = '[{"attempt": 1, "type": "builtins.ValueError", "message": "boom", "at": 1.0}]'
    rows = [
        ("ready", "ready", "k1", 0, None, None, None, None, "[]"),
        ("running", "running", None, 1, A, now + LEASE, None, None, "[]"),
        ("done", "succeeded", None, 1, A, None, now, "42", "[]"),
        ("failed", "failed", None, 1, A, None, now, None, errors),
    ]
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        for statement in _MIGRATIONS[0].split(";"):
            if statement.strip():
                db.execute(statement)
        db.executemany(
            "INSERT INTO triobg_tasks (id, name, arguments, status, priority, key, attempts,"
            " max_attempts, enqueued_at, run_after, started_at, owner, lease_until,"
            " finished_at, result, errors)"
            " VALUES (?, 'tests.job', '{}', ?, 0, ?, ?, 1, ?, ?, NULL, ?, ?, ?, ?, ?)",
            [(i, st, key, n, now, now, owner, lease, fin, res, err)
             for i, st, key, n, owner, lease, fin, res, err in rows],
        )  # fmt: skip
        db.execute(f"PRAGMA user_version = {version}")


class TestSQLite:
    async def test_tasks_survive_reopening_the_file(self, tmp_path: Path, clock: FakeClock) -> None:
        """What a store committed is there for the next process to open the file."""
        first = SQLiteTaskStore(tmp_path / "sub" / "t.sqlite3", clock=clock)
        await first.enqueue([new_task("t1", clock, key="k")])
        await first.claim(A, 1, LEASE)
        await first.aclose()
        second = SQLiteTaskStore(tmp_path / "sub" / "t.sqlite3", clock=clock)
        record = await second.get("t1")
        assert record.status is TaskStatus.RUNNING
        assert record.owner == A
        await second.aclose()

    async def test_schema_version_is_written_and_migrate_reports_it(
        self, tmp_path: Path, clock: FakeClock
    ) -> None:
        """A new file gets the newest schema version in ``user_version``; migrating again is a
        no-op that reports it."""
        path = tmp_path / "t.sqlite3"
        store = SQLiteTaskStore(path, clock=clock)
        assert await store.migrate() == len(_MIGRATIONS)
        assert await store.migrate() == len(_MIGRATIONS)
        await store.aclose()
        with contextlib.closing(sqlite3.connect(path)) as connection:
            assert connection.execute("PRAGMA user_version").fetchone()[0] == len(_MIGRATIONS)

    async def test_a_file_from_before_versions_is_adopted_with_its_tasks(
        self, tmp_path: Path, clock: FakeClock
    ) -> None:
        """A file written before the schema had a number (``user_version`` 0, the tables there)
        is brought to the newest version and keeps its tasks."""
        path = tmp_path / "t.sqlite3"
        first = SQLiteTaskStore(path, clock=clock)
        await first.enqueue([new_task("old", clock)])
        await first.aclose()
        with contextlib.closing(sqlite3.connect(path)) as connection:
            connection.execute("PRAGMA user_version = 0")
            connection.commit()
        second = SQLiteTaskStore(path, clock=clock)
        assert (await second.get("old")).status is TaskStatus.READY
        assert await second.migrate() == len(_MIGRATIONS)
        await second.aclose()

    async def test_a_version_1_file_is_migrated_with_its_tasks(
        self, tmp_path: Path, clock: FakeClock
    ) -> None:
        """A file at schema version 1 (five secondary indexes) ends at the newest version with
        the new index set, its tasks intact and usable: keys held, claims, prune."""
        path = tmp_path / "t.sqlite3"
        _write_version_1_file(path, clock)
        store = SQLiteTaskStore(path, clock=clock)
        assert await store.migrate() == len(_MIGRATIONS)
        with contextlib.closing(sqlite3.connect(path)) as db:
            names = "SELECT name FROM sqlite_master WHERE type = 'index'"
            assert {name for (name,) in db.execute(names)} == _SQLITE_INDEXES
        done, failed = await store.get("done"), await store.get("failed")
        assert (done.status, done.result) == (TaskStatus.SUCCEEDED, "42")
        assert done.finished_at == clock.now
        assert failed.status is TaskStatus.FAILED
        assert [e.message for e in failed.errors] == ["boom"]
        running = await store.get("running")
        assert (running.status, running.owner, running.attempts) == (TaskStatus.RUNNING, A, 1)
        stats = await store.statistics()
        assert (stats.ready, stats.running, stats.succeeded, stats.failed) == (1, 1, 1, 1)
        assert [r.id for r in await store.list(TaskStatus.SUCCEEDED)] == ["done"]
        assert await store.owners() == {A}
        held = await store.enqueue([new_task("again", clock, key="k1")])
        assert [r.id for r in held] == ["ready"]
        assert [r.id for r in await store.claim(B, 5, LEASE)] == ["ready"]
        clock.advance(100)
        assert await store.prune(clock.now) == 2
        assert {r.id for r in await store.list()} == {"ready", "running"}
        await store.aclose()

    async def test_a_migrated_file_has_the_schema_of_a_new_one(
        self, tmp_path: Path, clock: FakeClock
    ) -> None:
        """Upgrading a file of version 1, or one from before versions, ends with exactly the
        tables, indexes and version a new file gets."""
        _write_version_1_file(tmp_path / "v1.sqlite3", clock)
        _write_version_1_file(tmp_path / "v0.sqlite3", clock, version=0)
        for name in ("new", "v1", "v0"):
            store = SQLiteTaskStore(tmp_path / f"{name}.sqlite3", clock=clock)
            await store.migrate()
            await store.aclose()
        new = _schema(tmp_path / "new.sqlite3")
        assert {row[1] for row in new if row[0] == "index"} == _SQLITE_INDEXES
        assert _schema(tmp_path / "v1.sqlite3") == new
        assert _schema(tmp_path / "v0.sqlite3") == new

    async def test_a_file_from_a_newer_triobg_is_refused(
        self, tmp_path: Path, clock: FakeClock
    ) -> None:
        """A schema version this triobg does not know is a clear error, and the file is left
        as it was."""
        path = tmp_path / "t.sqlite3"
        with contextlib.closing(sqlite3.connect(path)) as connection:
            connection.execute(f"PRAGMA user_version = {len(_MIGRATIONS) + 1}")
            connection.commit()
        store = SQLiteTaskStore(path, clock=clock)
        with pytest.raises(RuntimeError, match="newer triobg"):
            await store.migrate()
        await store.aclose()
        with contextlib.closing(sqlite3.connect(path)) as connection:
            tables = connection.execute("SELECT name FROM sqlite_master").fetchall()
        assert tables == []

    async def test_concurrent_writes_share_commits(self, tmp_path: Path, clock: FakeClock) -> None:
        """Group commit: 50 concurrent enqueues take far fewer than 50 transactions."""
        store = SQLiteTaskStore(tmp_path / "t.sqlite3", clock=clock)
        await store.enqueue([new_task("warm", clock)])  # creates the file and schema
        before = store.batches
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(store.enqueue, [new_task(f"t{i}", clock)])
        assert len(await store.list(limit=100)) == 51
        assert store.batches - before < 10
        await store.aclose()

    def test_heartbeat_and_release_find_tasks_by_id(self, tmp_path: Path) -> None:
        """The one-statement heartbeat and release look tasks up by id, not by walking every
        running task of every worker (SQLite's planner preferred the status index)."""
        with _schema_only(tmp_path / "t.sqlite3") as db:
            for query in ("heartbeat", "release"):
                details = _plan(db, _SQL[query], _PLAN_PARAMETERS[query])
                assert "sqlite_autoindex_triobg_tasks_1 (id=?)" in details, (query, details)

    @pytest.mark.parametrize("query", sorted(_EXPECTED_PLANS))
    def test_each_statement_uses_its_index(self, tmp_path: Path, query: str) -> None:
        """Every statement of the store reaches its rows through the index meant for it, with
        no scan of the whole table and no sort but of one status's index entries."""
        sql = {**_SQL, "succeed": _succeed_sql(2), "insert": _insert_sql(2)}[query]
        with _schema_only(tmp_path / "t.sqlite3") as db:
            details = _plan(db, sql, _PLAN_PARAMETERS[query])
        assert re.search(_EXPECTED_PLANS[query], details), (query, details)
        if query != "list":  # newest first, with a limit: the table walked back, then stops
            assert not re.search(r"SCAN (TABLE )?triobg_tasks($| \|)", details), details
        if query != "list_status":  # there only the one status's entries of the index
            assert "TEMP B-TREE FOR ORDER BY" not in details, details

    def test_every_statement_has_an_expected_plan(self) -> None:
        """The plan test above covers every named query (a new one must say its index)."""
        assert set(_SQL) | {"succeed", "insert"} == set(_EXPECTED_PLANS)

    async def test_list_by_status_walks_the_newest_rows_first_then_the_index(
        self, tmp_path: Path, clock: FakeClock
    ) -> None:
        """A status common among the newest tasks is listed from the table's newest rows alone;
        a rare one (or one buried under newer tasks) from the status index, in the same order."""
        store = SQLiteTaskStore(tmp_path / "t.sqlite3", clock=clock)
        await store.enqueue([new_task(f"t{i:03d}", clock) for i in range(300)])
        await store.claim(A, 300, LEASE)
        for i in range(100, 300):  # t000-t099 stay running, under 200 newer finished tasks
            if i % 50 == 0:
                await store.fail(f"t{i:03d}", A, error(), None)
            else:
                await store.succeed(f"t{i:03d}", A, "1")
        await store.aclose()
        ran: list[str] = []
        with contextlib.closing(sqlite3.connect(tmp_path / "t.sqlite3")) as db:
            db.set_trace_callback(ran.append)
            common = _list_status(db, "succeeded", 5)
            assert len(ran) == 1  # found among the 80 newest rows
            ran.clear()
            buried = _list_status(db, "running", 5)
            assert len(ran) == 2
            ran.clear()
            rare = _list_status(db, "failed", 5)
            assert len(ran) == 2
            assert len(_list_status(db, "failed", 2**62)) == 4  # no integer overflow
        assert [row[0] for row in common] == [f"t{i:03d}" for i in (299, 298, 297, 296, 295)]
        assert [row[0] for row in buried] == [f"t{i:03d}" for i in (99, 98, 97, 96, 95)]
        assert [row[0] for row in rare] == [f"t{i:03d}" for i in (250, 200, 150, 100)]

    async def test_a_locked_file_fails_the_write_and_changes_nothing(
        self, tmp_path: Path, clock: FakeClock
    ) -> None:
        """Another process holding the write lock: the enqueue raises after the busy timeout."""
        import sqlite3

        path = tmp_path / "t.sqlite3"
        store = SQLiteTaskStore(path, clock=clock, busy_timeout=0.05)
        await store.enqueue([new_task("t0", clock)])
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                await store.enqueue([new_task("t1", clock)])
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        with pytest.raises(TaskNotFound):
            await store.get("t1")
        await store.enqueue([new_task("t1", clock)])  # and it works again afterwards
        await store.aclose()
