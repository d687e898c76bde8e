# Background tasks: collected while a request is handled, run after its response is flushed.
#
# Where this sits in the flow (see ``_pipeline.py``): the pipeline creates one
# ``BackgroundTasks`` per request and injects that same object wherever a handler, dependency or
# sub-dependency declares one. Once the final response body has been handed to the server, the
# pipeline awaits ``BackgroundRunner.run`` in the task that served the request. That task is a
# child of the server's per-connection nursery (hypercorn) or of the test client's nursery, so
# every background task has an owner that outlives it; nothing is spawned detached.
#
# ``BackgroundRunner`` is one per app. It keeps the books (accepted = queued + running +
# completed + failed + cancelled + discarded), caps how many tasks run at once, and on shutdown
# gives every running and queued task the drain deadline, naming in the log each task that is
# cancelled or never started.
from __future__ import annotations

import functools
import inspect
import logging
import threading
import types
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, NoReturn, ParamSpec, final

import attrs
import trio

from ._durable._store import NewTask
from ._durable._task import DurableTask, TaskResult, new_result
from ._exceptions import HTTPException
from ._exit_wait import wait_at_exit

logger = logging.getLogger("triobg.background")

P = ParamSpec("P")


def is_async_callable(func: Any) -> bool:
    """Whether calling ``func`` returns an awaitable: coroutine functions, partials of them, and
    objects whose ``__call__`` is a coroutine function."""
    if type(func) is types.FunctionType:  # the common case, checked without inspect's layers
        return bool(func.__code__.co_flags & inspect.CO_COROUTINE)
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - we need the method itself
    return call is not None and not inspect.isfunction(func) and inspect.iscoroutinefunction(call)


def callable_name(func: Any) -> str:
    """A name for logs that a person can find in their code: ``module.qualname``."""
    while isinstance(func, functools.partial):
        func = func.func
    name = getattr(func, "__qualname__", None) or type(func).__qualname__
    module = getattr(func, "__module__", None) or type(func).__module__
    return f"{module}.{name}" if module and module != "builtins" else name


#: How a request's tasks are stored: ``(func, args, kwargs, is_async)``. A plain tuple,
#: because one is built per ``add_task`` on the request's hot path and CPython builds nothing
#: cheaper (a slotted class or a named tuple costs two to three times as many instructions).
_Task = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], bool]


