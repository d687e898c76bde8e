# The background-task work every benchmark app does, whatever the framework around it.
#
# Each app module (bare, triobg, Starlette, FastAPI, Quart-Trio) takes its two task functions --
# the seed's ``write_log`` (added by the dependency when ``q`` is given) and ``write_notification``
# (added by the handler) -- from ``task_set(kind)``, so all apps do exactly the same work and only
# the framework differs. Every task reports to one process-wide ``COMPLETED`` counter, which the
# benchmarks read (directly in-process, over HTTP through ``GET /count``) to prove no task was lost.
from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

#: Kinds measured for throughput: async no-op, ``def`` no-op, the seed's file append (``def``).
MEASURED_KINDS = ("async", "def", "file")
#: In-process also measures ``none``: the seed endpoint (dependency reading ``q``, JSON reply)
#: adding no task, which is the core toolkit's own benchmark (issue 2).
INPROCESS_KINDS = ("none", *MEASURED_KINDS)
#: All kinds. ``none`` adds no task; ``sleep`` tasks take 0.5 s (latency test); ``block`` tasks wait
#: on ``GATE`` so they stay pending for as long as the scale test wants.
KINDS = (*MEASURED_KINDS, "none", "sleep", "block")
#: Seconds a ``sleep`` task takes.
SLEEP_SECONDS = 0.5
#: Environment variables through which hypercorn-served apps learn their kind and log directory.
KIND_ENV = "BENCH_TASK_KIND"
LOG_DIR_ENV = "BENCH_LOG_DIR"


@attrs.define
class CompletionCounter:
    """Counts finished tasks, from the event loop and from worker threads alike.

    ``def`` tasks finish in worker threads, where ``+= 1`` on a shared int can lose updates, so
    the increment takes a lock; the lock costs every app the same.
    """

    _value: int = 0
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def add(self) -> None:
        """Record one finished task."""
        with self._lock:
            self._value += 1

    @property
    def value(self) -> int:
        """Tasks finished so far in this process."""
        return self._value


@attrs.define
class Gate:
    """A resettable trio.Event that ``block`` tasks wait on.

    A trio.Event cannot be cleared, and one event cannot be reused across ``trio.run`` calls, so
    the scale test calls ``reset`` before each level and ``open`` to release every pending task.
    """

    _event: trio.Event = attrs.field(factory=trio.Event)

    def reset(self) -> None:
        """Make later ``wait`` calls block until the next ``open``."""
        self._event = trio.Event()

    def open(self) -> None:
        """Release every task waiting now."""
        self._event.set()

    async def wait(self) -> None:
        """Block until ``open`` is called."""
        await self._event.wait()


COMPLETED = CompletionCounter()
GATE = Gate()


@attrs.frozen
class TaskSet:
    """The two task functions of the seed endpoint, for one kind.

    Attributes:
        enabled: False for kind ``none``: the app then adds no task at all.
        write_notification: Added by the handler, called as ``(email, message=...)``.
        write_log: Added by the dependency when ``q`` is given, called as ``(message)``.
    """

    enabled: bool
    write_notification: Callable[..., Any]
    write_log: Callable[..., Any]


def task_set(kind: str, log_dir: str | None = None) -> TaskSet:
    """Return the task functions of ``kind``.

    Plain closures rather than ``functools.partial`` objects: every framework recognises them
    as ``async def`` or ``def`` the same way, so no app is pushed onto a slower path by accident.

    Args:
        kind: One of ``KINDS``.
        log_dir: Where the ``file`` kind appends ``log.txt``; a fresh temporary directory if None.

    Raises:
        ValueError: For an unknown kind.
    """
    count = COMPLETED.add
    if kind in ("async", "none"):

        async def async_notification(email: str, message: str = "") -> None:
            count()

        async def async_log(message: str) -> None:
            count()

        return TaskSet(kind == "async", async_notification, async_log)
    if kind == "def":

        def def_notification(email: str, message: str = "") -> None:
            count()

        def def_log(message: str) -> None:
            count()

        return TaskSet(True, def_notification, def_log)
    if kind == "file":
        log_path = Path(log_dir or tempfile.mkdtemp(prefix="triobg-bench-")) / "log.txt"

        # The seed's tasks, verbatim apart from the counter.
        def write_notification(email: str, message: str = "") -> None:
            with open(log_path, mode="a") as email_file:
                email_file.write(f"notification for {email}: {message}\n")
            count()

        def write_log(message: str) -> None:
            with open(log_path, mode="a") as log:
                log.write(message + "\n")
            count()

        return TaskSet(True, write_notification, write_log)
    if kind == "sleep":

        async def sleep_notification(email: str, message: str = "") -> None:
            await trio.sleep(SLEEP_SECONDS)
            count()

        async def sleep_log(message: str) -> None:
            await trio.sleep(SLEEP_SECONDS)
            count()

        return TaskSet(True, sleep_notification, sleep_log)
    if kind == "block":

        async def block_notification(email: str, message: str = "") -> None:
            await GATE.wait()
            count()

        async def block_log(message: str) -> None:
            await GATE.wait()
            count()

        return TaskSet(True, block_notification, block_log)
    raise ValueError(f"unknown task kind {kind!r}; expected one of {KINDS}")


def kind_from_env() -> str:
    """The task kind for a module-level ``app`` (hypercorn imports modules, it cannot pass args)."""
    return os.environ.get(KIND_ENV, "async")


def log_dir_from_env() -> str | None:
    """The ``file`` kind's log directory for a module-level ``app``."""
    return os.environ.get(LOG_DIR_ENV)
