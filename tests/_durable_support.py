"""Shared pieces of the durable-task tests: a fake wall clock and the stores under contract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from _postgres import shared_server

from triobg._durable._memory import MemoryTaskStore
from triobg._durable._postgres import PostgresTaskStore
from triobg._durable._sqlite import SQLiteTaskStore
from triobg._durable._store import NewTask, TaskStore


class FakeClock:
    """Wall-clock seconds that only move when a test says so."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


#: Every store that must pass ``tests/test_task_store.py``, by name. A new store (PostgreSQL)
#: adds one line here and nothing else.
STORE_FACTORIES: dict[str, Callable[[Path, FakeClock], TaskStore]] = {
    "memory": lambda directory, clock: MemoryTaskStore(clock=clock),
    "sqlite": lambda directory, clock: SQLiteTaskStore(directory / "tasks.sqlite3", clock=clock),
    "postgres": lambda directory, clock: PostgresTaskStore(
        shared_server().new_database(), clock=clock
    ),
}


def new_task(
    task_id: str,
    clock: FakeClock,
    *,
    name: str = "tests.job",
    priority: int = 0,
    run_after: float | None = None,
    key: str | None = None,
    max_attempts: int = 1,
    arguments: str = "{}",
) -> NewTask:
    return NewTask(
        id=task_id,
        name=name,
        arguments=arguments,
        enqueued_at=clock(),
        run_after=run_after,
        priority=priority,
        key=key,
        max_attempts=max_attempts,
    )
