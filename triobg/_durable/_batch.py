# Group commit: concurrent writes to a store share one transaction, and so one fsync.
#
# Where it sits: inside the stores (``_sqlite.py``, ``_postgres.py``). A write is a function
# that applies itself to an open transaction in a worker thread. The first writer to find no
# commit in flight leads a batch: it takes every write pending at that moment and hands them
# to the store's ``commit`` in one thread call. Writes that arrive meanwhile wait; when the
# batch is done, the first of them leads the next one. Under load a batch holds many
# requests' enqueues and many tasks' results; alone, a write costs one transaction, as it
# would without batching.
#
# A write may *linger* (the worker's results, ``RESULT_LINGER``): for that long it starts no
# commit and is not handed the lead, but rides with whatever commit another writer starts.
# At low load a request's enqueue then carries the previous request's results, instead of
# waiting behind a commit of their own: one fsync per request, not two.
#
# Also here, shared by both SQL stores: the order a batch is applied in (``apply_in_order``),
# and ``succeed``/``succeed_many`` written through the group commit (``GroupCommitSucceeds``).
from __future__ import annotations

import math
import typing
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import attrs
import trio

from ._store import check_unique

T = TypeVar("T")

#: Seconds the worker's results (``succeed_many``) wait for another writer's commit to ride
#: with, before committing on their own. A lone request otherwise finds the previous request's
#: results being committed and waits for that fsync before its own; results written 20 ms later
#: cost nothing but that (a result lost in a crash meanwhile means a re-run, as for any
#: result not yet committed).
RESULT_LINGER: Final = 0.02


@attrs.define(eq=False)
class Write:
    """One write waiting for a batch: the function to apply, then its outcome.

    ``commit`` sets ``result`` (what ``apply`` returned) or ``error`` (what it raised before
    writing anything) for each write of the batch.
    """

    apply: Callable[[Any], Any]
    done: trio.Event = attrs.field(factory=trio.Event)
    lead: bool = False  # set instead of ``result`` when this writer must lead the next batch
    finished: bool = False
    result: Any = None
    error: BaseException | None = None
    #: Trio time until which it waits for another writer to start the commit that carries it
    #: (``linger``); a write that does not linger may lead from the start.
    linger_until: float = -math.inf


class GroupCommit:
    """Batches writes into transactions; see the module comment.

    Args:
        commit: Runs in a worker thread with the batch; applies each write in one transaction
            and commits it. If it raises, every write of the batch fails with that error
            (nothing of the batch was committed).
        limiter: The thread limiter for ``commit`` calls (one batch at a time).
    """

    def __init__(self, commit: Callable[[list[Write]], None], limiter: trio.CapacityLimiter):
        self._commit = commit
        self._limiter = limiter
        self._pending: list[Write] = []
        self._committing = False
        self.batches = 0  # transactions committed (the store's commit counts them)

    async def write(self, apply: Callable[[Any], T], *, linger: float = 0.0) -> T:
        """Apply ``apply`` in the next committed transaction; returns what it returned.

        Args:
            linger: Seconds this write may wait for another writer to start a commit that
                carries it, before starting one itself (when no commit is under way). For a
                write nobody waits on in a hurry (the worker's results): at low load it then
                shares the next request's commit instead of making that request wait for a
                commit of its own first.
        """
        write = Write(apply)
        self._pending.append(write)
        if not self._committing and linger <= 0:
            self._committing = True
            await self._lead(write)
        else:
            try:
                if linger <= 0:
                    await write.done.wait()  # carried by a batch, or handed the lead
                else:
                    write.linger_until = trio.current_time() + linger
                    await self._linger(write)
            except BaseException:
                if not write.finished:
                    if write in self._pending:
                        self._pending.remove(write)  # never applied: nothing was written
                    if write.lead:
                        self._hand_over()
                raise
            if not write.finished:  # it leads the batch it is in
                await self._lead(write)
        if write.error is not None:
            raise write.error
        return write.result  # type: ignore[no-any-return]

    async def _linger(self, write: Write) -> None:
        """Wait until a batch has carried ``write``, or it must lead one: its linger is over
        and no commit is under way (a commit under way hands the lead on when it ends)."""
        deadline = write.linger_until
        while not write.done.is_set():
            with trio.move_on_at(deadline):
                await write.done.wait()
            if write.done.is_set():
                return
            if not self._committing:
                write.lead = True
                self._committing = True
                return
            deadline = math.inf  # a commit is under way: wait for it as any writer does

    async def _lead(self, own: Write) -> None:
        """Commit every write pending, ``own`` (the leader's) among them."""
        batch, self._pending = self._pending, []
        started = False

        def commit(writes: list[Write]) -> None:
            nonlocal started
            started = True
            self._commit(writes)

        try:
            # Not abandoned on cancel once the thread has the batch: it commits or rolls back,
            # then we report it.
            await trio.to_thread.run_sync(commit, batch, limiter=self._limiter)
        except BaseException as error:
            if not started:
                # Cancelled before the thread took the batch (waiting for the store's thread,
                # which a read may hold): nothing was applied. Only the leader's own write is
                # dropped, with the leader's cancellation; the others wait for the next leader.
                own.finished = True
                own.error = error
                self._pending[:0] = [write for write in batch if write is not own]
                self._hand_over()
                raise
            for write in batch:
                if not write.finished:
                    write.finished = True
                    write.result = None
                    write.error = error
            self._finish(batch)
            raise
        self._finish(batch)

    def _finish(self, batch: list[Write]) -> None:
        for write in batch:
            write.finished = True
            write.done.set()
        self._hand_over()

    def _hand_over(self) -> None:
        # The lead goes to the first write waiting that is done lingering; if every write
        # waiting still lingers, nobody commits until one of them is done lingering or a new
        # writer comes (and takes them all along).
        if self._pending:
            now = trio.current_time()
            for write in self._pending:
                if write.linger_until <= now:
                    write.lead = True
                    write.done.set()
                    return
        self._committing = False


