# An in-memory durable-task store: the contract of ``_store.py`` with dicts, nothing on disk.
#
# Where it sits: a fast test double for everything above the store (the pipeline step, the
# worker, ``app.tasks``), and the reference reading of the contract: each method is the
# transition in its plainest form. ``App(task_store=MemoryTaskStore())`` makes tasks survive
# nothing, not even a restart, so it is for tests only.
from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Collection, Sequence

import attrs
import trio

from ._status import UNFINISHED, TaskStatus
from ._store import (
    NewTask,
    Preclaim,
    RecordMaker,
    TaskError,
    TaskNotFound,
    TaskRecord,
    TaskStatistics,
    TaskStore,
    recovered,
)

_CLAIMABLE = (TaskStatus.READY, TaskStatus.RETRYING)


class MemoryTaskStore(TaskStore):
    """A store that keeps tasks in this process's memory (tests and experiments only).

    Args:
        clock: Wall-clock seconds; tests pass a fake clock to move time without sleeping.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._tasks: dict[str, TaskRecord] = {}
        self._order: dict[str, int] = {}  # enqueue order, for ties
        self._seq = 0

    async def enqueue(
        self, tasks: Sequence[NewTask], *, claim: Preclaim | None = None
    ) -> builtins.list[TaskRecord]:
        await trio.lowlevel.checkpoint()
        make = RecordMaker(claim, self.clock())
        if len({task.id for task in tasks}) != len(tasks) or any(
            task.id in self._tasks for task in tasks
        ):
            raise ValueError("task ids must be unique")
        out = []
        for task in tasks:
            held = self._holder(task.key)
            if held is not None:
                out.append(held)
                continue
            record = make(task)
            self._tasks[task.id] = record
            self._seq += 1
            self._order[task.id] = self._seq
            out.append(record)
        return out

    def _holder(self, key: str | None) -> TaskRecord | None:
        if key is None:
            return None
        for record in self._tasks.values():
            if record.key == key and record.status in UNFINISHED:
                return record
        return None

    async def claim(self, owner: str, limit: int, lease: float) -> builtins.list[TaskRecord]:
        await trio.lowlevel.checkpoint()
        now = self.clock()
        ready = [r for r in self._tasks.values() if r.status in _CLAIMABLE and r.run_after <= now]
        ready.sort(key=lambda r: (-r.priority, r.run_after, self._order[r.id]))
        out = []
        for record in ready[: max(limit, 0)]:
            record = attrs.evolve(
                record,
                status=TaskStatus.RUNNING,
                owner=owner,
                lease_until=now + lease,
                attempts=record.attempts + 1,
                started_at=now,
            )
            self._tasks[record.id] = record
            out.append(record)
        return out

    def _held(self, task_id: str, owner: str) -> TaskRecord | None:
        record = self._tasks.get(task_id)
        if record is None or record.status is not TaskStatus.RUNNING or record.owner != owner:
            return None
        return record

    async def heartbeat(self, owner: str, ids: Collection[str], lease: float) -> set[str]:
        await trio.lowlevel.checkpoint()
        now = self.clock()
        held = set()
        for task_id in ids:
            record = self._held(task_id, owner)
            if record is not None:
                self._tasks[task_id] = attrs.evolve(record, lease_until=now + lease)
                held.add(task_id)
        return held

    async def succeed(self, task_id: str, owner: str, result: str) -> bool:
        await trio.lowlevel.checkpoint()
        record = self._held(task_id, owner)
        if record is None:
            return False
        self._tasks[task_id] = attrs.evolve(
            record,
            status=TaskStatus.SUCCEEDED,
            result=result,
            finished_at=self.clock(),
            lease_until=None,
        )
        return True

    async def fail(
        self, task_id: str, owner: str, error: TaskError, retry_at: float | None
    ) -> bool:
        await trio.lowlevel.checkpoint()
        record = self._held(task_id, owner)
        if record is None:
            return False
        errors = (*record.errors, error)
        if retry_at is None:
            record = attrs.evolve(
                record,
                status=TaskStatus.FAILED,
                errors=errors,
                finished_at=self.clock(),
                lease_until=None,
            )
        else:
            record = attrs.evolve(
                record,
                status=TaskStatus.RETRYING,
                errors=errors,
                run_after=retry_at,
                lease_until=None,
            )
        self._tasks[task_id] = record
        return True

    async def release(self, owner: str, ids: Collection[str]) -> int:
        await trio.lowlevel.checkpoint()
        count = 0
        for task_id in ids:
            record = self._held(task_id, owner)
            if record is not None:
                self._tasks[task_id] = attrs.evolve(
                    record,
                    status=TaskStatus.READY,
                    attempts=record.attempts - 1,
                    run_after=self.clock(),
                    lease_until=None,
                )
                count += 1
        return count

    async def owners(self) -> set[str]:
        await trio.lowlevel.checkpoint()
        return {
            r.owner
            for r in self._tasks.values()
            if r.status is TaskStatus.RUNNING and r.owner is not None
        }

    async def recover(self, dead_owners: Collection[str] = ()) -> builtins.list[TaskRecord]:
        await trio.lowlevel.checkpoint()
        now = self.clock()
        dead = set(dead_owners)
        out = []
        for record in builtins.list(self._tasks.values()):
            if record.status is not TaskStatus.RUNNING:
                continue
            assert record.lease_until is not None
            if record.owner not in dead and record.lease_until >= now:
                continue
            record = recovered(record, now)
            self._tasks[record.id] = record
            out.append(record)
        return out

    async def get(self, task_id: str) -> TaskRecord:
        await trio.lowlevel.checkpoint()
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskNotFound(task_id) from None

    async def list(
        self, status: TaskStatus | None = None, *, limit: int = 100
    ) -> builtins.list[TaskRecord]:
        await trio.lowlevel.checkpoint()
        records = [r for r in self._tasks.values() if status is None or r.status is status]
        records.sort(key=lambda r: self._order[r.id], reverse=True)
        return records[: max(limit, 0)]

    async def cancel(self, task_id: str) -> TaskRecord:
        record = await self.get(task_id)
        if record.status.finished:
            return record
        record = attrs.evolve(
            record, status=TaskStatus.CANCELLED, finished_at=self.clock(), lease_until=None
        )
        self._tasks[task_id] = record
        return record

    async def retry(self, task_id: str) -> TaskRecord:
        record = await self.get(task_id)
        if record.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            return record
        held = self._holder(record.key)
        if held is not None:
            return held  # the key is taken again: the other task does this work
        record = attrs.evolve(
            record,
            status=TaskStatus.READY,
            attempts=0,
            run_after=self.clock(),
            finished_at=None,
            lease_until=None,
        )
        self._tasks[task_id] = record
        return record

    async def statistics(self) -> TaskStatistics:
        await trio.lowlevel.checkpoint()
        now = self.clock()
        counts = dict.fromkeys(TaskStatus, 0)
        oldest: float | None = None
        for record in self._tasks.values():
            counts[record.status] += 1
            if record.status in _CLAIMABLE and record.run_after <= now:
                oldest = record.run_after if oldest is None else min(oldest, record.run_after)
        return TaskStatistics(
            ready=counts[TaskStatus.READY],
            running=counts[TaskStatus.RUNNING],
            retrying=counts[TaskStatus.RETRYING],
            succeeded=counts[TaskStatus.SUCCEEDED],
            failed=counts[TaskStatus.FAILED],
            cancelled=counts[TaskStatus.CANCELLED],
            oldest_ready_age=0.0 if oldest is None else now - oldest,
        )

    async def prune(self, finished_before: float) -> int:
        await trio.lowlevel.checkpoint()
        doomed = [
            r.id
            for r in self._tasks.values()
            if r.status.finished and r.finished_at is not None and r.finished_at < finished_before
        ]
        for task_id in doomed:
            del self._tasks[task_id]
            del self._order[task_id]
        return len(doomed)
