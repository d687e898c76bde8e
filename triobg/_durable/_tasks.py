# ``app.tasks``: the app's durable tasks — declaring, asking, the pipeline step, the worker.
#
# Where it sits: ``App`` owns one ``DurableTasks``. It is free until used: the store is built
# (and its file created) the first time something needs it, and the lifespan only starts a
# worker when the app declares durable tasks. It joins the flow in three places, each a line:
#
#   ``_pipeline.py``  after the handler, before the first byte: ``_store_for`` commits the
#                     request's durable tasks (503 if it cannot), most of them already
#                     claimed by the local worker; after the response, the function it left
#                     in ``tasks._after_response`` starts them at once
#   ``_lifespan.py``  ``_serve_until`` runs the worker from startup until the shutdown
#                     message, then drains it with the app's drain deadline
#   ``_cli_tasks.py`` ``python -m triobg worker|tasks``
from __future__ import annotations

import builtins
import logging
import os
import time
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final, ParamSpec, TypeVar

import trio

from ._sqlite import store_from_url
from ._status import TaskStatus
from ._store import NewTask, TaskRecord, TaskStatistics, TaskStore
from ._task import DurableTask, TaskResult
from ._worker import Worker

if typing.TYPE_CHECKING:
    from .._background import BackgroundRunner, BackgroundTasks
    from .._requests import Receive
    from .._responses import Response

logger = logging.getLogger("triobg.tasks")

P = ParamSpec("P")
R = TypeVar("R")

#: The environment variable naming the default store (a URL), and the default itself: a file
#: in the current directory, created the first time the app stores or reads a durable task.
STORE_ENV: Final = "TRIOBG_TASK_STORE"
DEFAULT_STORE: Final = "sqlite:///triobg-tasks.sqlite3"


