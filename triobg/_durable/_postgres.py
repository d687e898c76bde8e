# The PostgreSQL durable-task store: many processes on many machines, one table.
#
# Where it sits: behind the contract of ``_store.py``, selected by a ``postgresql://`` URL
# (``App(task_store="postgresql://...")``) or given as an object. It passes the same contract
# suite as the SQLite store (``tests/test_task_store.py``); the worker, the lease and the retry
# policy do not know which of the two they run on.
#
# Driver: psycopg 3 with its connection pool (the optional extra ``triobg[postgres]``). psycopg
# blocks, so every call runs in a worker thread (``trio.to_thread``), at most ``max_connections``
# at a time; the event loop never waits on the network.
#
# How the guarantees are kept:
#
# * Durable before it returns: every write commits before its call returns (PostgreSQL's
#   ``synchronous_commit`` decides what "committed" survives; its default waits for the WAL
#   flush). Writes go through the same *group commit* as the SQLite store (``_batch.py``):
#   writes that arrive while a commit is under way are applied together in the next
#   transaction.
# * One owner at a time: ``claim`` takes ready rows with ``FOR UPDATE SKIP LOCKED``, so workers
#   in other processes never wait for each other's rows, and never take the same row. Every
#   transition by an owner checks ``status = 'running' AND owner = ...`` in its ``WHERE``.
# * Idempotency keys: a partial unique index over the keys of unfinished tasks; a second enqueue
#   with a held key inserts nothing (``ON CONFLICT DO NOTHING``) and returns the holder. Two
#   processes enqueueing the same key at once are serialised by the index itself.
# * Prompt wake-ups across machines: enqueues (and anything else that makes work ready) send
#   ``NOTIFY triobg_tasks`` inside their transaction, so it is delivered at commit; ``watch``
#   keeps one connection in ``LISTEN`` and wakes the local worker, which would otherwise find
#   the task at its next poll.
#
# Times are wall-clock seconds from the injected ``clock`` (as for every store), not the
# server's ``now()``: the contract suite moves time without sleeping, and a lease is measured
# by the clocks of the workers that take it over, which should be kept in sync (NTP).
#
# All SQL is in ``_MIGRATIONS`` (the schema, versioned) and ``_SQL`` (named queries) below.
from __future__ import annotations

import builtins
import json
import threading
import time
import typing
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs
import trio

from ._batch import (
    GroupCommit,
    GroupCommitSucceeds,
    Succeed,
    Write,
    apply_in_order,
    merge_succeeds,
)
from ._status import TaskStatus
from ._store import (
    RECORD_COLUMNS,
    NewTask,
    Preclaim,
    RecordMaker,
    TaskError,
    TaskNotFound,
    TaskRecord,
    TaskStatistics,
    TaskStore,
    check_unique,
    claimed_record,
    preclaims,
    ready_record,
    record_from_row,
    recovered,
)

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

T = TypeVar("T")

#: The channel ``NOTIFY`` and ``LISTEN`` use.
CHANNEL: Final = "triobg_tasks"

_COLUMNS: Final = RECORD_COLUMNS
_UNFINISHED: Final = "('ready', 'running', 'retrying')"
_FINISHED: Final = "('succeeded', 'failed', 'cancelled')"

