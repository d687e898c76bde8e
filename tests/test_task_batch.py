"""The group commit of the SQL stores (``triobg/_durable/_batch.py``), with a fake commit:
writes share batches, and a lingering write (the worker's results) waits to ride along."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from triobg._durable._batch import GroupCommit, Write

WAIT = 5


class Log:
    """A commit function for ``GroupCommit`` that records each batch it was given."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    def commit(self, batch: list[Write]) -> None:
        self.batches.append([write.apply(None) for write in batch])
        for write, value in zip(batch, self.batches[-1], strict=True):
            write.result = value


def constant(value: str) -> Any:
    return lambda _db: value


def group() -> tuple[GroupCommit, Log]:
    log = Log()
    return GroupCommit(log.commit, trio.CapacityLimiter(1)), log


async def test_a_lingering_write_alone_commits_once_its_linger_is_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Nobody else writes: the lingering write starts its own commit after ``linger``."""
    commits, log = group()
    start = trio.current_time()
    assert await commits.write(constant("late"), linger=10) == "late"
    assert trio.current_time() - start == pytest.approx(10)
    assert log.batches == [["late"]]


async def test_a_lingering_write_rides_with_the_next_commit() -> None:
    """A write that does not linger starts a commit at once, and carries the lingering one."""
    commits, log = group()
    answers: dict[str, str] = {}

    async def write(name: str, linger: float) -> None:
        answers[name] = await commits.write(constant(name), linger=linger)

    with trio.fail_after(WAIT):  # far less than the 60 s linger
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, "result", 60.0)
            await trio.testing.wait_all_tasks_blocked()
            assert log.batches == []
            nursery.start_soon(write, "enqueue", 0.0)
    assert answers == {"result": "result", "enqueue": "enqueue"}
    assert len(log.batches) == 1
    assert sorted(log.batches[0]) == ["enqueue", "result"]


def gated() -> tuple[GroupCommit, Log, trio.Event]:
    """A group commit whose commits wait (in their thread) until the event is set."""
    gate = trio.Event()
    log = Log()
    token = trio.lowlevel.current_trio_token()

    def slow_commit(batch: list[Write]) -> None:
        trio.from_thread.run(gate.wait, trio_token=token)
        log.commit(batch)

    return GroupCommit(slow_commit, trio.CapacityLimiter(1)), log, gate


async def test_a_lingering_write_is_not_handed_the_lead_while_it_lingers() -> None:
    """A lingering write that finds a commit under way keeps lingering once that commit ends
    (nobody commits for it alone), and rides with the next writer's commit."""
    commits, log, gate = gated()
    first_done = trio.Event()

    async def first() -> None:
        await commits.write(constant("first"))
        first_done.set()

    with trio.fail_after(WAIT):  # far less than the 60 s linger
        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(partial(commits.write, constant("result"), linger=60.0))
            await trio.testing.wait_all_tasks_blocked()
            gate.set()
            await first_done.wait()
            await trio.testing.wait_all_tasks_blocked()
            assert log.batches == [["first"]]
            nursery.start_soon(commits.write, constant("next"))
    assert log.batches[0] == ["first"]
    assert sorted(log.batches[1]) == ["next", "result"]


async def test_a_write_done_lingering_during_a_commit_leads_the_next() -> None:
    """Its linger over while a commit is under way, a write is handed the lead when that
    commit ends (it is never left waiting with nobody to commit it). A real clock: the
    commit's thread would let MockClock's autojump skip to the ``fail_after``."""
    commits, log, gate = gated()
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(commits.write, constant("first"))
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(partial(commits.write, constant("result"), linger=0.01))
            await trio.sleep(0.05)  # its linger timer fires first; the commit waits at the gate
            gate.set()
    assert log.batches == [["first"], ["result"]]


async def test_two_lingering_writes_share_one_commit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The first to give up lingering takes every write waiting, lingering or not."""
    commits, log = group()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(commits.write, constant("a"), linger=1.0))
        nursery.start_soon(partial(commits.write, constant("b"), linger=5.0))
    assert len(log.batches) == 1
    assert sorted(log.batches[0]) == ["a", "b"]


async def test_a_lingering_write_cancelled_is_never_applied(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancelled while it lingers, a write is dropped unapplied and the queue goes on."""
    commits, log = group()
    with trio.move_on_after(1):
        await commits.write(constant("dropped"), linger=10)
    assert await commits.write(constant("next")) == "next"
    assert log.batches == [["next"]]


async def test_a_leader_cancelled_before_its_commit_leaves_the_others_to_the_next() -> None:
    """The leader is cancelled while it waits for the store's thread (a read holds it): its
    own write is dropped with the cancellation, and the writes it had taken along are committed
    by the next leader instead of being handed that cancellation."""
    log = Log()
    limiter = trio.CapacityLimiter(1)
    commits = GroupCommit(log.commit, limiter)
    answers: dict[str, str] = {}

    async def result() -> None:
        answers["result"] = await commits.write(constant("result"), linger=0.05)

    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            await limiter.acquire()  # a read holds the store's thread
            nursery.start_soon(result)
            await trio.testing.wait_all_tasks_blocked()
            with trio.CancelScope() as request:
                nursery.start_soon(partial(cancel_soon, request))
                await commits.write(constant("enqueue"))  # leads, waits for the limiter
            assert request.cancelled_caught
            limiter.release()
    assert answers == {"result": "result"}
    assert log.batches == [["result"]]


async def cancel_soon(scope: trio.CancelScope) -> None:
    await trio.testing.wait_all_tasks_blocked()
    scope.cancel()
