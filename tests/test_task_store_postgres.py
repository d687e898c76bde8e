"""What only the PostgreSQL store has to show, beyond the shared contract suite
(``test_task_store.py`` runs that suite against it too): many processes' workers claiming at
once, wake-ups across processes through ``LISTEN/NOTIFY``, the URL, a server that is away,
the index each statement uses on a filled table, and the schema's upgrade.

Every test uses a real PostgreSQL server started by the tests themselves (``_postgres.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from _durable_support import FakeClock, new_task
from _postgres import shared_server

from triobg import App
from triobg._durable._postgres import _MIGRATIONS, _SQL, PostgresTaskStore, _migrate
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
        """``migrate`` creates the tables once, records each version, and is safe to repeat."""
        async with stores(2) as (a, b):
            assert await a.migrate() == 2
            assert await b.migrate() == 2
            rows = await a._read(
                lambda db: db.execute("SELECT version FROM triobg_schema ORDER BY 1").fetchall()
            )
            assert rows == [(1,), (2,)]
            assert await a._read(_indexes) == _INDEXES

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


#: The indexes of the newest schema (version 2).
_INDEXES = {
    "triobg_tasks_pkey",
    "triobg_tasks_id_key",
    "triobg_tasks_claimable",
    "triobg_tasks_key",
    "triobg_tasks_running",
    "triobg_tasks_status_finished",
}


def _indexes(db: Any) -> set[str]:
    rows = db.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'triobg_tasks'")
    return {row[0] for row in rows}


_NOW = 2_000_000_000.0
_ERROR = json.dumps({"attempt": 1, "type": "builtins.ValueError", "message": "m", "at": _NOW})

#: A table as real use leaves it, scaled down (under 30,000 rows, so ``ANALYZE`` reads them
#: all and the plans do not depend on its sample): many succeeded tasks, some failed and
#: cancelled, a queue of ready ones (a tenth with a key), a few retrying and running ones.
_FILL = """
    INSERT INTO triobg_tasks (id, name, arguments, status, priority, key, attempts,
        max_attempts, enqueued_at, run_after, started_at, finished_at, owner, lease_until,
        result, errors)
    SELECT prefix || g, 'app.send_mail', '{"args": ["someone@example.com"]}', status,
        g %% 3 - 1, CASE WHEN status = 'ready' AND g %% 10 = 0 THEN 'k' || g END,
        CASE WHEN status IN ('ready', 'cancelled') THEN 0 ELSE 1 END, 3,
        %(now)s - 50000 + g, CASE WHEN status = 'retrying' THEN %(now)s + 30
            ELSE %(now)s - 50000 + g END,
        CASE WHEN status IN ('ready', 'cancelled') THEN NULL ELSE %(now)s - 50000 + g END,
        CASE WHEN status IN ('succeeded', 'failed', 'cancelled') THEN %(now)s - 50000 + g END,
        CASE WHEN status = 'running' THEN 'host' || g %% 4 || ':1' END,
        CASE WHEN status = 'running' THEN %(now)s + 20 END,
        CASE WHEN status = 'succeeded' THEN '"ok"' END,
        CASE WHEN status IN ('failed', 'retrying') THEN jsonb_build_array(%(error)s::jsonb)
            ELSE '[]' END
    FROM (VALUES ('s', 'succeeded', 20000), ('f', 'failed', 200), ('c', 'cancelled', 20),
                 ('r', 'ready', 1000), ('y', 'retrying', 20), ('u', 'running', 100))
        AS kinds(prefix, status, n),
        generate_series(1, n) AS g