#: The schema, as numbered migrations: version N is reached by applying the first N of them,
#: each once, in order, recorded in ``triobg_schema``. A later release appends to this list and
#: never edits an entry that has shipped.
_MIGRATIONS: Final = (
    f"""
        CREATE TABLE IF NOT EXISTS triobg_tasks (
            seq BIGSERIAL PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            arguments TEXT NOT NULL,
            status TEXT NOT NULL,
            priority INTEGER NOT NULL,
            key TEXT,
            attempts INTEGER NOT NULL,
            max_attempts INTEGER NOT NULL,
            enqueued_at DOUBLE PRECISION NOT NULL,
            run_after DOUBLE PRECISION NOT NULL,
            started_at DOUBLE PRECISION,
            finished_at DOUBLE PRECISION,
            owner TEXT,
            lease_until DOUBLE PRECISION,
            result TEXT,
            errors JSONB NOT NULL DEFAULT '[]'
        );
        CREATE INDEX IF NOT EXISTS triobg_tasks_claimable
            ON triobg_tasks (priority DESC, run_after, seq)
            WHERE status IN ('ready', 'retrying');
        CREATE UNIQUE INDEX IF NOT EXISTS triobg_tasks_key
            ON triobg_tasks (key) WHERE key IS NOT NULL AND status IN {_UNFINISHED};
        CREATE INDEX IF NOT EXISTS triobg_tasks_running
            ON triobg_tasks (owner, lease_until) WHERE status = 'running';
        CREATE INDEX IF NOT EXISTS triobg_tasks_finished
            ON triobg_tasks (finished_at) WHERE status IN ('succeeded', 'failed', 'cancelled');
        CREATE INDEX IF NOT EXISTS triobg_tasks_status ON triobg_tasks (status);
    """,
    # Version 2: one partial index on (status, finished_at) of finished rows instead of the
    # index on ``status`` alone and the one on ``finished_at``. An UPDATE that changes
    # ``status`` (the claim, the succeed) cannot be HOT, so it adds an entry to every index
    # whose predicate the new row meets: a task now enters three indexes at each step, not
    # four. ``prune`` and listing a finished status read the new one; listing READY, RETRYING
    # or RUNNING tasks reads the claimable and running indexes (``docs/howto/postgresql.rst``;
    # the plans are tested on a filled table).
    f"""
        DROP INDEX IF EXISTS triobg_tasks_status;
        DROP INDEX IF EXISTS triobg_tasks_finished;
        CREATE INDEX IF NOT EXISTS triobg_tasks_status_finished
            ON triobg_tasks (status, finished_at) WHERE status IN {_FINISHED};
    """,
)

