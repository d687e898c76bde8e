"""What only the PostgreSQL store has to show, beyond the shared contract suite
(``test_task_store.py`` runs that suite against it too): many processes' workers claiming at
once, wake-ups across processes through ``LISTEN/NOTIFY``, the URL, and a server that is away.

Every test uses a real PostgreSQL server started by the tests themselves (``_postgres.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from _durable_support import FakeClock, new_task
from _postgres import shared_server

from triobg import App
from triobg._durable._postgres import PostgresTaskStore
from triobg._durable._sqlite import store_from_url
from triobg._durable._status import TaskStatus
from triobg._durable._worker import Worker

WAIT = 10


@asynccontextmanager
async def stores(
    count: int, url: str | None = None, **options: Any
) -> AsyncIterator[list[PostgresTaskStore]]:
    """``count`` stores on one database, each with its own connections, as separate processes
    would have; all closed on the way out."""
    url = url or shared_server().new_database()
    opened = [PostgresTaskStore(url, **options) for _ in range(count)]
    try:
        yield opened
    finally:
        for store in opened:
            await store.aclose()


class TestManyWorkers:
    async def test_concurrent_claims_hand_out_each_task_once(self) -> None:
        """Four stores claim in parallel until the queue is empty: every task exactly once.

        ``FOR UPDATE SKIP LOCKED``: a claimer never waits for rows another one is taking, and
        never takes them too.
        """
        clock = FakeClock()
        async with stores(4) as (first, *others):
            await first.enqueue([new_task(f"t{n}", clock) for n in range(300)])
            claimed: dict[str, list[str]] = {}

            async def claimer(store: PostgresTaskStore, owner: str) -> None:
                while records := await store.claim(owner, 7, lease=60):
                    for record in records:
                        claimed.setdefault(record.id, []).append(owner)

            with trio.fail_after(WAIT * 3):
                async with trio.open_nursery() as nursery:
                    for n, store in enumerate([first, *others]):
                        nursery.start_soon(claimer, store, f"host:{n}")
        assert sorted(claimed) == sorted(f"t{n}" for n in range(300))
        assert all(len(owners) == 1 for owners in claimed.values())
        assert len({owners[0] for owners in claimed.values()}) > 1  # really shared out

    async def test_the_same_key_from_two_processes_stores_one_task(self) -> None:
        """Two stores enqueue one idempotency key at the same moment: one task, both see it."""
        clock = FakeClock()
        async with stores(2) as (a, b):
            results: list[str] = []

            async def enqueue(store: PostgresTaskStore, task_id: str) -> None:
                (record,) = await store.enqueue([new_task(task_id, clock, key="k")])
                results.append(record.id)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(enqueue, a, "from-a")
                nursery.start_soon(enqueue, b, "from-b")
            assert len(set(results)) == 1
            assert len(await a.list()) == 1

    async def test_stores_creating_the_table_at_once_all_succeed(self) -> None:
        """First use by several processes at the same time: the schema is created once."""
        clock = FakeClock()
        async with stores(4) as opened, trio.open_nursery() as nursery:
            for n, store in enumerate(opened):
                nursery.start_soon(store.enqueue, [new_task(f"t{n}", clock)])
        async with stores(1, opened[0].url) as (store,):
            assert len(await store.list()) == 4


class TestWakeUps:
    async def test_an_enqueue_elsewhere_wakes_a_watcher(self) -> None:
        """``watch`` hears another process's enqueue through ``LISTEN/NOTIFY``."""
        clock = FakeClock()
        async with stores(2) as (listener, other):
            connected, woken = trio.Event(), trio.Event()

            def wake() -> None:
                # The first call comes when the listener has connected; the next, from NOTIFY.
                (woken if connected.is_set() else connected).set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(listener.watch, wake)
                with trio.fail_after(WAIT):
                    await connected.wait()
                    await other.enqueue([new_task("t1", clock)])
                    await woken.wait()
                nursery.cancel_scope.cancel()

    async def test_a_worker_starts_another_process_task_without_polling(self) -> None:
        """A worker polling once a minute still runs a task stored elsewhere within seconds."""
        app = App()
        done = trio.Event()

        @app.task(name="job")
        async def job() -> str:
            done.set()
            return "ok"

        async with stores(2) as (mine, theirs):
            worker = Worker(mine, app.tasks.registry, poll_interval=60, recover_interval=60)
            async with trio.open_nursery() as nursery:
                await nursery.start(worker.run)
                with trio.fail_after(WAIT):
                    # The listener connects first: the enqueue must be *heard*, not polled.
                    await until(lambda: _listening(mine))
                    await theirs.enqueue([job._new((), {})])
                    await done.wait()
                    await until(lambda: _succeeded(theirs))
                with trio.fail_after(WAIT):
                    await worker.stop()


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait for a state of the database (callers bound the wait with ``fail_after``)."""
    while True:
        if await condition():
            return
        await trio.sleep(0.01)


async def _succeeded(store: PostgresTaskStore) -> bool:
    return (await store.list())[0].status is TaskStatus.SUCCEEDED


async def _listening(store: PostgresTaskStore) -> bool:
    def read(db: Any) -> bool:
        row = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN triobg_tasks'"
        ).fetchone()
        return bool(row[0])

    return await store._read(read)


class TestSchemaAndFailures:
    async def test_the_schema_is_versioned_and_migrating_again_changes_nothing(self) -> None:
        """``migrate`` creates the tables once, records version 1, and is safe to repeat."""
        async with stores(2) as (a, b):
            assert await a.migrate() == 1
            assert await b.migrate() == 1
            rows = await a._read(
                lambda db: db.execute("SELECT version FROM triobg_schema").fetchall()
            )
            assert rows == [(1,)]

    async def test_a_restarted_server_is_reconnected_without_failing_an_operation(self) -> None:
        """After a restart every pooled connection is dead; the next operations still work."""
        clock = FakeClock()
        async with stores(1) as (store,):
            await store.enqueue([new_task("t1", clock)])
            await trio.to_thread.run_sync(shared_server().restart)
            await store.enqueue([new_task("t2", clock)])
            assert {record.id for record in await store.list()} == {"t1", "t2"}
            (claimed,) = await store.claim("host:1", 1, lease=60)
            assert await store.succeed(claimed.id, "host:1", "null")


class TestConfiguration:
    def test_a_postgresql_url_selects_the_store(self) -> None:
        """``task_store="postgresql://..."`` (or ``postgres://``) is this store; no I/O yet."""
        for url in ("postgresql://u:secret@db.example:5432/app", "postgres://u@db/app"):
            store = store_from_url(url)
            assert isinstance(store, PostgresTaskStore)
            assert store.url == url
        assert "secret" not in repr(store_from_url("postgresql://u:secret@db.example/app"))

    async def test_an_unreachable_server_fails_the_write_quickly(self) -> None:
        """Nothing listens there: the enqueue raises (a request would get its 503) in time."""
        store = PostgresTaskStore("postgresql://postgres@127.0.0.1:9/none", connect_timeout=1)
        clock = FakeClock()
        try:
            with trio.fail_after(WAIT), pytest.raises(ConnectionError, match="cannot connect"):
                await store.enqueue([new_task("t1", clock)])
        finally:
            await store.aclose()

    def test_the_driver_missing_is_said_plainly(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without psycopg, building the store says which extra to install."""
        import builtins

        real_import: Callable[..., Any] = builtins.__import__

        def no_psycopg(name: str, *args: Any, **kwargs: Any) -> Any:
            if name.startswith("psycopg"):
                raise ImportError(name)
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", no_psycopg)
        with pytest.raises(ImportError, match=r"triobg\[postgres\]"):
            PostgresTaskStore("postgresql://u@db/app")