"""

_RUNNING = [f"u{g}" for g in range(4, 101, 4)]  # owned by host0:1
_ROW = ("n1", "app.x", "{}", "running", 0, 1, 3, _NOW, _NOW, _NOW, "me:1", _NOW + 30)

#: Each statement's parameters (``list_status:STATUS`` lists that status).
_PLAN_PARAMETERS: dict[str, Any] = {
    "holder": ("k50",),
    "insert_many": [[value] for value in _ROW],
    "insert_keyed": ("n2", "app.x", "{}", "ready", 0, "k", 0, 3, _NOW, _NOW, None, None, None),
    "claim": {"owner": "me:1", "lease_until": _NOW + 30, "now": _NOW, "limit": 64},
    "heartbeat": (_NOW + 30, _RUNNING, "host0:1"),
    "succeed_many": (_NOW, _RUNNING, ["host0:1"] * len(_RUNNING), ["1"] * len(_RUNNING)),
    "fail": (_ERROR, _NOW, "u4", "host0:1"),
    "fail_retry": (_ERROR, _NOW + 10, "u4", "host0:1"),
    "release": (_NOW, _RUNNING, "host0:1"),
    "owners": (),
    "lost": (_NOW, ["host1:1"]),
    "recover_ready": (_ERROR, _NOW, "u4"),
    "recover_failed": (_ERROR, _NOW, "u4"),
    "get": ("s5000",),
    "get_locked": ("s5000",),
    "list": (100,),
    **{f"list_status:{status.value}": (status.value, 100) for status in TaskStatus},
    "cancel": (_NOW, "r5"),
    "retry": (_NOW, "f5"),
    "counts": (),
    "oldest_ready": (_NOW,),
    "prune": (_NOW - 45000,),
}

_BY_ID = r"Index Scan using triobg_tasks_id_key on triobg_tasks"
_RUNNING_ROWS = r"Index (Only )?Scan using triobg_tasks_running on triobg_tasks"
_RUNNING_BITMAP = r"Bitmap Index Scan on triobg_tasks_running"
_BY_ID_OR_OWNER = rf"{_BY_ID}|{_RUNNING_ROWS}"

#: What each statement's plan must contain (``EXPLAIN (COSTS OFF)``); none may read the whole
#: table but ``counts``, which counts all of it.
_EXPECTED_PLANS = {
    "holder": r"Index Scan using triobg_tasks_key on triobg_tasks",
    "insert_many": r"^\s*->  Function Scan on t$",  # the arrays; no index read
    "insert_keyed": r"^Insert on triobg_tasks",
    "claim": r"Index Scan using triobg_tasks_claimable on triobg_tasks",
    "heartbeat": _BY_ID_OR_OWNER,
    "succeed_many": _BY_ID_OR_OWNER,
    "fail": _BY_ID_OR_OWNER,
    "fail_retry": _BY_ID_OR_OWNER,
    "release": _BY_ID_OR_OWNER,
    "owners": _RUNNING_ROWS,
    "lost": _RUNNING_BITMAP,
    "recover_ready": _BY_ID,
    "recover_failed": _BY_ID,
    "get": _BY_ID,
    "get_locked": _BY_ID,
    "list": r"Index Scan Backward using triobg_tasks_pkey",
    # Newest first: the table walked back from its newest row while that status is common
    # among the newest rows, otherwise that status's entries of its index, sorted.
    "list_status:ready": r"Index Scan Backward using triobg_tasks_pkey|triobg_tasks_claimable",
    "list_status:retrying": r"triobg_tasks_claimable",
    "list_status:running": rf"{_RUNNING_ROWS}|{_RUNNING_BITMAP}",
    "list_status:succeeded": r"Index Scan Backward using triobg_tasks_pkey",
    "list_status:failed": r"Index Scan Backward using triobg_tasks_pkey|status_finished",
    "list_status:cancelled": r"triobg_tasks_status_finished",
    "cancel": _BY_ID,
    "retry": _BY_ID,
    "counts": r"Seq Scan on triobg_tasks",
    "oldest_ready": r"Index Only Scan using triobg_tasks_claimable",
    "prune": r"Index Cond: \(\(status = ANY .*\) AND \(finished_at < .*\)\)",
}

#: Statements that are not about tasks' rows.
_NOT_PLANNED = {"schema_lock", "schema_table", "schema_version", "schema_done", "notify", "listen"}


@pytest.fixture(scope="module")
def filled_database() -> str:
    """A database at the newest schema whose table is filled by ``_FILL`` and analysed."""
    import psycopg

    url = shared_server().new_database()
    with psycopg.connect(url, autocommit=True) as db:
        _migrate(db)
        db.execute(_FILL, {"now": _NOW, "error": _ERROR})
        db.execute("VACUUM ANALYZE triobg_tasks")  # as autovacuum would have by now
    return url


class TestIndexes:
    @pytest.mark.parametrize("query", sorted(_EXPECTED_PLANS))
    def test_each_statement_uses_its_index(self, filled_database: str, query: str) -> None:
        """Every statement reaches its rows through the index meant for it, on a filled table."""
        import psycopg

        sql = _SQL[query.partition(":")[0]]
        with psycopg.connect(filled_database, autocommit=True) as db:
            cursor = psycopg.ClientCursor(db)  # the values in the text: planned as executed
            rows = cursor.execute(f"EXPLAIN (COSTS OFF) {sql}", _PLAN_PARAMETERS[query])
            plan = "\n".join(row[0] for row in rows)
        assert re.search(_EXPECTED_PLANS[query], plan, re.MULTILINE), plan
        if query != "counts":
            assert "Seq Scan on triobg_tasks" not in plan, plan

    def test_every_statement_has_an_expected_plan(self) -> None:
        """The plan test above covers every named query (a new one must say its index)."""
        planned = {query.partition(":")[0] for query in _EXPECTED_PLANS}
        assert planned == set(_SQL) - _NOT_PLANNED
        assert set(_PLAN_PARAMETERS) == set(_EXPECTED_PLANS)

    async def test_version_1_is_upgraded_in_place(self) -> None:
        """A database at schema version 1 gets version 2's indexes; its tasks are kept and the
        statements that read the replaced indexes still find them."""
        import psycopg

        clock = FakeClock()
        url = shared_server().new_database()
        with psycopg.connect(url, autocommit=True) as db:  # as triobg wrote version 1
            db.execute(_SQL["schema_table"])
            db.execute(_MIGRATIONS[0])
            db.execute(_SQL["schema_done"], (1,))
            db.execute(
                """
                INSERT INTO triobg_tasks (id, name, arguments, status, priority, attempts,
                    max_attempts, enqueued_at, run_after, finished_at)
                VALUES ('ready', 'f', '{}', 'ready', 0, 0, 3, %(now)s, %(now)s, NULL),
                       ('done', 'f', '{}', 'succeeded', 0, 1, 3, %(now)s, %(now)s, %(now)s),
                       ('failed', 'f', '{}', 'failed', 0, 3, 3, %(now)s, %(now)s, %(now)s)
                """,
                {"now": clock.now},
            )
            assert _indexes(db) - _INDEXES == {"triobg_tasks_status", "triobg_tasks_finished"}
        async with stores(1, url, clock=clock) as (store,):
            assert await store.migrate() == 2
            assert await store._read(_indexes) == _INDEXES
            assert [r.id for r in await store.list(TaskStatus.FAILED)] == ["failed"]
            assert [r.id for r in await store.claim("host:1", 5, lease=60)] == ["ready"]
            assert (await store.statistics()).succeeded == 1
            assert await store.prune(clock.now + 1) == 2
            assert [r.id for r in await store.list()] == ["ready"]
