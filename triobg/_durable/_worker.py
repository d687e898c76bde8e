# The durable-task worker: claim under a lease, heartbeat, run, record, retry, recover, drain.
#
# Where it sits: one ``Worker`` per process runs inside the app's lifespan (``_tasks.py``; so
# under ``triobg.serve``, the CLI, plain ``hypercorn --worker-class trio`` and the test client)
# or alone under ``python -m triobg worker``. It speaks to the store only through the contract
# of ``_store.py``; it knows no SQL and no HTTP.
#
#   claim loop   claims as many ready tasks as it has free slots; woken at once by a local
#                enqueue (``wake``), else polls every ``poll_interval`` seconds
#   pre-claims   a task this process stores while the worker has free slots and nothing else
#                is waiting in the store is stored already claimed by this worker (``reserve``,
#                ``adopt``: no claim write of its own) and started when the caller says so
#                (``start_held``: after the response)
#   runs         one trio task per claimed task, and one per request for the tasks it stored
#                (``_Run``: one after another, in the order added, as in-process tasks run):
#                ``async def`` in the loop, ``def`` in a thread, each attempt under its
#                ``timeout``; failure -> ``fail`` with a retry time (exponential backoff,
#                jitter) while attempts are left
#   recorder     writes successes: every task that finished while the last write was being
#                committed goes into the next ``succeed_many``, so a busy worker records many
#                outcomes per write; a task's slot is free once its run is over
#   heartbeats   renew the leases of running tasks every ``lease / 3`` seconds; a task whose
#                lease was lost (cancelled by an operator, or taken over) is stopped
#   recovery     every ``recover_interval`` seconds: tasks of dead owners on this machine (the
#                process is gone) and tasks whose lease expired go back to READY (or FAILED
#                when their attempts are used up)
#   pruning      finished tasks older than ``retention`` are deleted
#
# Shutdown (``stop``): stop claiming; running tasks get until the drain deadline; whatever is
# still running then has its lease released at once (so another worker can take it without
# waiting for the lease to expire), is named in the log, and is cancelled. Outcomes already
# being written get ``RECORD_GRACE`` more to land.
#
# Log lines (logger ``triobg.tasks``): a task's start and success are DEBUG, as an in-process
# task's are silent (at INFO they cost a quarter of a no-op durable task's CPU); a failure, a
# retry, a timeout, a lost lease, a release and a recovery are INFO or above, naming the task,
# its id and its attempt.
from __future__ import annotations

import heapq
import logging
import math
import os
import random
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio

from .._exit_wait import wait_at_exit
from ._codec import encode_result
from ._files import UPLOAD_KEY, close_uploads, delete_task_files, files_dir, sweep
from ._status import TaskStatus
from ._store import NewTask, Preclaim, TaskError, TaskNotFound, TaskRecord, TaskStore

if TYPE_CHECKING:
    from ._task import DurableTask

logger = logging.getLogger("triobg.tasks")

_HOST = socket.gethostname()
_LIVE_OWNERS: set[str] = set()  # workers alive in this process (several in tests)