@final
class BackgroundTask:
    """One ``add_task`` call, as ``BackgroundTasks.tasks`` shows it.

    Attributes:
        func: What ``add_task`` was given.
        args: Its positional arguments.
        kwargs: Its keyword arguments.
        is_async: Whether it is awaited in the event loop (else it runs in a worker thread).
    """

    __slots__ = ("args", "func", "is_async", "kwargs")

    def __init__(
        self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.is_async = is_async_callable(func)

    @property
    def name(self) -> str:
        """``module.qualname`` of the function, for logs."""
        return callable_name(self.func)

    def __repr__(self) -> str:
        return f"<BackgroundTask {self.name}>"


@attrs.frozen
class BackgroundStatistics:
    """A snapshot of an app's background tasks.

    ``accepted == queued + running + completed + failed + cancelled + discarded`` always holds:
    every task that was accepted is accounted for in exactly one of the other columns.

    Attributes:
        accepted: Tasks accepted by ``add_task`` (or merged from a response's ``background``).
        queued: Accepted, not started: their response is not sent yet, or they wait their turn.
        running: Started and not finished (a ``def`` task counts from when its thread picks it up).
        completed: Returned normally.
        failed: Raised an exception (logged, reported to ``on_task_error``).
        cancelled: Cut off by the drain deadline or an enclosing cancellation, whether they had
            started or not; each one is named in the log.
        discarded: Never run because the request ended in an error before its response.
        rejected: ``add_task`` calls refused because the queue was full (not in ``accepted``).
        live_requests: Requests whose tasks are running or waiting to run right now.
    """

    accepted: int
    queued: int
    running: int
    completed: int
    failed: int
    cancelled: int
    discarded: int
    rejected: int
    live_requests: int


@attrs.frozen
class TaskFailure:
    """What ``App(on_task_error=...)`` receives when a background task raises."""

    task: str
    exception: BaseException
    method: str
    path: str


class BackgroundTasksFull(HTTPException):
    """``add_task`` refused: the app already has ``max_queued_tasks`` tasks waiting.

    Raised from ``add_task`` inside the handler, so the client gets a 503 with ``Retry-After``
    instead of a success whose side effects will never happen.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            503,
            f"too many background tasks waiting ({limit}); try again shortly",
            headers={"retry-after": "1"},
        )


#: Default ``max_queued_tasks``. A waiting task is cheap, but the request it belongs to is not:
#: until its tasks have run, a request keeps its trio task, its hypercorn stream, receive
#: channel and scope, and triobg's request state. Measured with hypercorn 0.18 on CPython 3.11
#: (requests with one task each, parked behind ``max_running_tasks``): about 8.2 KB per request
#: by ``tracemalloc``, 8.5 KB by RSS. One task per request is the worst case per task, so the
#: queue costs at most about 8192 x 8.5 KB = 70 MB (65,536 allowed about 560 MB) before
#: ``add_task`` answers 503; a burst of 8,192 waiting requests on top of the running ones is
#: ample for a process whose tasks keep up at all.
DEFAULT_MAX_QUEUED_TASKS: Final = 8192

_get_ident: Final = threading.get_ident
_FUNCTION: Final = types.FunctionType
_CO_COROUTINE: Final = inspect.CO_COROUTINE


@final
class BackgroundTasks:
    """The tasks one request will run after its response has been sent.

    Declare a parameter annotated ``BackgroundTasks`` in a path operation, a dependency or a
    sub-dependency: triobg passes the same object to all of them, so tasks from every level run
    in the order they were added. ``async def`` tasks run in the event loop; plain ``def`` tasks
    run in a worker thread (consecutive ``def`` tasks share one thread hop). A ``def`` task that
    returns an awaitable (``lambda: send(...)``) has that awaitable awaited in the event loop as
    the rest of the task.

    Whatever a task raises makes it a *failed* task (logged with its request, reported to
    ``on_task_error``; the next task still runs), ``SystemExit`` and ``KeyboardInterrupt``
    included, in both kinds of task. Only trio's cancellation and a real Ctrl-C delivered by
    trio's SIGINT handler propagate.

    You can also build one yourself and pass it as ``Response(background=...)``; its tasks are
    then run after the injected object's tasks.
    """

    __slots__ = ("_after_response", "_closed", "_durable", "_next", "_runner", "_scope", "_tasks")

    def __init__(self) -> None:
        self._tasks: list[_Task] = []
        self._next = 0
        self._runner: BackgroundRunner | None = None
        self._scope: Mapping[str, Any] | None = None  # the request's ASGI scope, for log lines
        self._closed = False  # set once the request is over: nothing would run a new task
        self._durable: list[NewTask] | None = None  # stored before the response (_durable/)
        self._after_response: Callable[[], None] | None = None  # starts the stored ones

    @classmethod
    def _for_request(cls, runner: BackgroundRunner, scope: Mapping[str, Any]) -> BackgroundTasks:
        """The object the pipeline creates per request, already accounted to ``runner``."""
        tasks = cls.__new__(cls)
        tasks._tasks = []
        tasks._next = 0
        tasks._runner = runner
        tasks._scope = scope
        tasks._closed = False
        tasks._durable = None
        tasks._after_response = None
        return tasks

    def add_task(
        self, func: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskResult | None:
        """Run ``func(*args, **kwargs)`` after the response has been sent.

        A durable task (``@app.task``) is stored before the response instead, and its
        ``TaskResult`` (id known at once) is returned; see ``triobg/_durable/``.

        Raises:
            BackgroundTasksFull: the app's queue of waiting tasks is full (answered as 503).
            RuntimeError: the request has completely finished; nothing would run the task.
            TypeError: ``func`` is not callable, or a durable task's argument cannot be
                stored as JSON.
        """
        if not callable(func):
            raise TypeError(f"add_task needs a callable, got {type(func).__name__}")
        if self._closed:
            raise RuntimeError(
                f"cannot add {callable_name(func)}: the request {self._label} has finished and "
                "its background tasks have already run"
            )
        if type(func) is _FUNCTION:  # most tasks: skip the call into the general check
            is_async = bool(func.__code__.co_flags & _CO_COROUTINE)
        elif type(func) is DurableTask:
            if self._durable is DURABLE_CLOSED:
                raise RuntimeError(
                    f"cannot add durable task {func.name} to {self._label} after its response "
                    "was sent (it could not be stored before it); use "
                    f"`await {func.__name__}.enqueue(...)` there instead"
                )
            new = func._new(args, kwargs)
            if self._durable is None:
                self._durable = []
            self._durable.append(new)
            return new_result(new)
        else:
            is_async = is_async_callable(func)
        runner = self._runner
        if runner is not None:
            # The queue check and ``runner._accept_unchecked(1)``, written out: this runs for
            # every task of every request.
            limit = runner.max_queued_tasks
            if limit is not None and (
                runner._accepted
                + runner._accepted_in_threads
                - runner._started
                - runner._started_in_threads
                - runner._cut_unstarted
                - runner._discarded
                >= limit
            ):
                runner._reject(limit)
            if _get_ident() == runner._home_thread:
                runner._accepted += 1
            else:
                runner._accept_in_thread(1)
        self._tasks.append((func, args, kwargs, is_async))
        return None

    @property
    def tasks(self) -> tuple[BackgroundTask, ...]:
        """The tasks added so far, in the order they will run."""
        return tuple(BackgroundTask(func, args, kwargs) for func, args, kwargs, _ in self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def __repr__(self) -> str:
        names = ", ".join(callable_name(task[0]) for task in self._tasks)
        return f"<BackgroundTasks [{names}]>"

    @property
    def _label(self) -> str:
        """``METHOD /path`` of the request, for log lines (built only when one is written)."""
        scope = self._scope
        return f"{scope['method']} {scope['path']}" if scope is not None else "(no request)"

    def _pending(self) -> list[_Task]:
        return self._tasks[self._next :]


class BackgroundRunner:
    """Runs, counts, limits and drains the background tasks of one app (``app.background``).

    Args:
        drain_timeout: Seconds that running and queued tasks get once shutdown begins.
        max_running_tasks: Most tasks running at once across the app; others wait their turn.
        max_queued_tasks: Most tasks waiting at once; beyond it ``add_task`` raises
            ``BackgroundTasksFull`` (503). The default, 8192, bounds what waiting requests hold
            to about 70 MB: each one keeps about 8.5 KB (its trio task, hypercorn stream and
            request state; measured, see ``DEFAULT_MAX_QUEUED_TASKS``) until its tasks have
            run, and one task per request is the worst case. Budget about 8.5 KB per task.
        thread_limiter: Bounds the worker threads used by ``def`` tasks (separate from the
            limiter for sync handlers, so slow tasks cannot starve request handling).
        on_task_error: Called with a ``TaskFailure`` when a task raises; may be async.
    """

    def __init__(
        self,
        *,
        drain_timeout: float = 30.0,
        max_running_tasks: int | None = 1024,
        max_queued_tasks: int | None = DEFAULT_MAX_QUEUED_TASKS,
        thread_limiter: trio.CapacityLimiter | None = None,
        on_task_error: Callable[[TaskFailure], Awaitable[None] | None] | None = None,
    ) -> None:
        self.drain_timeout = drain_timeout
        self.max_queued_tasks = max_queued_tasks
        self.on_task_error = on_task_error
        self.max_running_tasks = max_running_tasks
        self.thread_limiter = thread_limiter or trio.CapacityLimiter(40)
        # Every counter only ever grows; ``queued`` and ``running`` are derived from them.
        # Counters written from worker threads (``add_task`` in a sync handler, a ``def`` task
        # being picked up) are separate and guarded by the lock; the others are written by one
        # thread only -- the one that built the app, which is where trio runs it -- so the
        # async path takes no lock at all. (If trio runs elsewhere, its writes simply take the
        # locked path too: correct, a little slower.)
        self._lock = threading.Lock()
        self._home_thread = threading.get_ident()
        self._accepted = 0
        self._accepted_in_threads = 0
        self._rejected = 0
        self._started_in_threads = 0
        self._started = 0
        self._completed = 0
        self._failed = 0
        self._cut_running = 0
        self._cut_unstarted = 0
        self._discarded = 0
        # Running slots: a plain count while below the cap (no scheduler round trip); at the
        # cap, requests park here in arrival order and each release hands its slot over.
        # ``_waiting`` counts the parked (a ParkingLot's own ``len`` is a Python call): a
        # releaser decrements it as it unparks, a waiter cancelled while parked does itself.
        self._slots_used = 0
        self._waiting = 0
        self._slot_waiters = trio.lowlevel.ParkingLot()
        self._live = 0
        self._idle: trio.Event | None = None
        self._drain_deadline: float | None = None
        self._failure_listeners: list[Callable[[TaskFailure], None]] = []
        # Told the deadline when the drain begins (open WebSockets close then, with 1001).
        self._drain_listeners: list[Callable[[float], None]] = []

    # --- accounting ------------------------------------------------------------------------

    def statistics(self) -> BackgroundStatistics:
        """Counts of this app's tasks; see ``BackgroundStatistics`` for what each column means."""
        with self._lock:
            accepted = self._accepted + self._accepted_in_threads
            started = self._started + self._started_in_threads
            queued = self._queued()
            rejected = self._rejected
        return BackgroundStatistics(
            accepted=accepted,
            queued=queued,
            running=started - self._completed - self._failed - self._cut_running,
            completed=self._completed,
            failed=self._failed,
            cancelled=self._cut_running + self._cut_unstarted,
            discarded=self._discarded,
            rejected=rejected,
            live_requests=self._live,
        )

    def _queued(self) -> int:
        accepted = self._accepted + self._accepted_in_threads
        started = self._started + self._started_in_threads
        return accepted - started - self._cut_unstarted - self._discarded

    def _accept_unchecked(self, count: int) -> None:
        # Tasks whose response is already decided (``_merge``): accepted over the queue limit.
        # (``add_task`` checks the limit and counts inline; there the queue is read without the
        # lock, so a sync handler adding tasks in another thread at that moment can push it past
        # the limit by its own few tasks, never by more.)
        if _get_ident() == self._home_thread:
            self._accepted += count
        else:
            self._accept_in_thread(count)

    def _accept_in_thread(self, count: int) -> None:
        # A sync handler or dependency adding tasks from its worker thread.
        with self._lock:
            self._accepted_in_threads += count

    def _reject(self, limit: int) -> NoReturn:
        with self._lock:
            self._rejected += 1
        raise BackgroundTasksFull(limit)

    def _merge(self, into: BackgroundTasks, extra: BackgroundTasks | None) -> None:
        """Append a response's own ``background`` tasks to the request's tasks, accounting them."""
        if extra is None or extra is into:
            return
        if extra._runner is None and extra._tasks:
            self._accept_unchecked(len(extra._tasks))
        into._tasks.extend(extra._tasks)
        extra._tasks = []
        if extra._durable:
            into._durable = [*(into._durable or ()), *extra._durable]
            extra._durable = None

    def _discard(self, tasks: BackgroundTasks, reason: str) -> None:
        """Drop the tasks a failed request added before its response, naming each one."""
        if tasks._durable:
            _discard_durable(tasks, reason)
        dropped = tasks._pending()
        if not dropped:
            return
        tasks._next = len(tasks._tasks)
        self._discarded += len(dropped)
        for func, *_ in dropped:
            name = callable_name(func)
            logger.warning(
                "background task %s of %s discarded, never run: %s",
                name,
                tasks._label,
                reason,
                extra={"task": name, "request": tasks._label, "outcome": "discarded"},
            )

    def _lose(self, tasks: BackgroundTasks) -> None:
        """Name every task of ``tasks`` that will now never start, and count it as cancelled."""
        lost = tasks._pending()
        if not lost:
            return
        tasks._next = len(tasks._tasks)
        self._cut_unstarted += len(lost)
        why = self._why_cancelled()
        for func, *_ in lost:
            name = callable_name(func)
            logger.warning(
                "background task %s of %s cancelled before it started (%s)",
                name,
                tasks._label,
                why,
                extra={"task": name, "request": tasks._label, "outcome": "cancelled"},
            )

    # --- running ---------------------------------------------------------------------------

    async def run(self, tasks: BackgroundTasks) -> None:
        """Run ``tasks`` one after another, in the order they were added; called by the pipeline
        after the response has been flushed, in the task that served the request.

        A failing task is logged and reported, and the next one still runs. Nothing here
        cancels anything: the owner of the calling task (the server's connection nursery, the
        test client) enforces the drain deadline by cancelling it. If that happens, the running
        task and every task not yet started are named in the log before the cancellation
        propagates. (A ``CancelScope`` per request would cost about as much as a whole bare
        request; the owners already have one.)

        This is the hottest loop of the library, hence one flat function: an ``async def``
        task is awaited right here rather than through a helper coroutine per task.
        """
        items = tasks._tasks
        if tasks._next == len(items):
            return
        self._live += 1
        holds_slot = False
        try:
            cap = self.max_running_tasks
            if cap is not None:
                # A request runs its tasks one at a time, so it needs one slot at a time.
                if self._slots_used < cap and not self._waiting:
                    self._slots_used += 1
                else:
                    self._waiting += 1
                    try:
                        await self._slot_waiters.park()  # woken holding a slot handed over
                    except BaseException:
                        self._waiting -= 1  # cancelled while parked: never handed a slot
                        raise
                holds_slot = True
            index = tasks._next  # kept in step with ``tasks._next``, which ``_lose`` reads
            while index < len(items):  # a task may add further tasks; they run too
                func, args, kwargs, is_async = items[index]
                if not is_async:
                    end = index + 1
                    while end < len(items) and not items[end][3]:
                        end += 1
                    await self._run_threaded(items[index:end], tasks)
                    index = tasks._next
                    continue
                index += 1
                tasks._next = index
                self._started += 1
                try:
                    await func(*args, **kwargs)
                except Exception as error:
                    await self._failed_one(func, tasks._label, error)
                except BaseException as error:
                    # ``SystemExit``/``KeyboardInterrupt`` the task raised itself: a failure
                    # like any other (as in a worker thread), not a reason to stop the server.
                    if not _is_task_failure(error):
                        self._cancelled_running(func, tasks._label, self._why_cancelled())
                        raise
                    await self._failed_one(func, tasks._label, error)
                else:
                    self._completed += 1
        finally:
            if holds_slot:
                if self._waiting:
                    self._waiting -= 1
                    self._slot_waiters.unpark()  # hand our slot straight to the next in line
                else:
                    self._slots_used -= 1
            if tasks._next < len(items):
                self._lose(tasks)
            self._live -= 1
            if not self._live and self._idle is not None:
                self._idle.set()
                self._idle = None

    async def _run_threaded(self, group: list[_Task], tasks: BackgroundTasks) -> None:
        # One thread hop for a run of consecutive ``def`` tasks: a round trip to a worker thread
        # costs far more than a small sync task. The thread records each outcome under a lock; if
        # we are cancelled we abandon the thread (it cannot be interrupted), tell it not to start
        # anything further, and read off exactly which tasks had started.
        #
        # A ``def`` task that returns an awaitable (``add_task(lambda: send(...))``, a sync
        # decorator around an ``async def``) has not done its work yet: the thread stops there
        # and hands the awaitable back, and it is awaited here, in the event loop, as the rest
        # of that task; the tasks after it run once it has finished.
        gate = threading.Lock()
        outcomes: list[BaseException | object | None] = []
        stopped = False

        def abandoned() -> bool:  # a call, so that mypy sees the other thread may set it
            return stopped

        done = threading.Event()  # the thread is finished with the group

        def work() -> None:
            try:
                run_group()
            finally:
                done.set()

        def run_group() -> None:
            for func, args, kwargs, _ in group:
                with gate:
                    if stopped:
                        return
                    outcomes.append(_STARTED)
                with self._lock:
                    self._started_in_threads += 1
                try:
                    value = func(*args, **kwargs)
                except BaseException as error:
                    result: BaseException | object | None = error
                else:
                    result = None
                    if value is not None and inspect.isawaitable(value):
                        result = _Returned(value)
                with gate:
                    if isinstance(result, _Returned) and abandoned():
                        result.close()  # already counted as cancelled over there
                    outcomes[-1] = result
                if isinstance(result, _Returned):
                    return

        returned: tuple[Callable[..., Any], _Returned] | None = None
        finished = False
        try:
            await trio.to_thread.run_sync(work, limiter=self.thread_limiter, abandon_on_cancel=True)
            finished = True
        finally:
            with gate:
                stopped = True
                seen = list(outcomes)
            tasks._next += len(seen)
            try:
                for (func, *_), outcome in zip(group, seen, strict=False):
                    if outcome is _STARTED:
                        grace = self._exit_grace()
                        self._cancelled_running(
                            func,
                            tasks._label,
                            f"{self._why_cancelled()}; it was still running in a worker thread, "
                            "which cannot be interrupted: it runs on there, and the process "
                            f"waits up to {grace:.1f} s for it before exiting",
                        )
                        label = f"background task {callable_name(func)} of {tasks._label}"
                        wait_at_exit(label, done, grace)
                    elif outcome is None:
                        self._completed += 1
                    elif isinstance(outcome, _Returned):
                        if finished:
                            returned = (func, outcome)  # always the last one the thread ran
                        else:  # cancelled just as the thread handed it over: it never runs
                            outcome.close()
                            self._cancelled_running(func, tasks._label, self._why_cancelled())
                    else:
                        assert isinstance(outcome, BaseException)
                        await self._failed_one(func, tasks._label, outcome)
            except BaseException:
                # Cancelled while settling the outcomes (in ``on_task_error``): a returned
                # awaitable, always the last outcome, will never run now.
                last = seen[-1] if seen else None
                if isinstance(last, _Returned) and not last.closed:
                    last.close()
                    func = group[len(seen) - 1][0]
                    self._cancelled_running(func, tasks._label, self._why_cancelled())
                raise
        if returned is not None:
            await self._await_returned(*returned, tasks._label)

    async def _await_returned(self, func: Callable[..., Any], value: _Returned, label: str) -> None:
        # The awaitable a ``def`` task returned, awaited as the rest of that task.
        try:
            await value.awaitable
        except BaseException as error:
            if not _is_task_failure(error):
                self._cancelled_running(func, label, self._why_cancelled())
                raise
            await self._failed_one(func, label, error)
        else:
            self._completed += 1

    def _cancelled_running(self, func: Callable[..., Any], label: str, why: str) -> None:
        self._cut_running += 1
        name = callable_name(func)
        logger.warning(
            "background task %s of %s cancelled while running (%s)",
            name,
            label,
            why,
            extra={"task": name, "request": label, "outcome": "cancelled"},
        )

    async def _failed_one(self, func: Callable[..., Any], label: str, error: BaseException) -> None:
        self._failed += 1
        name = callable_name(func)
        logger.error(
            "background task %s of %s failed",
            name,
            label,
            exc_info=error,
            extra={"task": name, "request": label, "outcome": "failed"},
        )
        method, _, path = label.partition(" ")
        failure = TaskFailure(name, error, method, path)
        for listener in self._failure_listeners:
            listener(failure)
        if self.on_task_error is None:
            return
        try:
            result = self.on_task_error(failure)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("on_task_error raised while reporting %s", name)

    # --- shutdown --------------------------------------------------------------------------

    def begin_drain(self, timeout: float | None = None) -> float:
        """Start the shutdown clock: tasks have ``timeout`` seconds (default ``drain_timeout``).

        The owners of the request tasks (``triobg.serve`` through hypercorn's graceful timeout,
        ``TestClient`` itself) cancel whatever still runs at the returned deadline (trio time);
        from then on each task cut off is logged as lost to the drain deadline.
        """
        deadline = trio.current_time() + (self.drain_timeout if timeout is None else timeout)
        if self._drain_deadline is not None:
            deadline = min(deadline, self._drain_deadline)
        self._drain_deadline = deadline
        for listener in self._drain_listeners:
            listener(deadline)
        return deadline

    @property
    def drain_deadline(self) -> float | None:
        """The deadline set by ``begin_drain`` (trio time), or ``None`` before shutdown."""
        return self._drain_deadline

    async def wait_idle(self) -> None:
        """Return once no request is running or waiting to run background tasks."""
        while self._live:
            if self._idle is None:
                self._idle = trio.Event()
            await self._idle.wait()

    async def drain(self, timeout: float | None = None) -> BackgroundStatistics:
        """Begin the drain and wait until every task has finished, or the deadline passes.

        Returns at the deadline even if requests are still running tasks (it cannot cancel
        tasks it does not own); their owners cancel them and each lost task is named.
        """
        deadline = self.begin_drain(timeout)
        with trio.move_on_at(deadline):
            await self.wait_idle()
        stats = self.statistics()
        logger.info(
            "background drain finished: %d completed, %d failed, %d cancelled, %d discarded, "
            "%d requests still running tasks",
            stats.completed,
            stats.failed,
            stats.cancelled,
            stats.discarded,
            stats.live_requests,
        )
        return stats

    def _reset_drain(self) -> None:
        self._drain_deadline = None

    def _exit_grace(self) -> float:
        """Seconds a ``def`` task cut off now may still take in its thread before the process
        exits (``_exit_wait.py``): one more ``drain_timeout``, whatever cut it off (a server's
        graceful timeout may end the requests long before the app's drain would)."""
        return self.drain_timeout

    def _why_cancelled(self) -> str:
        deadline = self._drain_deadline
        if deadline is not None and trio.current_time() >= deadline:
            return "the shutdown drain deadline passed"
        if deadline is not None:
            return "its owner was cancelled during the shutdown drain, before the deadline"
        return "the request's task was cancelled (server shutdown or an enclosing nursery)"


_STARTED: Final = object()


@final
class _Returned:
    """What a ``def`` task returned when that was an awaitable: its work still to be done."""

    __slots__ = ("awaitable", "closed")

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        self.awaitable = awaitable
        self.closed = False

    def close(self) -> None:
        """Close it unawaited (a coroutine would warn "never awaited" otherwise)."""
        self.closed = True
        close = getattr(self.awaitable, "close", None)
        if close is not None:
            close()


def _is_task_failure(error: BaseException) -> bool:
    """Whether ``error``, raised out of a task, is the task's own failure rather than a stop.

    One rule for both kinds of task: whatever a task raises is a failed task (logged with its
    request, reported to ``on_task_error``, the next task runs), ``SystemExit`` and
    ``KeyboardInterrupt`` included. In a worker thread that holds by construction; in the event
    loop it needs saying, because a background task is not the program's main line: a
    ``sys.exit()`` in a helper reused as a task must not take every other request's tasks down
    with it. Two things are not the task's: trio's ``Cancelled`` (the drain deadline, the
    server's shutdown), and a ``KeyboardInterrupt`` that trio's default SIGINT handler raised
    for a real Ctrl-C in whatever code was running at that moment (its innermost frame is the
    handler in ``trio._core._ki``): those keep propagating. A group counts as a failure when
    every exception in it does.
    """
    if isinstance(error, BaseExceptionGroup):
        return all(_is_task_failure(inner) for inner in error.exceptions)
    if isinstance(error, trio.Cancelled):
        return False
    if isinstance(error, KeyboardInterrupt):
        return not _raised_by_trio_sigint(error)
    return True


def _raised_by_trio_sigint(error: BaseException) -> bool:
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return bool(tb.tb_frame.f_globals.get("__name__") == "trio._core._ki")


#: ``BackgroundTasks._durable`` once the request's response is sent (or abandoned): a durable
#: task can no longer be stored before it, so ``add_task`` refuses one from then on.
DURABLE_CLOSED: Final[list[NewTask]] = []


def _discard_durable(tasks: BackgroundTasks, reason: str) -> None:
    """Durable tasks of a request that failed before its response: never stored, named."""
    for new in tasks._durable or ():
        logger.warning(
            "durable task %s (id %s) of %s discarded, never stored: %s",
            new.name,
            new.id,
            tasks._label,
            reason,
            extra={"task": new.name, "task_id": new.id, "outcome": "discarded"},
        )
    tasks._durable = None