class DurableTasks:
    """The durable tasks of one app (``app.tasks``): ask about them, and tune the worker.

    Attributes:
        concurrency: Most durable tasks this process runs at once (256; ``def`` tasks among
            them also wait for one of the app's task threads). A task that succeeded stops
            counting at once, while its result is being written. A request's tasks
            are stored already claimed by this process (and run right after its response)
            only while a slot is free, else stored READY and claimed a moment later (a write
            more per task). 64 busy connections adding two tasks each kept 128 slots full, so
            the default leaves room for a server's concurrent requests to add a few tasks each.
            Claims are batched up to the free slots, so a higher value also means fewer commits
            per task.
        lease: Seconds a worker's claim on a task lasts unless renewed; how long another
            machine waits before taking over the tasks of a worker that vanished.
        poll_interval: Seconds between looks at the store when idle (tasks stored by this
            process wake its worker at once; this is for tasks stored elsewhere).
        retention: Seconds finished tasks are kept (then pruned).
        run_worker: Whether the app's lifespan runs a worker (default ``True``; a web process
            that leaves all work to ``python -m triobg worker`` sets it to ``False``).
    """

    def __init__(self, store: TaskStore | str | None, background: BackgroundRunner) -> None:
        self._spec = store
        self._store: TaskStore | None = store if isinstance(store, TaskStore) else None
        if isinstance(store, str):
            self._store = store_from_url(store)  # fail at ``App(...)`` on a bad URL; no I/O yet
        self._background = background
        self.registry: dict[str, DurableTask[..., Any]] = {}
        self.clock: Callable[[], float] = time.time
        self.concurrency = 256
        self.lease = 10.0
        self.poll_interval = 1.0
        self.retention = 7 * 86400.0
        self.run_worker = True
        self._worker: Worker | None = None

    @property
    def store(self) -> TaskStore:
        """The store; the default one (``$TRIOBG_TASK_STORE``, else ``./triobg-tasks.sqlite3``)
        is chosen the first time this is read, and its file created at its first use.

        Assignable (a store or a URL) while no worker runs, e.g. to give a test its own.
        """
        store = self._store
        if store is None:
            store = self._store = store_from_url(os.environ.get(STORE_ENV) or DEFAULT_STORE)
        return store

    @store.setter
    def store(self, store: TaskStore | str) -> None:
        # Swapping stores under a running worker would strand its leases in the old one.
        if self._worker is not None:
            raise RuntimeError("the store cannot be changed while the app's worker runs")
        self._store = store_from_url(store) if isinstance(store, str) else store

    def declare(
        self,
        func: Callable[P, R],
        *,
        name: str | None = None,
        retries: int = 0,
        timeout: float | None = None,
    ) -> DurableTask[P, R]:
        """Register ``func`` as a durable task (what ``@app.task`` does)."""
        if name is None:
            name = f"{func.__module__}.{func.__qualname__}"
        if name in self.registry and self.registry[name].func is not func:
            raise ValueError(f"a durable task named {name!r} is already declared")
        task = DurableTask(func, tasks=self, name=name, retries=retries, timeout=timeout)
        self.registry[name] = task
        return task

    # --- asking ------------------------------------------------------------------------------

    async def get(self, task_id: str) -> TaskResult:
        """The task ``task_id`` as it is now.

        Raises:
            TaskNotFound: no such task (never stored, or pruned after the retention).
        """
        return TaskResult._from_record(await self.store.get(task_id))

    async def list(
        self, status: TaskStatus | None = None, *, limit: int = 100
    ) -> builtins.list[TaskResult]:
        """Up to ``limit`` tasks (with ``status``, if given), most recently added first."""
        return [TaskResult._from_record(r) for r in await self.store.list(status, limit=limit)]

    async def statistics(self) -> TaskStatistics:
        """Counts by status, and the age of the oldest task waiting to be claimed."""
        return await self.store.statistics()

    async def cancel(self, task_id: str) -> TaskResult:
        """Cancel the task unless it has finished (a running one is stopped at its worker's
        next heartbeat)."""
        return TaskResult._from_record(await self.store.cancel(task_id))

    async def retry(self, task_id: str) -> TaskResult:
        """Run a FAILED or CANCELLED task again, with a fresh set of attempts."""
        result = TaskResult._from_record(await self.store.retry(task_id))
        self._wake()
        return result

    # --- the flow ------------------------------------------------------------------------------

    async def _enqueue(self, tasks: builtins.list[NewTask]) -> TaskResult:
        records, start = await self._commit_new(tasks)
        if start is not None:
            start()
        return TaskResult._from_record(records[0])

    async def _commit_new(
        self, new: builtins.list[NewTask]
    ) -> tuple[builtins.list[TaskRecord], Callable[[], None] | None]:
        """Store ``new`` in one commit; returns the records and what starts the tasks once
        allowed (``None``: no worker here). Raises what the store raised (nothing stored).

        The tasks this process's worker has room for, while nothing older waits in the store,
        are stored already claimed by it (``Worker.reserve``): the claim costs no write of its
        own, and the worker starts them when the returned function is called, without looking
        at the store. The others are stored READY and the function wakes the worker to claim.
        """
        worker = self._worker
        claim = None if worker is None else worker.reserve(len(new))
        try:
            records = await self.store.enqueue(new, claim=claim)
        except BaseException as error:
            if claim is None:
                raise
            assert worker is not None
            worker.adopt(claim, None)
            if isinstance(error, Exception):  # the store refused the batch: nothing was stored
                raise
            # Cancelled while the commit may still have gone through: give back what was stored
            # claimed (nothing if it was not), so another claim runs it at once.
            with trio.CancelScope(shield=True):
                try:
                    await self.store.release(claim.owner, [task.id for task in new])
                except Exception:
                    logger.exception("releasing the pre-claimed tasks of a cancelled enqueue")
            raise
        if worker is None:
            return records, None
        held: builtins.list[TaskRecord] = []
        if claim is not None:
            held, orphans = worker.adopt(claim, records, new)
            if orphans:  # the worker stopped meanwhile: let another worker take them at once
                await self.store.release(claim.owner, orphans)
        rest = len(held) < len(new)
        for task in new:
            if task.run_after is not None:
                worker.due(task.run_after, wake=False)  # noted now, woken by ``start`` below

        def start() -> None:
            worker.start_held(held)
            if rest:
                worker.wake()

        return records, start

    async def _store_for(self, tasks: BackgroundTasks, response: Response) -> Response:
        """The pipeline step "store the durable tasks, then send": commit, or answer 503.

        On failure nothing of the request's work happens: its in-process tasks are discarded
        too (named in the log), and the client gets a 503 instead of a success. On success
        ``tasks._after_response`` starts the stored tasks once the response is sent.
        """
        new = tasks._durable
        assert new is not None
        try:
            start = (await self._commit_new(new))[1]
        except BaseException as error:
            if not isinstance(error, Exception):
                # Cancelled with the commit in flight: it may have gone through, and then the
                # tasks run (recovered from the store like any other), so "never stored" would
                # be a lie. Say what is known, with the ids to look them up by.
                for task in new:
                    logger.warning(
                        "durable task %s (id %s) of %s: the request was cancelled while its "
                        "commit was in flight; stored or not is unknown (if stored, it runs)",
                        task.name,
                        task.id,
                        tasks._label,
                        extra={"task": task.name, "task_id": task.id, "outcome": "unknown"},
                    )
                tasks._durable = []
                raise
            logger.error(  # noqa: TRY400 - the traceback is passed explicitly (exc_info)
                "could not store %d durable task(s) of %s (%s: %s); answering 503",
                len(new),
                tasks._label,
                type(error).__name__,
                error,
                exc_info=error,
            )
            tasks._durable = None
            self._background._discard(tasks, "its durable tasks could not be stored (503 sent)")
            from .._responses import JSONResponse

            return JSONResponse(
                {"detail": "the work could not be stored; try again shortly"},
                status_code=503,
                headers={"retry-after": "1"},
            )
        # Stored: nothing of it is pending any more (a failed send must not call it discarded).
        tasks._durable = []
        tasks._after_response = start
        return response

    def _wake(self) -> None:
        worker = self._worker
        if worker is not None:
            worker.wake()

    @property
    def worker(self) -> Worker | None:
        """The worker the app's lifespan runs, while it runs."""
        return self._worker

    def make_worker(self, **options: Any) -> Worker:
        """A worker for this app's tasks, with this object's settings unless overridden."""
        settings: dict[str, Any] = {
            "concurrency": self.concurrency,
            "lease": self.lease,
            "poll_interval": self.poll_interval,
            "retention": self.retention,
            "thread_limiter": self._background.thread_limiter,
            "exit_grace": self._background.drain_timeout,
            **options,
        }
        return Worker(self.store, self.registry, **settings)

    async def _serve_until(self, receive: Receive) -> Mapping[str, Any]:
        """Run a worker until the lifespan's shutdown message, which is returned.

        Without declared durable tasks (or with ``run_worker`` off) this is just ``receive``.
        """
        if not self.registry or not self.run_worker:
            return await receive()
        worker = self._worker = self.make_worker()  # a wake before it starts is not lost
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            try:
                message = await receive()
            except BaseException:
                self._worker = None
                with trio.CancelScope(shield=True):
                    await worker.stop()  # cancelled: release what runs, at once
                raise
            self._worker = None
            await worker.stop(self._background.begin_drain())
        return message