_SQL: Final = {
    # Migrations run under an advisory lock: two processes starting at once would otherwise race
    # on the catalogue, and one would fail or apply a migration twice.
    "schema_lock": "SELECT pg_advisory_xact_lock(7193020415)",
    "schema_table": "CREATE TABLE IF NOT EXISTS triobg_schema (version INTEGER NOT NULL)",
    "schema_version": "SELECT coalesce(max(version), 0) FROM triobg_schema",
    "schema_done": "INSERT INTO triobg_schema (version) VALUES (%s)",
    "notify": f"NOTIFY {CHANNEL}",
    "listen": f"LISTEN {CHANNEL}",
    "holder": f"""
        SELECT {_COLUMNS} FROM triobg_tasks WHERE key = %s AND status IN {_UNFINISHED}
    """,
    # Many tasks without a key in one statement, in the order given (their ``seq`` order);
    # each READY, or RUNNING when stored already claimed (``Preclaim``).
    "insert_many": """
        INSERT INTO triobg_tasks (id, name, arguments, status, priority, key, attempts,
            max_attempts, enqueued_at, run_after, started_at, owner, lease_until)
        SELECT id, name, arguments, status, priority, NULL, attempts, max_attempts,
            enqueued_at, run_after, started_at, owner, lease_until
        FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::int[], %s::int[],
            %s::int[], %s::float8[], %s::float8[], %s::float8[], %s::text[], %s::float8[])
            WITH ORDINALITY
            AS t(id, name, arguments, status, priority, attempts, max_attempts, enqueued_at,
                run_after, started_at, owner, lease_until, n)
        ORDER BY n
    """,
    "insert_keyed": f"""
        INSERT INTO triobg_tasks (id, name, arguments, status, priority, key, attempts,
            max_attempts, enqueued_at, run_after, started_at, owner, lease_until)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (key) WHERE key IS NOT NULL AND status IN {_UNFINISHED} DO NOTHING
        RETURNING id
    """,
    "claim": f"""
        UPDATE triobg_tasks
        SET status = 'running', owner = %(owner)s, lease_until = %(lease_until)s,
            attempts = attempts + 1, started_at = %(now)s
        WHERE seq IN (
            SELECT seq FROM triobg_tasks
            WHERE status IN ('ready', 'retrying') AND run_after <= %(now)s
            ORDER BY priority DESC, run_after, seq
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        )
        RETURNING seq, {_COLUMNS}
    """,
    "heartbeat": """
        UPDATE triobg_tasks SET lease_until = %s
        WHERE id = ANY(%s) AND status = 'running' AND owner = %s
        RETURNING id
    """,
    # The succeeds of one batch in one statement (see ``_mark_succeeded``).
    "succeed_many": """
        UPDATE triobg_tasks AS t
        SET status = 'succeeded', result = v.result, finished_at = %s, lease_until = NULL
        FROM unnest(%s::text[], %s::text[], %s::text[]) AS v(id, owner, result)
        WHERE t.id = v.id AND t.status = 'running' AND t.owner = v.owner
        RETURNING t.id, v.owner
    """,
    "fail": """
        UPDATE triobg_tasks
        SET status = 'failed', errors = errors || jsonb_build_array(%s::jsonb),
            finished_at = %s, lease_until = NULL
        WHERE id = %s AND status = 'running' AND owner = %s
    """,
    "fail_retry": """
        UPDATE triobg_tasks
        SET status = 'retrying', errors = errors || jsonb_build_array(%s::jsonb),
            run_after = %s, lease_until = NULL
        WHERE id = %s AND status = 'running' AND owner = %s
    """,
    "release": """
        UPDATE triobg_tasks
        SET status = 'ready', attempts = attempts - 1, run_after = %s, lease_until = NULL
        WHERE id = ANY(%s) AND status = 'running' AND owner = %s
    """,
    "owners": "SELECT DISTINCT owner FROM triobg_tasks WHERE status = 'running'",
    # Locked, skipping rows another process is recovering (or finishing) right now.
    "lost": f"""
        SELECT {_COLUMNS} FROM triobg_tasks
        WHERE status = 'running' AND (lease_until < %s OR owner = ANY(%s))
        ORDER BY seq
        FOR UPDATE SKIP LOCKED
    """,
    "recover_ready": """
        UPDATE triobg_tasks
        SET status = 'ready', errors = errors || jsonb_build_array(%s::jsonb), run_after = %s,
            lease_until = NULL
        WHERE id = %s AND status = 'running'
    """,
    "recover_failed": """
        UPDATE triobg_tasks
        SET status = 'failed', errors = errors || jsonb_build_array(%s::jsonb),
            finished_at = %s, lease_until = NULL
        WHERE id = %s AND status = 'running'
    """,
    "get": f"SELECT {_COLUMNS} FROM triobg_tasks WHERE id = %s",
    "get_locked": f"SELECT {_COLUMNS} FROM triobg_tasks WHERE id = %s FOR UPDATE",
    "list": f"SELECT {_COLUMNS} FROM triobg_tasks ORDER BY seq DESC LIMIT %s",
    "list_status": f"""
        SELECT {_COLUMNS} FROM triobg_tasks WHERE status = %s ORDER BY seq DESC LIMIT %s
    """,
    "cancel": f"""
        UPDATE triobg_tasks SET status = 'cancelled', finished_at = %s, lease_until = NULL
        WHERE id = %s AND status IN {_UNFINISHED}
    """,
    "retry": """
        UPDATE triobg_tasks
        SET status = 'ready', attempts = 0, run_after = %s, finished_at = NULL, lease_until = NULL
        WHERE id = %s AND status IN ('failed', 'cancelled')
    """,
    "counts": "SELECT status, count(*) FROM triobg_tasks GROUP BY status",
    "oldest_ready": """
        SELECT min(run_after) FROM triobg_tasks
        WHERE status IN ('ready', 'retrying') AND run_after <= %s
    """,
    "prune": """
        DELETE FROM triobg_tasks
        WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < %s
    """,
}


def _record(row: Sequence[Any]) -> TaskRecord:
    return record_from_row(row, row[15])


