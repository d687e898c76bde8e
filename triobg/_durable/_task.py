# ``@app.task``: a function declared durable, and ``TaskResult``, what anyone can ask of it.
#
# Where it sits: a ``DurableTask`` wraps the user's function. ``add_task`` (``_background.py``)
# hands it here to turn the call into a ``NewTask`` (arguments encoded now, id chosen now) that
# the pipeline stores before the response; ``enqueue`` stores one from anywhere in a trio
# program. The worker (``_worker.py``) finds the function again by the task's registered name.
from __future__ import annotations

import datetime
import inspect
import json
import typing
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar, final

import attrs

from .._uploads import UploadFile
from ._codec import Parameters, decode_arguments, encode_call, type_hints
from ._files import files_dir, hand_over
from ._ids import new_task_id
from ._status import TaskStatus
from ._store import NewTask, TaskError, TaskRecord

if typing.TYPE_CHECKING:
    from ._tasks import DurableTasks

P = ParamSpec("P")
R = TypeVar("R")

#: A delay in seconds or as a ``timedelta``, or a moment (an aware ``datetime``).
RunAfter = float | datetime.timedelta | datetime.datetime


def _moment(value: float | None) -> datetime.datetime | None:
    return None if value is None else datetime.datetime.fromtimestamp(value, datetime.UTC)


@attrs.frozen(kw_only=True)
class TaskResult:
    """What is known about one durable task: its status, attempts, result and errors.

    ``add_task`` returns one at once (status READY, nothing run yet); ``app.tasks.get(id)``
    returns the current one.

    Attributes:
        id: The task's id: keep it to ask again later (e.g. ``GET /tasks/{id}``).
        name: The registered task name.
        status: See ``TaskStatus``.
        attempts: Attempts started so far (counted when the attempt is claimed).
        enqueued_at: When it was added (UTC).
        started_at: When its latest attempt started (UTC), if any has: when it was claimed
            (a request's task that this process's worker has room for is stored claimed, so
            at its commit; it runs once the tasks the request added before it are done).
        finished_at: When it finished (UTC), if it has.
        return_value: The return value as JSON data (``None`` until it succeeds).
        errors: One ``TaskError`` per failed attempt (type, message, traceback text).
    """

    id: str
    name: str
    status: TaskStatus
    attempts: int
    enqueued_at: datetime.datetime
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    return_value: Any = None
    errors: tuple[TaskError, ...] = ()

    @classmethod
    def _from_record(cls, record: TaskRecord) -> TaskResult:
        return cls(
            id=record.id,
            name=record.name,
            status=record.status,
            attempts=record.attempts,
            enqueued_at=datetime.datetime.fromtimestamp(record.enqueued_at, datetime.UTC),
            started_at=_moment(record.started_at),
            finished_at=_moment(record.finished_at),
            return_value=None if record.result is None else json.loads(record.result),
            errors=record.errors,
        )


@final
class DurableTask(Generic[P, R]):
    """A function declared with ``@app.task``: stored before the response, retried, recovered.

    Calling it still just calls the function. Pass it to ``BackgroundTasks.add_task`` (which
    then returns a ``TaskResult``) or ``await task.enqueue(...)`` to run it durably.

    Attributes:
        func: The function.
        name: Its registered name: what the store records, and how a worker (maybe another
            process, after a restart) finds the function again. Keep it stable.
        retries: Further attempts after a failed one (exponential backoff with jitter).
        timeout: Seconds per attempt, or ``None``.
    """

    __slots__ = (
        "__name__",
        "__qualname__",
        "_hints",
        "_parameters",
        "_priority",
        "_run_after",
        "_tasks",
        "func",
        "is_async",
        "key",
        "name",
        "retries",
        "timeout",
    )

    def __init__(
        self,
        func: Callable[P, R],
        *,
        tasks: DurableTasks,
        name: str,
        retries: int = 0,
        timeout: float | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be a number of seconds > 0, or None")
        self.func = func
        self.name = name
        self.retries = retries
        self.timeout = timeout
        self.is_async = inspect.iscoroutinefunction(func)
        self.key: str | None = None
        self.__name__ = getattr(func, "__name__", name)
        self.__qualname__ = getattr(func, "__qualname__", name)
        self._tasks = tasks
        self._parameters = Parameters.of(func)
        self._hints: dict[str, Any] | None = None  # resolved at the first run (forward refs)
        self._run_after: RunAfter | None = None
        self._priority = 0

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<DurableTask {self.name}>"

    def using(
        self,
        *,
        run_after: RunAfter | None = None,
        key: str | None = None,
        priority: int | None = None,
    ) -> DurableTask[P, R]:
        """A copy with a delay, an idempotency key or a priority (the others kept).

        Args:
            run_after: Not started before this delay (seconds or ``timedelta``) or moment
                (an aware ``datetime``).
            key: While a task with this key is unfinished, adding another returns the first.
            priority: Higher runs first among tasks ready at the same time (default 0).
        """
        # Everything worked out at declaration (the signature, the hints once resolved) is
        # shared, not worked out again: ``using`` may run in every request.
        copy: DurableTask[P, R] = DurableTask.__new__(DurableTask)
        for slot in DurableTask.__slots__:
            setattr(copy, slot, getattr(self, slot))
        copy._run_after = self._run_after if run_after is None else run_after
        copy.key = self.key if key is None else key
        copy._priority = self._priority if priority is None else priority
        return copy

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskResult:
        """Store the task now (not tied to a request) and wake this process's worker.

        Returns:
            The stored task; with an idempotency key already held, the task holding it.

        Raises:
            TypeError: an argument cannot be stored as JSON (the message names it).
        """
        return await self._tasks._enqueue([self._new(args, kwargs)])

    def _type_hints(self) -> dict[str, Any]:
        hints = self._hints
        if hints is None:  # resolved at the first use, not at declaration (forward refs)
            hints = self._hints = type_hints(self.func)
        return hints

    def _decode(self, text: str) -> tuple[list[Any], dict[str, Any]]:
        """The stored arguments, structured back by the function's type hints."""
        return decode_arguments(self._type_hints(), self._parameters, text)

    def _new(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> NewTask:
        task_id = new_task_id()

        def hand_over_uploads() -> None:  # into the task file area now, before it is stored
            uploads = [v for v in (*args, *kwargs.values()) if isinstance(v, UploadFile)]
            if uploads:
                hand_over(uploads, files_dir(self._tasks.store), task_id)

        arguments, call = encode_call(
            self.name, self._parameters, self._type_hints(), args, kwargs, hand_over_uploads
        )
        now = self._tasks.clock()
        return NewTask(
            id=task_id,
            name=self.name,
            arguments=arguments,
            enqueued_at=now,
            run_after=_run_after(self._run_after, now),
            priority=self._priority,
            key=self.key,
            max_attempts=self.retries + 1,
            call=call,
        )


def _run_after(value: RunAfter | None, now: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("run_after needs an aware datetime (with a tzinfo)")
        return value.timestamp()
    if isinstance(value, datetime.timedelta):
        return now + value.total_seconds()
    return now + float(value)


def new_result(task: NewTask) -> TaskResult:
    """The ``TaskResult`` of a task not stored yet (what ``add_task`` returns)."""
    return TaskResult(
        id=task.id,
        name=task.name,
        status=TaskStatus.READY,
        attempts=0,
        enqueued_at=datetime.datetime.fromtimestamp(task.enqueued_at, datetime.UTC),
    )
