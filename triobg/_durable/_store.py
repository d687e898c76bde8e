# The store contract: what every durable-task backend (memory, SQLite, later PostgreSQL) does.
#
# Where it sits: ``_tasks.py`` (the pipeline step, ``app.tasks``) and ``_worker.py`` talk to a
# store only through the operations below; each one is a transition of the state machine in
# ``_status.py`` (or a read). The store knows nothing of HTTP, of task functions or of trio's
# scheduling; the worker knows no SQL. ``tests/test_task_store.py`` is the contract as a test
# suite: a new store is done when it passes that suite unchanged.
#
# Time: stores read wall-clock seconds from an injected ``clock`` (``time.time`` by default),
# so the contract suite can move time forward without sleeping. Task ids are chosen by the
# caller (``add_task`` must know the id before anything is stored).
from __future__ import annotations

import abc
import builtins
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs
import trio

from ._status import TaskStatus


class TaskNotFound(LookupError):
    """No task with this id is stored (never enqueued, or pruned after its retention)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no durable task with id {task_id!r}")
        self.task_id = task_id


@attrs.frozen(kw_only=True)
class TaskError:
    """One failed attempt, as stored.

    Attributes:
        attempt: Which attempt failed (1 for the first).
        type: The exception's qualified type name (``"builtins.ValueError"``).
        message: ``str(exception)``.
        traceback: The formatted traceback (empty when there is none, e.g. a lost worker).
        at: When it failed (wall-clock seconds).
    """

    attempt: int
    type: str
    message: str
    traceback: str = ""
    at: float = 0.0


@attrs.frozen(kw_only=True)
class NewTask:
    """A task to store: what ``enqueue`` receives.

    Attributes:
        id: Chosen by the caller, unique.
        name: The registered task name (``module.qualname`` unless given).
        arguments: The call's arguments as JSON text (see ``_codec.py``).
        enqueued_at: When ``add_task``/``enqueue`` was called (wall-clock seconds).
        run_after: Not claimed before this time (``None``: at once).
        priority: Higher runs first among ready tasks.
        key: Idempotency key: while a task with this key is unfinished, enqueueing another
            returns the first instead.
        max_attempts: ``retries + 1``.
        call: Not stored (stores ignore it): the keyword arguments the task runs with, when
            decoding ``arguments`` would give back exactly these (plain values; see
            ``_codec.encode_call``), so that this process's worker skips the decode.
    """

    id: str
    name: str
    arguments: str
    enqueued_at: float
    run_after: float | None = None
    priority: int = 0
    key: str | None = None
    max_attempts: int = 1
    call: Mapping[str, Any] | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class Preclaim:
    """Store new tasks already claimed by the worker of this process: ``enqueue(claim=...)``.

    A task added by a request here is run by this process's worker right after the response,
    so it is stored already RUNNING under that worker's lease, attempt 1, in the same commit
    as the enqueue: the separate claim write (and its fsync share) disappears. To the rest of
    the system such a task looks exactly like one claimed a moment after it was stored: its
    lease is renewed by the heartbeat, and if the process dies it is recovered like any other.

    Attributes:
        owner: The worker that will run the tasks.
        lease: Seconds the lease lasts unless renewed (from the commit).
        limit: Most tasks to claim (the worker's free slots); the others are stored READY.
    """

    owner: str
    lease: float
    limit: int


@attrs.frozen(kw_only=True)
class TaskRecord:
    """A stored task, as every read returns it.

    Attributes:
        owner: The worker holding (or that last held) its lease; ``None`` before any claim.
        lease_until: While RUNNING: when the lease expires unless renewed.
        run_after: Not claimed before this time (for READY and RETRYING).
        result: The return value as JSON text, once SUCCEEDED.
        errors: One entry per failed attempt, oldest first.
    """

    id: str
    name: str
    arguments: str
    status: TaskStatus
    priority: int
    key: str | None
    attempts: int
    max_attempts: int
    enqueued_at: float
    run_after: float
    started_at: float | None
    finished_at: float | None
    owner: str | None
    lease_until: float | None
    result: str | None
    errors: tuple[TaskError, ...]


@attrs.frozen(kw_only=True)
class TaskStatistics:
    """Counts of stored tasks by status, and how long the oldest ready task has waited.

    Attributes:
        oldest_ready_age: Seconds since the oldest claimable READY/RETRYING task became
            claimable (0.0 when none is waiting): the queue's lag.
    """

    ready: int = 0
    running: int = 0
    retrying: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    oldest_ready_age: float = 0.0


class TaskStore(abc.ABC):
    """The contract of a durable-task store. Every method is a transition or a read.

    Guarantees every store must give (and ``tests/test_task_store.py`` checks):

    * An operation that returned has been made durable as far as the store can promise
      (the SQLite store: committed with ``synchronous=FULL``); one that raised changed nothing.
    * ``claim`` hands each task to one owner at a time: until its lease expires or it is
      released, no other ``claim`` returns it.
    * Transitions by an owner (``heartbeat``, ``succeed``, ``fail``, ``release``) only apply
      while that owner still holds the task; otherwise they report so and change nothing.
    """

    @abc.abstractmethod
    async def enqueue(
        self, tasks: Sequence[NewTask], *, claim: Preclaim | None = None
    ) -> builtins.list[TaskRecord]:
        """(new) -> READY, all in one commit; returns one record per task, in order.

        A task whose ``key`` is held by an unfinished task is not stored: the record returned
        for it is that unfinished task's (also within the same batch).

        With ``claim``, (new) -> RUNNING instead for the first ``claim.limit`` tasks that are
        claimable at once (no ``run_after`` in the future, and stored, not answered by a key's
        holder): each is stored as ``claim`` would leave it (``claimed_record``). The others
        are stored READY as usual.
        """

    @abc.abstractmethod
    async def claim(self, owner: str, limit: int, lease: float) -> builtins.list[TaskRecord]:
        """READY/RETRYING (``run_after`` reached) -> RUNNING, up to ``limit`` tasks.

        Highest priority first, then earliest ``run_after``, then enqueue order. Each claimed
        task's ``attempts`` goes up by one and its lease ends ``lease`` seconds from now.
        """

    @abc.abstractmethod
    async def heartbeat(self, owner: str, ids: Collection[str], lease: float) -> set[str]:
        """Extend the leases ``owner`` still holds among ``ids``; returns those ids."""

    @abc.abstractmethod
    async def succeed(self, task_id: str, owner: str, result: str) -> bool:
        """RUNNING -> SUCCEEDED with ``result`` (JSON); ``False`` if ``owner`` lost the task."""

    async def succeed_many(self, owner: str, results: Sequence[tuple[str, str]]) -> set[str]:
        """RUNNING -> SUCCEEDED for each ``(task_id, result)`` that ``owner`` still holds;
        returns the ids recorded (an id missing from the answer: ``owner`` lost that task).

        The worker records its successes through this: under load, the tasks that finished
        while its last write was being committed go in one write, rather than one write (and
        one wake-up of the event loop) each. The SQL stores write them in one transaction
        (SQLite: one statement per 50 tasks, PostgreSQL: one); this default calls ``succeed``
        for each, which is enough for a store where a write is cheap, but not atomic: if one
        raises, those before it stay recorded (the worker then logs the whole call as failed,
        and a recorded task's result stands).

        Raises:
            ValueError: an id appears twice.
        """
        check_unique(task_id for task_id, _ in results)
        held = set()
        for task_id, result in results:
            if await self.succeed(task_id, owner, result):
                held.add(task_id)
        return held

    @abc.abstractmethod
    async def fail(
        self, task_id: str, owner: str, error: TaskError, retry_at: float | None
    ) -> bool:
        """RUNNING -> RETRYING at ``retry_at``, or -> FAILED when it is ``None``.

        ``error`` is appended to the task's errors. ``False`` if ``owner`` lost the task.
        """

    @abc.abstractmethod
    async def release(self, owner: str, ids: Collection[str]) -> int:
        """RUNNING -> READY at once, giving the attempt back (graceful shutdown).

        Returns how many of ``ids`` ``owner`` still held and released.
        """

    @abc.abstractmethod
    async def owners(self) -> set[str]:
        """The owners holding RUNNING tasks now (the worker decides which of them are dead)."""

    @abc.abstractmethod
    async def recover(self, dead_owners: Collection[str] = ()) -> builtins.list[TaskRecord]:
        """Take back RUNNING tasks whose lease expired or whose owner is in ``dead_owners``.

        Each gets an error saying its worker was lost; then -> READY if it has attempts left,
        else -> FAILED. Returns the recovered tasks as they are now.
        """

    @abc.abstractmethod
    async def get(self, task_id: str) -> TaskRecord:
        """The task ``task_id``.

        Raises:
            TaskNotFound: no such task is stored.
        """

    @abc.abstractmethod
    async def list(
        self, status: TaskStatus | None = None, *, limit: int = 100
    ) -> builtins.list[TaskRecord]:
        """Up to ``limit`` tasks (with ``status``, if given), most recently enqueued first."""

    @abc.abstractmethod
    async def cancel(self, task_id: str) -> TaskRecord:
        """READY/RETRYING/RUNNING -> CANCELLED (a finished task is returned unchanged).

        A RUNNING task's owner learns at its next heartbeat (which no longer returns the id)
        and its ``succeed``/``fail`` then report the task lost.

        Raises:
            TaskNotFound: no such task is stored.
        """

    @abc.abstractmethod
    async def retry(self, task_id: str) -> TaskRecord:
        """FAILED/CANCELLED -> READY now, with a fresh set of attempts (errors are kept).

        An unfinished or succeeded task is returned unchanged.

        Raises:
            TaskNotFound: no such task is stored.
        """

    @abc.abstractmethod
    async def statistics(self) -> TaskStatistics:
        """Counts by status and the age of the oldest claimable task."""

    @abc.abstractmethod
    async def prune(self, finished_before: float) -> int:
        """Delete SUCCEEDED/FAILED/CANCELLED tasks finished before that time; returns how many."""

    async def migrate(self) -> int:
        """Create or upgrade the store's tables now, rather than on first use; returns the
        schema version the store is at (0: a store with no schema, such as the memory store).

        Safe to run from several processes at once, and again and again
        (``python -m triobg tasks module:app migrate`` runs it).
        """
        await trio.lowlevel.checkpoint()
        return 0

    async def watch(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever another process may have made work ready; until cancelled.

        Optional. A store that can hear other processes (PostgreSQL's ``LISTEN``) lets a
        worker start their tasks at once; without it (the default, which returns at once) the
        worker finds them at its next poll. Work this process stores wakes its worker anyway.
        """
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:  # noqa: B027 - optional: most stores have nothing to close
        """Release what the store holds (connections, threads)."""


def check_unique(ids: Iterable[str]) -> None:
    """Raise ``ValueError`` if an id appears twice (in one ``enqueue`` or ``succeed_many``)."""
    listed = list(ids)
    if len(set(listed)) == len(listed):
        return
    seen: set[str] = set()
    for task_id in listed:
        if task_id in seen:
            raise ValueError(f"task ids must be unique: {task_id!r} appears twice")
        seen.add(task_id)


#: The columns an SQL store selects for a ``TaskRecord``, in the order ``record_from_row`` reads.
RECORD_COLUMNS: Final = (
    "id, name, arguments, status, priority, key, attempts, max_attempts, enqueued_at, "
    "run_after, started_at, finished_at, owner, lease_until, result, errors"
)


def record_from_row(row: Sequence[Any], errors: Iterable[Mapping[str, Any]]) -> TaskRecord:
    """A ``TaskRecord`` from a row of ``RECORD_COLUMNS``; ``errors`` is the row's last column,
    already decoded from JSON (SQLite stores text, PostgreSQL hands back ``jsonb`` decoded)."""
    return TaskRecord(
        id=row[0],
        name=row[1],
        arguments=row[2],
        status=TaskStatus(row[3]),
        priority=row[4],
        key=row[5],
        attempts=row[6],
        max_attempts=row[7],
        enqueued_at=row[8],
        run_after=row[9],
        started_at=row[10],
        finished_at=row[11],
        owner=row[12],
        lease_until=row[13],
        result=row[14],
        errors=tuple(TaskError(**error) for error in errors),
    )


def ready_record(task: NewTask) -> TaskRecord:
    """The record of ``task`` as ``enqueue`` has just stored it: READY, never tried."""
    return TaskRecord(
        id=task.id,
        name=task.name,
        arguments=task.arguments,
        status=TaskStatus.READY,
        priority=task.priority,
        key=task.key,
        attempts=0,
        max_attempts=task.max_attempts,
        enqueued_at=task.enqueued_at,
        run_after=task.enqueued_at if task.run_after is None else task.run_after,
        started_at=None,
        finished_at=None,
        owner=None,
        lease_until=None,
        result=None,
        errors=(),
    )


def claimed_record(task: NewTask, claim: Preclaim, now: float) -> TaskRecord:
    """The record of ``task`` stored already claimed (``enqueue(claim=...)``): RUNNING under
    ``claim.owner``'s lease, attempt 1 started ``now``, exactly as ``claim`` would leave it."""
    return TaskRecord(  # built directly: ``attrs.evolve`` costs as much again, per task
        id=task.id,
        name=task.name,
        arguments=task.arguments,
        status=TaskStatus.RUNNING,
        priority=task.priority,
        key=task.key,
        attempts=1,
        max_attempts=task.max_attempts,
        enqueued_at=task.enqueued_at,
        run_after=task.enqueued_at if task.run_after is None else task.run_after,
        started_at=now,
        finished_at=None,
        owner=claim.owner,
        lease_until=now + claim.lease,
        result=None,
        errors=(),
    )


def preclaims(task: NewTask, claim: Preclaim | None, claimed: int, now: float) -> bool:
    """Whether ``enqueue(claim=claim)`` stores ``task`` claimed, ``claimed`` tasks of the call
    having been so far: the rule every store applies, task by task, in order."""
    return (
        claim is not None
        and claimed < claim.limit
        and (task.run_after is None or task.run_after <= now)
    )


class RecordMaker:
    """The records of one ``enqueue`` call, built task by task in order (``preclaims``): stored
    claimed while ``claim`` has room and the task is due, READY otherwise. Each record made
    counts as stored: a store that may not store one (a held key) checks before making it."""

    __slots__ = ("claim", "claimed", "now")

    def __init__(self, claim: Preclaim | None, now: float) -> None:
        self.claim = claim
        self.now = now
        self.claimed = 0

    def __call__(self, task: NewTask) -> TaskRecord:
        claim = self.claim
        if claim is not None and preclaims(task, claim, self.claimed, self.now):
            self.claimed += 1
            return claimed_record(task, claim, self.now)
        return ready_record(task)


def recovered(record: TaskRecord, now: float) -> TaskRecord:
    """``record`` (RUNNING, its worker lost) as ``recover`` leaves it: the lost-worker error
    appended, then READY at once if it has attempts left, else FAILED. The rule every store
    applies; the SQL stores write the result with their own statements."""
    errors = (*record.errors, lost_worker_error(record, now))
    if record.attempts >= record.max_attempts:
        return attrs.evolve(
            record, status=TaskStatus.FAILED, errors=errors, finished_at=now, lease_until=None
        )
    return attrs.evolve(
        record, status=TaskStatus.READY, errors=errors, run_after=now, lease_until=None
    )


def lost_worker_error(record: TaskRecord, at: float) -> TaskError:
    """The error a store records when it takes a task back from a lost worker."""
    return TaskError(
        attempt=record.attempts,
        type="triobg.WorkerLost",
        message=(
            f"the worker {record.owner} stopped (crashed, killed or cut off) while running "
            f"attempt {record.attempts}"
        ),
        at=at,
    )