def _row(r: TaskRecord) -> tuple[Any, ...]:
    """The values of ``insert_keyed`` for a record about to be stored."""
    return (
        r.id, r.name, r.arguments, r.status.value, r.priority, r.key, r.attempts,
        r.max_attempts, r.enqueued_at, r.run_after, r.started_at, r.owner, r.lease_until,
    )  # fmt: skip


def _plain_row(r: TaskRecord) -> tuple[Any, ...]:
    """The values of ``insert_many`` for one record (the statement takes them as columns)."""
    return (
        r.id, r.name, r.arguments, r.status.value, r.priority, r.attempts, r.max_attempts,
        r.enqueued_at, r.run_after, r.started_at, r.owner, r.lease_until,
    )  # fmt: skip


def _error_json(error: TaskError) -> str:
    return json.dumps(attrs.asdict(error))


def _import_psycopg() -> tuple[Any, Any]:
    try:
        import psycopg
        import psycopg_pool
    except ImportError:
        raise ImportError(
            "the PostgreSQL task store needs psycopg 3 and psycopg-pool: "
            "pip install 'triobg[postgres]'"
        ) from None
    return psycopg, psycopg_pool


class PostgresTaskStore(GroupCommitSucceeds, TaskStore):
    """Durable tasks in a PostgreSQL table, shared by every process and machine that uses it.

    The table (``triobg_tasks``) is created the first time the store is used.

    Args:
        url: A libpq connection string or URL (``postgresql://user:pass@host:5432/db``).
        clock: Wall-clock seconds (tests inject a fake clock).
        max_connections: Connections (and worker threads) this store uses at most; one more
            is kept for ``LISTEN`` while a worker watches.
        connect_timeout: Seconds to wait for a connection before an operation fails (a request
            adding durable tasks then gets a 503).
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        max_connections: int = 4,
        connect_timeout: float = 5.0,
    ) -> None:
        _import_psycopg()  # fail at ``App(...)`` when the driver is missing, not at first use
        self.url = url
        self.clock = clock
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._pool_lock = threading.Lock()
        self._limiter = trio.CapacityLimiter(max_connections)
        self._writes = GroupCommit(self._commit, trio.CapacityLimiter(1))
        self._mark_succeeded = _mark_succeeded
        self.schema_version = 0  # known once connected

    def __repr__(self) -> str:
        return f"PostgresTaskStore({_redacted(self.url)!r})"

    async def migrate(self) -> int:
        """Create or upgrade the store's tables now (otherwise done on first use).

        Safe to run from several processes at once, and again and again. Returns the schema
        version the database is at.
        """
        await self._read(lambda connection: None)
        return self.schema_version

    @property
    def batches(self) -> int:
        """Transactions committed by the group commit so far (statistics)."""
        return self._writes.batches

    # --- connections -------------------------------------------------------------------------

    def _connections(self) -> psycopg_pool.ConnectionPool[Any]:
        with self._pool_lock:
            if self._pool is None:
                _, psycopg_pool = _import_psycopg()
                pool = psycopg_pool.ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self.max_connections,
                    kwargs={"autocommit": True, "connect_timeout": round(self.connect_timeout)},
                    timeout=self.connect_timeout,
                    # A connection is checked before each use: after the server restarts, the
                    # pool's old connections are dead, and an operation must not fail on one.
                    check=psycopg_pool.ConnectionPool.check_connection,
                    open=False,
                )
                try:
                    pool.open(wait=True, timeout=self.connect_timeout)
                except psycopg_pool.PoolTimeout:
                    pool.close()  # its threads would go on trying to connect
                    raise ConnectionError(
                        f"cannot connect to the PostgreSQL task store {_redacted(self.url)} "
                        f"within {self.connect_timeout:g} s"
                    ) from None
                try:
                    with pool.connection() as connection:
                        self.schema_version = _migrate(connection)
                except BaseException:
                    pool.close()
                    raise
                self._pool = pool
            return self._pool

    async def _read(self, read: Callable[[psycopg.Connection[Any]], T]) -> T:
        def run() -> T:
            with self._connections().connection() as connection:
                return read(connection)

        return await trio.to_thread.run_sync(run, limiter=self._limiter)

    async def _write(self, apply: Callable[[psycopg.Connection[Any]], T]) -> T:
        return await self._writes.write(apply)

    def _commit(self, batch: list[Write]) -> None:
        # Runs in a worker thread. A database error aborts the whole transaction, so it fails
        # every write of the batch; a deadlock or serialisation failure (rare: claims skip
        # locked rows) is retried, since the rollback left nothing behind.
        psycopg, _ = _import_psycopg()
        for attempt in range(3):
            try:
                with self._connections().connection() as connection, connection.transaction():
                    apply_in_order(  # the key-less enqueues and the succeeds in one each
                        connection,
                        batch,
                        bulk_first=(_Insert, _insert_many),
                        bulk_last=(Succeed, merge_succeeds),
                        store_error=psycopg.Error,
                    )
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                if attempt == 2:
                    raise
            else:
                return
            finally:
                self._writes.batches += 1

    async def aclose(self) -> None:
        def close() -> None:
            with self._pool_lock:
                if self._pool is not None:
                    self._pool.close()
                    self._pool = None

        await trio.to_thread.run_sync(close)

    # --- wake-ups across processes -------------------------------------------------------------

    async def watch(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` each time any process commits work that became ready; until cancelled.

        One connection sits in ``LISTEN`` in a worker thread, which looks up once a second to
        see whether it should stop; cancelling this call returns at once and the thread ends
        by itself within that second. Each notification wakes the worker, which claims
        whatever is ready; a notification lost while reconnecting costs at most one poll.
        """
        psycopg, _ = _import_psycopg()
        token = trio.lowlevel.current_trio_token()
        stop = threading.Event()

        def listen() -> None:
            while not stop.is_set():
                try:
                    with psycopg.connect(
                        self.url, autocommit=True, connect_timeout=round(self.connect_timeout)
                    ) as connection:
                        connection.execute(_SQL["listen"])
                        token.run_sync_soon(wake)  # anything committed while we were away
                        while not stop.is_set():
                            for _ in connection.notifies(timeout=1.0):
                                token.run_sync_soon(wake)
                except psycopg.OperationalError:
                    stop.wait(1.0)  # the server is away: the worker polls meanwhile
                except trio.RunFinishedError:
                    return

        try:
            await trio.to_thread.run_sync(listen, abandon_on_cancel=True)
        finally:
            stop.set()

    # --- the contract ------------------------------------------------------------------------

    async def enqueue(
        self, tasks: Sequence[NewTask], *, claim: Preclaim | None = None
    ) -> builtins.list[TaskRecord]:
        check_unique(task.id for task in tasks)
        if all(task.key is None for task in tasks):
            # Nothing to look up first: the records are built here and the group commit
            # inserts them together with the other key-less enqueues of its batch.
            make = RecordMaker(claim, self.clock())
            return await self._write(_Insert([make(task) for task in tasks]))

        def apply(db: psycopg.Connection[Any]) -> builtins.list[TaskRecord]:
            now = self.clock()
            claimed = 0
            out: builtins.list[TaskRecord] = []
            plain: builtins.list[TaskRecord] = []  # no key: inserted together below
            ready = False  # whether any task was stored claimable by others (NOTIFY)
            with db.cursor() as cursor:
                for task in tasks:
                    if preclaims(task, claim, claimed, now):
                        assert claim is not None
                        record = claimed_record(task, claim, now)
                    else:
                        record = ready_record(task)
                    if task.key is None:
                        plain.append(record)
                    else:
                        cursor.execute(_SQL["insert_keyed"], _row(record))
                        if cursor.fetchone() is None:  # the key is held: return the holder
                            held = cursor.execute(_SQL["holder"], (task.key,)).fetchone()
                            assert held is not None
                            out.append(_record(held))
                            continue
                    if record.status is TaskStatus.RUNNING:
                        claimed += 1
                    else:
                        ready = True
                    out.append(record)
                if plain:
                    cursor.execute(
                        _SQL["insert_many"],
                        [list(c) for c in zip(*map(_plain_row, plain), strict=True)],
                    )
                if ready:
                    cursor.execute(_SQL["notify"])
            return out

        return await self._write(apply)

    async def claim(self, owner: str, limit: int, lease: float) -> builtins.list[TaskRecord]:
        if limit <= 0:
            return []

        def apply(db: psycopg.Connection[Any]) -> builtins.list[TaskRecord]:
            now = self.clock()
            params = {"owner": owner, "lease_until": now + lease, "now": now, "limit": limit}
            rows = db.execute(_SQL["claim"], params).fetchall()
            rows.sort(key=lambda row: (-row[5], row[10], row[0]))
            return [_record(row[1:]) for row in rows]

        return await self._write(apply)

    async def heartbeat(self, owner: str, ids: Collection[str], lease: float) -> set[str]:
        if not ids:
            return set()

        def apply(db: psycopg.Connection[Any]) -> set[str]:
            until = self.clock() + lease
            rows = db.execute(_SQL["heartbeat"], (until, list(ids), owner)).fetchall()
            return {row[0] for row in rows}

        return await self._write(apply)

    async def fail(
        self, task_id: str, owner: str, error: TaskError, retry_at: float | None
    ) -> bool:
        def apply(db: psycopg.Connection[Any]) -> bool:
            if retry_at is None:
                args = (_error_json(error), self.clock(), task_id, owner)
                return db.execute(_SQL["fail"], args).rowcount > 0
            args = (_error_json(error), retry_at, task_id, owner)
            return db.execute(_SQL["fail_retry"], args).rowcount > 0

        return await self._write(apply)

    async def release(self, owner: str, ids: Collection[str]) -> int:
        if not ids:
            return 0

        def apply(db: psycopg.Connection[Any]) -> int:
            released = db.execute(_SQL["release"], (self.clock(), list(ids), owner)).rowcount
            if released:
                db.execute(_SQL["notify"])  # another worker may take them at once
            return released

        return await self._write(apply)

    async def owners(self) -> set[str]:
        def read(db: psycopg.Connection[Any]) -> set[str]:
            return {row[0] for row in db.execute(_SQL["owners"]) if row[0] is not None}

        return await self._read(read)

    async def recover(self, dead_owners: Collection[str] = ()) -> builtins.list[TaskRecord]:
        dead = sorted(dead_owners)

        def apply(db: psycopg.Connection[Any]) -> builtins.list[TaskRecord]:
            now = self.clock()
            out = []
            for row in db.execute(_SQL["lost"], (now, dead)).fetchall():
                record = recovered(_record(row), now)
                query = "recover_failed" if record.status is TaskStatus.FAILED else "recover_ready"
                db.execute(_SQL[query], (_error_json(record.errors[-1]), now, record.id))
                out.append(record)
            if any(record.status is TaskStatus.READY for record in out):
                db.execute(_SQL["notify"])
            return out

        return await self._write(apply)

    async def get(self, task_id: str) -> TaskRecord:
        def read(db: psycopg.Connection[Any]) -> TaskRecord | None:
            row = db.execute(_SQL["get"], (task_id,)).fetchone()
            return None if row is None else _record(row)

        record = await self._read(read)
        if record is None:
            raise TaskNotFound(task_id)
        return record

    async def list(
        self, status: TaskStatus | None = None, *, limit: int = 100
    ) -> builtins.list[TaskRecord]:
        def read(db: psycopg.Connection[Any]) -> builtins.list[TaskRecord]:
            if status is None:
                rows = db.execute(_SQL["list"], (max(limit, 0),))
            else:
                rows = db.execute(_SQL["list_status"], (status.value, max(limit, 0)))
            return [_record(row) for row in rows]

        return await self._read(read)

    async def cancel(self, task_id: str) -> TaskRecord:
        def apply(db: psycopg.Connection[Any]) -> TaskRecord | None:
            db.execute(_SQL["cancel"], (self.clock(), task_id))
            row = db.execute(_SQL["get"], (task_id,)).fetchone()
            return None if row is None else _record(row)

        record = await self._write(apply)
        if record is None:
            raise TaskNotFound(task_id)
        return record

    async def retry(self, task_id: str) -> TaskRecord:
        def apply(db: psycopg.Connection[Any]) -> TaskRecord | None:
            row = db.execute(_SQL["get_locked"], (task_id,)).fetchone()
            if row is None:
                return None
            record = _record(row)
            if record.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
                return record
            if record.key:
                held = db.execute(_SQL["holder"], (record.key,)).fetchone()
                if held is not None:
                    return _record(held)  # the key is taken again: the other task does this work
            db.execute(_SQL["retry"], (self.clock(), task_id))
            db.execute(_SQL["notify"])
            row = db.execute(_SQL["get"], (task_id,)).fetchone()
            assert row is not None  # locked above: nobody deleted it meanwhile
            return _record(row)

        record = await self._write(apply)
        if record is None:
            raise TaskNotFound(task_id)
        return record

    async def statistics(self) -> TaskStatistics:
        def read(db: psycopg.Connection[Any]) -> TaskStatistics:
            now = self.clock()
            counts = {
                TaskStatus(status).name.lower(): n for status, n in db.execute(_SQL["counts"])
            }
            row = db.execute(_SQL["oldest_ready"], (now,)).fetchone()
            oldest = None if row is None else row[0]
            return TaskStatistics(
                **counts, oldest_ready_age=0.0 if oldest is None else now - oldest
            )

        return await self._read(read)

    async def prune(self, finished_before: float) -> int:
        def apply(db: psycopg.Connection[Any]) -> int:
            return db.execute(_SQL["prune"], (finished_before,)).rowcount

        return await self._write(apply)