def _start_time(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (Linux), which tells a reused pid apart;
    ``None`` when there is no such process, or only its zombie (dead, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
        if fields[0] == b"Z":
            return None
        return fields[19].decode()
    except (OSError, IndexError):
        return None


def new_owner() -> str:
    """An owner id for a worker: ``host:pid:start-time:random``.

    The host and pid let a process on the same machine check whether the owner still lives;
    the start time tells a reused pid apart; the random part tells apart two workers (or two
    lifespans) of one process.
    """
    pid = os.getpid()
    return f"{_HOST}:{pid}:{_start_time(pid) or '-'}:{secrets.token_hex(4)}"


def owner_is_dead(owner: str) -> bool:
    """Whether ``owner`` certainly no longer runs: a process on this machine that is gone.

    An owner on another machine is never declared dead here: its tasks come back when their
    lease expires.
    """
    if owner in _LIVE_OWNERS:
        return False
    try:
        host, pid_text, started, _ = owner.rsplit(":", 3)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != _HOST:
        return False
    if pid == os.getpid():
        return True  # this process, but not one of its live workers: a finished lifespan
    now_started = _start_time(pid)
    if now_started is not None:
        return started != "-" and now_started != started
    if os.path.exists("/proc/self/stat"):
        return True  # /proc works here, and has no such pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def backoff(
    attempt: int,
    *,
    base: float = 1.0,
    cap: float = 300.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds before retrying after failed attempt ``attempt`` (1, 2, ...).

    Exponential (``base * 2 ** (attempt - 1)``, at most ``cap``), with "equal jitter": a random
    point in the upper half of that, so retries of many tasks failing together spread out.
    """
    delay = min(cap, base * 2.0 ** min(attempt - 1, 64))
    return delay / 2 + delay / 2 * rand()


#: Seconds a stopping worker waits, after its drain deadline, for the outcomes of tasks that
#: finished to be written (a commit, normally milliseconds); not written by then, such a task
#: stays RUNNING in the store and is recovered (run again) like the task of a lost worker.
RECORD_GRACE: Final = 1.0


def _label(record: TaskRecord) -> str:
    return f"{record.name} (id {record.id}, attempt {record.attempts}/{record.max_attempts})"


def _delete_files_of(directory: Path, task_ids: list[str]) -> None:
    for task_id in task_ids:
        delete_task_files(directory, task_id)


def _error(attempt: int, error: BaseException, at: float) -> TaskError:
    kind = type(error)
    return TaskError(
        attempt=attempt,
        type=f"{kind.__module__}.{kind.__qualname__}",
        message=str(error),
        traceback="".join(traceback.format_exception(error)),
        at=at,
    )


class _Run:
    """Tasks that one trio task runs one after another: the tasks one request stored, in the
    order they were added (as the request's in-process tasks run), or one claimed task.

    Why not a trio task and a cancel scope per task: together they cost more CPU (about 17 µs)
    than storing a no-op task and running it, and a request usually adds one or two. The
    scope covers whichever task is running: its timeout is the scope's deadline, and
    ``cancel`` (its lease was lost: an operator cancelled it, or another worker took over)
    cancels the scope only while that task runs; a task lost before its turn is skipped
    (``Worker._given_up``). A scope once cancelled is spent, so the next task gets a new one.
    """

    __slots__ = ("calls", "current", "records", "scope")

    def __init__(
        self, records: list[TaskRecord], calls: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        self.records = records
        self.calls = calls  # task id -> its arguments, not to be decoded (``NewTask.call``)
        self.scope: trio.CancelScope | None = None
        self.current: str | None = None  # the id of the task running now

    def cancel(self, task_id: str) -> None:
        """Stop ``task_id`` if it is the one running (a task not started yet is skipped by
        the caller marking it given up)."""
        if self.current == task_id and self.scope is not None:
            self.scope.cancel()


class Worker:
    """Runs the durable tasks of ``registry`` that ``store`` holds, in this process.

    Args:
        store: Where the tasks are.
        registry: Task name -> ``DurableTask``; a stored task whose name is missing ends FAILED.
        concurrency: Most tasks running at once.
        lease: Seconds a claim lasts unless renewed (renewed every ``lease / 3``): how long
            another machine waits before taking over the tasks of a worker that vanished.
        poll_interval: Seconds between claims when idle (a local enqueue wakes it at once).
        recover_interval: Seconds between checks for dead owners and expired leases.
        retention: Seconds finished tasks are kept before they are pruned.
        claim_cooldown: Seconds a claim waits after the previous one unless every slot is
            free by then (5 ms): under a backlog of short tasks, claims then take many tasks
            each instead of the few slots still busy (Oban's ``dispatch_cooldown`` does the
            same).
        thread_limiter: Limits the threads of ``def`` tasks.
        backoff_base, backoff_cap: The retry schedule; see ``backoff``.
        exit_grace: Seconds the process waits at exit for a ``def`` task cut off while running
            in its thread (the app's ``drain_timeout``); see ``_exit_wait.py``.
    """

    def __init__(
        self,
        store: TaskStore,
        registry: Mapping[str, DurableTask[..., Any]],
        *,
        concurrency: int = 256,
        lease: float = 10.0,
        poll_interval: float = 1.0,
        recover_interval: float = 1.0,
        retention: float = 7 * 86400.0,
        prune_interval: float = 600.0,
        claim_cooldown: float = 0.005,
        thread_limiter: trio.CapacityLimiter | None = None,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        exit_grace: float = 30.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be 1 or more")
        self.store = store
        self.registry = registry
        self.concurrency = concurrency
        self.lease = lease
        self.poll_interval = poll_interval
        self.recover_interval = recover_interval
        self.retention = retention
        self.prune_interval = prune_interval
        self.claim_cooldown = claim_cooldown
        self.thread_limiter = thread_limiter or trio.CapacityLimiter(40)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.clock = clock
        self.owner = owner or new_owner()
        self.exit_grace = exit_grace
        self.completed = 0  # attempts recorded as succeeded by this worker
        self.failed = 0  # attempts recorded as failed by this worker
        self.started = False  # set once the first recovery and claim are done
        self._running: dict[str, _Run] = {}  # every task held here, and the run it is in
        self._given_up: set[str] = set()  # released or lost: record nothing for them
        self._recording: set[str] = set()  # run over, outcome being written: not "lost"
        self._handed: set[str] = set()  # succeeded, handed to the recorder (of ``_recording``)
        self._succeeded: list[tuple[TaskRecord, str]] = []  # for the recorder to write
        self._to_record = trio.Event()
        self._wakeup = trio.Event()
        self._claim_wanted = True  # a claim is due (woken by new work, or a poll)
        self._backlog = True  # the last claim may have left claimable tasks in the store
        self._reserved = 0  # slots promised to pre-claims whose enqueue is being committed
        self._to_start: list[_Run] = []  # pre-claimed, released to run (``start_held``)
        self._closed = False  # set once the worker no longer starts anything
        self._runs: trio.Nursery | None = None  # where tasks run, while it is open
        self._changed = trio.Event()  # set whenever ``idle`` may have become true
        self._due: list[float] = []  # wall-clock times local tasks become claimable (a heap)
        self._slot = trio.Event()
        self._stopping = False
        self._deadline = math.inf
        self._stopped = trio.Event()
        self._cooled_at = -math.inf  # trio time before which a claim waits (``_cool_down``)

    @property
    def running(self) -> int:
        """Tasks held now: running, about to start, or whose result is being written."""
        return len(self._running)

    def wake(self) -> None:
        """Claim now: tasks were just stored (after a response, by ``enqueue``)."""
        self._claim_wanted = True
        self._wakeup.set()

    # --- pre-claims: tasks this process stores, run by this worker -----------------------------

    def reserve(self, count: int) -> Preclaim | None:
        """Slots for up to ``count`` tasks about to be stored here, to store them claimed.

        ``None`` (store them READY, to be claimed as usual) when the worker is stopping, has no
        free slot, or its last claim may have left older tasks waiting in the store: those
        keep their turn (priority and ``run_after`` order the claims). Otherwise the slots are
        held until ``adopt`` is called with the result, which the caller must do, also when
        the enqueue fails.
        """
        if self._stopping or self._backlog or count <= 0:
            return None
        free = self._free()
        if free <= 0:
            return None
        limit = min(count, free)
        self._reserved += limit
        return Preclaim(owner=self.owner, lease=self.lease, limit=limit)

    def adopt(
        self,
        claim: Preclaim,
        records: list[TaskRecord] | None,
        new: Sequence[NewTask] = (),
    ) -> tuple[list[TaskRecord], list[str]]:
        """Take the tasks ``enqueue(claim=claim)`` stored claimed for this worker.

        Args:
            records: What the enqueue returned; ``None`` when it failed.
            new: What was enqueued: the arguments of those whose ``call`` is known are not
                decoded again.

        Returns:
            The tasks now held (leases renewed by the heartbeat; each starts once passed to
            ``start_held``), and the ids stored claimed after this worker stopped: the caller
            must ``release`` those in the store.
        """
        self._reserved -= claim.limit
        self._slot.set()
        self._changed.set()
        # By id: two calls with one idempotency key in one enqueue get the same record.
        mine = list({
            r.id: r
            for r in records or ()
            if r.status is TaskStatus.RUNNING and r.owner == self.owner and r.attempts == 1
            and r.id not in self._running
        }.values())  # fmt: skip
        if self._closed:
            return [], [r.id for r in mine]
        calls = {task.id: task.call for task in new if task.call is not None}
        run = _Run(mine, calls)  # one after another, in the order the request added them
        for record in mine:
            self._running[record.id] = run
        return mine, []

    def start_held(self, records: list[TaskRecord]) -> None:
        """Start held tasks (``adopt``) now: their request's response has been sent."""
        if not records or self._closed:
            return
        run = self._running.get(records[0].id)
        if run is None:
            return
        self._to_start.append(run)
        if self._runs is None:  # not running yet: the claim loop starts them once it is
            self._wakeup.set()
        else:
            self._start_held(self._runs)

    def _free(self) -> int:
        # A task that succeeded and whose result is being written no longer counts: it runs
        # nothing, and under load its slot would otherwise stay taken for a commit or two,
        # sending the next request's tasks the long way (stored READY, then claimed).
        return self.concurrency - len(self._running) + len(self._handed) - self._reserved

    @property
    def idle(self) -> bool:
        """Nothing running, held or about to be, and nothing claimable left by the last claim."""
        return not (
            self._running or self._reserved or self._to_start or self._claim_wanted or self._backlog
        )

    async def wait_idle(self) -> None:
        """Return once ``idle``: every task stored so far that was claimable has run (tasks
        delayed by ``run_after`` or a retry's backoff are not waited for)."""
        while not self.idle and not self._closed:
            self._changed = trio.Event()
            await self._changed.wait()

    def due(self, at: float, *, wake: bool = True) -> None:
        """Claim at ``at`` (wall clock), when a task stored here becomes claimable, rather than
        at the next poll (a delay, a retry's backoff).

        Args:
            wake: Re-plan the idle wait now. ``False`` leaves that to
                the next ``wake``: the pipeline notes a request's delays before its response
                is sent, and must not start the request's other tasks before it is.
        """
        if at > self.clock():
            heapq.heappush(self._due, at)
        elif wake:
            self._claim_wanted = True  # claimable already
        if wake:
            self._wakeup.set()

    async def stop(self, deadline: float = -math.inf) -> None:
        """Stop claiming; let running tasks run until ``deadline`` (trio time); release the rest.

        Returns once the worker has stopped.
        """
        self._deadline = deadline
        self._stopping = True
        self._wakeup.set()
        self._slot.set()
        await self._stopped.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Work until ``stop``; ``nursery.start`` returns once the first recovery and the first
        claim are done (so what was stored before is already running)."""
        _LIVE_OWNERS.add(self.owner)
        try:
            async with trio.open_nursery() as services:
                await self._recover()  # a restart resumes the dead process's tasks at once
                services.start_soon(self._every, self.recover_interval, self._recover)
                services.start_soon(self._every, self.lease / 3, self._heartbeat)
                services.start_soon(self._every, self.prune_interval, self._prune)
                services.start_soon(self.store.watch, self.wake)  # other processes' work
                services.start_soon(self._record_successes)
                async with trio.open_nursery() as runs:
                    self._runs = runs
                    self._start_held(runs)
                    await self._claim_loop(runs, task_status)
                    with trio.move_on_at(self._deadline):
                        while self._running or self._reserved:
                            self._start_held(runs)
                            self._slot = trio.Event()
                            await self._slot.wait()
                    self._closed = True  # from here on nothing starts
                    self._runs = None
                    if len(self._running) > len(self._handed):
                        await self._release_running()
                    runs.cancel_scope.cancel()
                with trio.move_on_after(RECORD_GRACE):
                    while self._handed:  # successes being written: let them land
                        self._slot = trio.Event()
                        await self._slot.wait()
                services.cancel_scope.cancel()
        finally:
            self._closed = True
            self._runs = None
            self._running.clear()  # what is left was held and never started: released above
            self._to_start.clear()
            _LIVE_OWNERS.discard(self.owner)
            self._stopped.set()
            self._changed.set()
        logger.info("durable task worker %s stopped", self.owner)

    async def _claim_loop(self, runs: trio.Nursery, task_status: trio.TaskStatus[None]) -> None:
        starting = True
        while not self._stopping:
            self._start_held(runs)
            free = self._free()
            if free <= 0:
                self._slot = trio.Event()
                await self._slot.wait()
                continue
            if self._claim_wanted:
                if free < self.concurrency and trio.current_time() < self._cooled_at:
                    await self._cool_down()
                    continue
                self._claim_wanted = False
                self._wakeup = trio.Event()  # before claiming: a wake during the claim counts
                try:
                    records = await self.store.claim(self.owner, free, self.lease)
                except Exception:
                    logger.exception("claiming durable tasks failed; trying again shortly")
                    records = []
                self._cooled_at = trio.current_time() + self.claim_cooldown
                for record in records:  # claimed tasks are independent: each its own run
                    run = _Run([record])
                    self._running[record.id] = run
                    runs.start_soon(self._run_tasks, run)
                # A full claim may have left more behind: claim again as slots free up, and
                # store new local tasks READY meanwhile so they do not jump the queue.
                self._backlog = len(records) >= free
                self._claim_wanted = self._claim_wanted or self._backlog
                self._changed.set()
                if starting:
                    starting = False
                    self.started = True
                    task_status.started()
                if self._claim_wanted:
                    continue
            if self._to_start:
                continue
            await self._idle()

    async def _cool_down(self) -> None:
        # Claims that follow one another closely wait for slots to free up, until all are free
        # or ``claim_cooldown`` has passed since the last claim: under a backlog of short tasks
        # the claim that follows a full one would otherwise ask for the few slots still busy,
        # and cost a commit's wait while the rest of them free up.
        with trio.move_on_at(self._cooled_at):
            while self._free() < self.concurrency and not self._stopping:
                self._slot = trio.Event()
                await self._slot.wait()

    def _start_held(self, runs: trio.Nursery) -> None:
        to_start, self._to_start = self._to_start, []
        for run in to_start:
            runs.start_soon(self._run_tasks, run)

    async def _idle(self) -> None:
        # Until woken, the next poll, or the moment a known delayed task becomes due; a claim
        # is due unless only held tasks were released (``start_held``).
        now = self.clock()
        if self._due and self._due[0] <= now:
            while self._due and self._due[0] <= now:
                heapq.heappop(self._due)
            self._claim_wanted = True  # a delayed task became claimable meanwhile
            return
        wait = self.poll_interval
        if self._due:
            wait = min(wait, self._due[0] - now)
        with trio.move_on_after(wait) as timer:
            await self._wakeup.wait()
        if timer.cancelled_caught:
            self._claim_wanted = True
        self._wakeup = trio.Event()

    async def _every(self, seconds: float, job: Callable[[], Any]) -> None:
        while True:
            await trio.sleep(seconds)
            await job()

    async def _release_running(self) -> None:
        # Not the tasks that succeeded: their results are being written (``RECORD_GRACE``). A
        # failure being written is released (its ``fail`` is cancelled with the runs).
        ids = [task_id for task_id in self._running if task_id not in self._handed]
        self._given_up.update(ids)
        try:
            with trio.CancelScope(shield=True):
                released = await self.store.release(self.owner, ids)
        except Exception:
            logger.exception("releasing the leases of %d durable tasks failed", len(ids))
            released = 0
        for task_id in ids:
            logger.warning(
                "durable task %s released at shutdown: %s at the drain deadline; its lease is "
                "given back so another worker runs it again",
                task_id,
                "its failure still being written"
                if task_id in self._recording
                else "still running",
                extra={"task_id": task_id, "outcome": "released"},
            )
        logger.info("released %d of %d running durable tasks", released, len(ids))

    # --- one task ------------------------------------------------------------------------------

    async def _run_tasks(self, run: _Run) -> None:
        """Run ``run``'s tasks one after another, each attempt under ``run``'s cancel scope."""
        records = run.records
        started = done = 0  # tasks begun; tasks whose slot ``_attempt`` or a skip gave back
        try:
            while started < len(records):
                scope = run.scope = trio.CancelScope()
                left: Exception | None = None
                try:
                    with scope:
                        while started < len(records):
                            record = records[started]
                            started += 1
                            if record.id in self._given_up:  # lost its lease before its turn
                                self._finished(record.id)
                                done = started
                                continue
                            run.current = record.id
                            call = None if run.calls is None else run.calls.get(record.id)
                            await self._attempt(record, scope, call)
                            run.current = None
                            done = started
                            if scope.cancel_called:  # spent (a deadline passed as it ended)
                                break
                except Exception as error:
                    # What the scope left of a group once it took its ``Cancelled`` (the task's
                    # own nursery failed as it was cut off): the attempt's error, as it was
                    # before one scope covered a request's tasks; not the worker's.
                    if done == started or not scope.cancelled_caught:
                        raise
                    left = error
                if done < started:  # the scope caught its cancel: timeout, or lease lost
                    run.current = None
                    await self._cut_off(records[started - 1], left)
                    done = started
        finally:
            run.current = None
            for record in records[done:]:  # cancelled mid-task or before its turn (shutdown)
                if record.id in self._running:
                    self._finished(record.id)

    async def _attempt(
        self, record: TaskRecord, scope: trio.CancelScope, call: Mapping[str, Any] | None
    ) -> None:
        """One attempt of ``record``'s task, in ``scope`` (entered by ``_run_tasks``), with
        ``call`` for arguments if given (``NewTask.call``), else its stored ones decoded.

        Its outcome is written, or handed to the recorder, and its slot given back, except
        when it is cut off by a cancellation: ``_run_tasks`` then sees to it (``_cut_off``,
        or the shutdown's release).
        """
        opened: list[Any] = []
        over = True  # ends here (not cut off): the slot is given back below, or by the recorder
        handed = False
        try:
            if scope.deadline != math.inf:  # the previous task's timeout
                scope.deadline = math.inf
            task = self.registry.get(record.name)
            if task is None:
                error = LookupError(
                    f"no durable task named {record.name!r} is declared in this app "
                    "(renamed or removed since it was stored?)"
                )
                await self._record_failure(record, error, final=True)
                return
            args: list[Any] = []
            kwargs: dict[str, Any]
            if call is not None:
                kwargs = dict(call)
            else:
                try:
                    args, kwargs = task._decode(record.arguments)
                except ValueError as error:
                    await self._record_failure(record, error, final=True)
                    return
            if UPLOAD_KEY in record.arguments:
                opened = [*args, *kwargs.values()]  # the UploadFiles among them are closed after
            if logger.isEnabledFor(logging.DEBUG):  # a line per task: only when asked for
                logger.debug(
                    "durable task %s started", _label(record), extra=self._extra(record, "started")
                )
            value: Any = None
            try:
                if task.timeout is not None:
                    scope.deadline = trio.current_time() + task.timeout
                if task.is_async:
                    value = await task.func(*args, **kwargs)
                else:
                    value = await self._in_thread(task, args, kwargs, record)
            except Exception as error:
                if scope.deadline != math.inf:  # the failure's write is not the attempt
                    scope.deadline = math.inf
                await self._record_failure(record, error)
                return
            if record.id in self._given_up:
                return  # released at shutdown or lost its lease: not ours to record
            try:
                result = encode_result(value)
            except TypeError as unstorable:
                if scope.deadline != math.inf:
                    scope.deadline = math.inf
                await self._record_failure(record, unstorable)
                return
            # The recorder writes it, with the other tasks that finished meanwhile, and
            # frees the slot then (``_record_successes``).
            self._recording.add(record.id)
            self._handed.add(record.id)
            self._succeeded.append((record, result))
            self._to_record.set()
            self._slot.set()  # no longer counted as running (``_free``)
            handed = True
        except BaseException:  # cancelled (maybe inside a group), or worse: ``_run_tasks`` sees
            over = False
            raise
        finally:
            if opened:
                close_uploads(opened)
            if over and not handed:
                self._finished(record.id)

    async def _cut_off(self, record: TaskRecord, error: Exception | None = None) -> None:
        """``record``'s attempt was cancelled by its own scope: its timeout, or its lease was
        lost (then nothing is ours to record). ``error``: what the attempt raised besides
        (recorded instead of the timeout)."""
        try:
            task = self.registry.get(record.name)
            if record.id in self._given_up or task is None:
                return
            if error is None:
                how = "cancelled" if task.is_async else "abandoned in its worker thread"
                if not task.is_async:
                    logger.warning("durable task %s timed out: %s", _label(record), how)
                error = TimeoutError(
                    f"attempt {record.attempts} took longer than its timeout of "
                    f"{task.timeout} s ({how})"
                )
            await self._record_failure(record, error)
        finally:
            self._finished(record.id)

    def _finished(self, task_id: str) -> None:
        """The task is over here: its slot is free."""
        del self._running[task_id]
        self._given_up.discard(task_id)
        self._recording.discard(task_id)
        self._handed.discard(task_id)
        self._slot.set()
        self._changed.set()

    async def _record_successes(self) -> None:
        """Write the outcomes of the tasks that succeeded: all those that finished while the
        previous write was being committed, in one ``succeed_many``."""
        while True:
            if not self._succeeded:
                self._to_record = trio.Event()
                await self._to_record.wait()
                continue
            batch, self._succeeded = self._succeeded, []
            try:
                held = await self.store.succeed_many(
                    self.owner, [(record.id, result) for record, result in batch]
                )
            except Exception:
                logger.exception(
                    "recording the outcome of %d durable task(s) failed; those not recorded "
                    "run again once their leases expire: %s",
                    len(batch),
                    ", ".join(record.id for record, _ in batch),
                )
                held = None
            with_files = []
            debug = logger.isEnabledFor(logging.DEBUG)
            for record, _ in batch:
                if held is None:
                    pass
                elif record.id in held:
                    self.completed += 1
                    if debug:
                        logger.debug(
                            "durable task %s succeeded",
                            _label(record),
                            extra=self._extra(record, "ok"),
                        )
                    if UPLOAD_KEY in record.arguments:
                        with_files.append(record.id)
                elif record.id not in self._given_up:
                    logger.warning(
                        "durable task %s: outcome not recorded, the task was cancelled or taken "
                        "over meanwhile",
                        _label(record),
                    )
            try:
                if with_files:  # they finished for good: the files handed over to them go
                    directory = files_dir(self.store)
                    await trio.to_thread.run_sync(_delete_files_of, directory, with_files)
            except Exception:
                logger.exception("deleting the files of %d durable task(s) failed", len(with_files))
            finally:
                for record, _ in batch:  # then their slots (``wait_idle`` sees the files gone)
                    self._finished(record.id)

    async def _in_thread(
        self, task: DurableTask[..., Any], args: Any, kwargs: Any, record: TaskRecord
    ) -> Any:
        # A ``def`` task in a worker thread. Cancelled (its timeout, the drain deadline), the
        # thread is abandoned: if the task had not started it never will, and if it is running
        # it runs on, and the process waits for it at exit (``_exit_wait.py``).
        lock = threading.Lock()
        done = threading.Event()
        started = skip = False

        def call() -> Any:
            nonlocal started
            with lock:
                if skip:
                    return None
                started = True
            try:
                return task.func(*args, **kwargs)
            finally:
                done.set()

        try:
            return await trio.to_thread.run_sync(
                call, limiter=self.thread_limiter, abandon_on_cancel=True
            )
        except BaseException:
            with lock:
                skip = True
                running = started and not done.is_set()
            if running:
                wait_at_exit(f"durable task {_label(record)}", done, self.exit_grace)
            raise

    async def _record_failure(
        self, record: TaskRecord, error: BaseException, *, final: bool = False
    ) -> None:
        if record.id in self._given_up:
            return
        label = _label(record)
        now = self.clock()
        retry_at = None
        if not final and record.attempts < record.max_attempts:
            retry_at = now + backoff(record.attempts, base=self.backoff_base, cap=self.backoff_cap)
        stored = _error(record.attempts, error, now)
        self._recording.add(record.id)
        if await self._write(self.store.fail(record.id, self.owner, stored, retry_at), label):
            self.failed += 1
            if retry_at is not None:
                self.due(retry_at)
            if retry_at is None:
                await self._delete_files(record)
                logger.error(
                    "durable task %s failed for good",
                    label,
                    exc_info=error,
                    extra=self._extra(record, "failed"),
                )
            else:
                logger.warning(
                    "durable task %s failed; retrying in %.1f s",
                    label,
                    retry_at - now,
                    exc_info=error,
                    extra=self._extra(record, "retrying"),
                )

    async def _delete_files(self, record: TaskRecord) -> None:
        """The task finished for good: the files handed over to it go (if it had any)."""
        if UPLOAD_KEY in record.arguments:
            await trio.to_thread.run_sync(delete_task_files, files_dir(self.store), record.id)

    async def _write(self, operation: Any, label: str) -> bool:
        try:
            done: bool = await operation
        except Exception:
            logger.exception(
                "recording the outcome of durable task %s failed; it runs again once its "
                "lease expires",
                label,
            )
            return False
        if not done:
            logger.warning(
                "durable task %s: outcome not recorded, the task was cancelled or taken over "
                "meanwhile",
                label,
            )
        return done

    def _extra(self, record: TaskRecord, outcome: str) -> dict[str, Any]:
        return {
            "task": record.name,
            "task_id": record.id,
            "attempt": record.attempts,
            "outcome": outcome,
        }

    # --- services ------------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        ids = list(self._running)
        if not ids:
            return
        try:
            held = await self.store.heartbeat(self.owner, ids, self.lease)
        except Exception:
            logger.exception("renewing the leases of %d durable tasks failed", len(ids))
            return
        for task_id in ids:
            run = self._running.get(task_id)
            if (
                task_id not in held
                and run is not None
                and task_id not in self._given_up
                and task_id not in self._recording  # its outcome may be what made it unheld
            ):
                self._given_up.add(task_id)
                logger.warning(
                    "durable task %s lost its lease (cancelled, or taken over after a stall); "
                    "stopping it",
                    task_id,
                    extra={"task_id": task_id, "outcome": "lost"},
                )
                run.cancel(task_id)  # running: stopped; not started yet: skipped

    async def _recover(self) -> None:
        try:
            owners = await self.store.owners()
            dead = {owner for owner in owners if owner != self.owner and owner_is_dead(owner)}
            recovered = await self.store.recover(dead)
        except Exception:
            logger.exception("recovering the durable tasks of lost workers failed")
            return
        for record in recovered:
            logger.warning(
                "durable task %s (id %s, attempt %d/%d) recovered from lost worker %s: now %s",
                record.name,
                record.id,
                record.attempts,
                record.max_attempts,
                record.owner,
                record.status.value,
                extra=self._extra(record, "recovered"),
            )
        if recovered:
            self.wake()

    async def _prune(self) -> None:
        try:
            pruned = await self.store.prune(self.clock() - self.retention)
        except Exception:
            logger.exception("pruning finished durable tasks failed")
            return
        if pruned:
            logger.info("pruned %d finished durable tasks", pruned)
        try:
            swept = await sweep(files_dir(self.store), self._task_exists)
        except Exception:
            logger.exception("deleting the files of finished durable tasks failed")
            return
        if swept:
            logger.info("deleted %d file(s) of durable tasks no longer stored", swept)

    async def _task_exists(self, task_id: str) -> bool:
        try:
            await self.store.get(task_id)
        except TaskNotFound:
            return False
        return True