#: A store's statement for a merged batch of successes: given ``(id, result, owner)`` rows and
#: the time, mark each task still held by that owner SUCCEEDED; returns the ``(id, owner)``
#: pairs it changed (each once, even if listed twice).
MarkSucceeded = Callable[[Any, list[tuple[str, str, str]], float], set[tuple[str, str]]]


@attrs.frozen
class Succeed:
    """``succeed``/``succeed_many`` as a write the group commit recognises and merges with the
    others of its batch (``merge_succeeds``); its result is the set of ids recorded."""

    owner: str
    results: tuple[tuple[str, str], ...]  # (task id, result)
    mark: MarkSucceeded
    clock: Callable[[], float]

    def __call__(self, db: Any) -> set[str]:
        return _apply_succeeds(db, [self])[0]


def merge_succeeds(db: Any, writes: list[Write]) -> None:
    """The ``Succeed`` writes of a batch, in one go (``apply_in_order``'s ``bulk_last``)."""
    succeeds = [typing.cast(Succeed, write.apply) for write in writes]
    for write, held in zip(writes, _apply_succeeds(db, succeeds), strict=True):
        write.error = None
        write.result = held


def _apply_succeeds(db: Any, succeeds: Sequence[Succeed]) -> list[set[str]]:
    """For each write, the ids it recorded. A task reported twice in one batch was changed
    once: the first report in batch order is told so, the later ones that it was not held,
    as if they had come after it (which result is kept is then not defined; a task reports
    its outcome once)."""
    first = succeeds[0]
    rows = [(task_id, result, s.owner) for s in succeeds for task_id, result in s.results]
    done = first.mark(db, rows, first.clock())
    out = []
    for succeed in succeeds:
        held = set()
        for task_id, _ in succeed.results:
            if (task_id, succeed.owner) in done:
                done.discard((task_id, succeed.owner))
                held.add(task_id)
        out.append(held)
    return out


class GroupCommitSucceeds:
    """``succeed`` and ``succeed_many`` for a store whose writes go through a ``GroupCommit``
    (its ``_writes``) that merges ``Succeed`` writes (``merge_succeeds``), marking them with
    the store's own statement (its ``_mark_succeeded``)."""

    _writes: GroupCommit
    _mark_succeeded: MarkSucceeded
    clock: Callable[[], float]

    async def succeed(self, task_id: str, owner: str, result: str) -> bool:
        write = Succeed(owner, ((task_id, result),), self._mark_succeeded, self.clock)
        return task_id in await self._writes.write(write)

    async def succeed_many(self, owner: str, results: Sequence[tuple[str, str]]) -> set[str]:
        if not results:
            return set()
        check_unique(task_id for task_id, _ in results)
        # Nobody waits on these in a hurry: at low load they ride with the next commit.
        write = Succeed(owner, tuple(results), self._mark_succeeded, self.clock)
        return await self._writes.write(write, linger=RESULT_LINGER)


def apply_in_order(
    db: Any,
    batch: Sequence[Write],
    *,
    bulk_first: tuple[type, Callable[[Any, list[Write]], None]],
    bulk_last: tuple[type, Callable[[Any, list[Write]], None]],
    store_error: type[BaseException],
) -> None:
    """Apply ``batch`` inside the store's open transaction, in few statements.

    The writes of a batch were all pending at once, so any order of applying them is one in
    which they could have arrived: the writes of ``bulk_first``'s type (key-less enqueues) go
    first, together, through its function; the others one by one; those of ``bulk_last``'s type
    (succeeds) last, together. Under load most of a batch is one kind or the other, so a batch
    is a handful of statements rather than a round trip per write.

    A write that raises something other than ``store_error`` before writing (a contract
    error) fails alone; ``store_error`` fails the whole batch (the caller rolls back).
    """
    first_type, apply_first = bulk_first
    last_type, apply_last = bulk_last
    firsts = [write for write in batch if type(write.apply) is first_type]
    lasts = [write for write in batch if type(write.apply) is last_type]
    if firsts:
        apply_first(db, firsts)
    for write in batch:
        if type(write.apply) is first_type or type(write.apply) is last_type:
            continue
        write.error = None  # a batch may be applied again after a retried transaction
        try:
            write.result = write.apply(db)
        except store_error:
            raise
        except Exception as error:
            write.error = error
    if lasts:
        apply_last(db, lasts)