@attrs.frozen
class _Insert:
    """``enqueue`` of tasks without idempotency keys, as a write the group commit recognises
    and inserts together with the others of its batch: its records are what it stores."""

    records: list[TaskRecord]

    def __call__(self, db: psycopg.Connection[Any]) -> builtins.list[TaskRecord]:
        _insert_records(db, self.records)
        return self.records


def _insert_many(db: psycopg.Connection[Any], writes: Sequence[Write]) -> None:
    inserts = [typing.cast(_Insert, write.apply) for write in writes]
    _insert_records(db, [record for insert in inserts for record in insert.records])
    for write, insert in zip(writes, inserts, strict=True):
        write.error = None
        write.result = insert.records


def _insert_records(db: psycopg.Connection[Any], records: Sequence[TaskRecord]) -> None:
    if not records:
        return
    columns = [list(column) for column in zip(*map(_plain_row, records), strict=True)]
    db.execute(_SQL["insert_many"], columns)
    if any(record.status is TaskStatus.READY for record in records):
        db.execute(_SQL["notify"])  # claimable by any worker: wake those listening


def _mark_succeeded(
    db: psycopg.Connection[Any], rows: builtins.list[tuple[str, str, str]], now: float
) -> builtins.set[tuple[str, str]]:
    """Successes in one statement (``_batch.MarkSucceeded``)."""
    ids, results, owners = (list(column) for column in zip(*rows, strict=True))
    changed = db.execute(_SQL["succeed_many"], (now, ids, owners, results)).fetchall()
    return {(row[0], row[1]) for row in changed}


def _migrate(connection: psycopg.Connection[Any]) -> int:
    """Apply the migrations this database has not had yet; returns its schema version."""
    with connection.transaction():
        connection.execute(_SQL["schema_lock"])
        connection.execute(_SQL["schema_table"])
        row = connection.execute(_SQL["schema_version"]).fetchone()
        version = 0 if row is None else int(row[0])
        for number, migration in enumerate(_MIGRATIONS[version:], start=version + 1):
            connection.execute(migration)
            connection.execute(_SQL["schema_done"], (number,))
    return max(version, len(_MIGRATIONS))


def _redacted(url: str) -> str:
    """``url`` without its password, for reprs and logs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.partition(":")[0]
    return f"{scheme}://{user}:***@{host}"
