# The embedded durable-task store: one SQLite file, stdlib ``sqlite3``, nothing else running.
#
# Where it sits: behind the contract of ``_store.py``; the default store of ``App``.
#
# Durability: WAL journal with ``synchronous=FULL``, so a commit that returned survives a power
# cut, not only a crash of this process. Every write goes through ``_write``, which is a *group
# commit*: writes that arrive while a commit is under way (the enqueues of concurrent requests,
# the results of concurrent tasks, a claim) are applied together in the next transaction, so
# durability costs one fsync per batch, not per task. The first writer to find no commit in
# flight leads one batch, then hands the lead to the first writer still waiting.
#
# Threads: ``sqlite3`` blocks, so every call runs in a worker thread (``trio.to_thread``) on the
# store's one connection, one call at a time; the event loop never waits on the disk. Several
# processes may share the file (a web process and ``python -m triobg worker``): writes take
# SQLite's write lock with ``BEGIN IMMEDIATE`` and wait up to ``busy_timeout`` for it.
#
# All SQL is in ``_SQL`` below, as named queries.
from __future__ import annotations

import builtins
import functools
import json
import os
import sqlite3
import time
import typing
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

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
    record_from_row,
    recovered,
)

T = TypeVar("T")

_COLUMNS: Final = RECORD_COLUMNS

#: The schema, one entry per version: entry ``n`` takes a file from version ``n`` to ``n + 1``.
#: A file's version is SQLite's ``PRAGMA user_version`` (0 for a new file, and for files made
#: before the schema was versioned: version 1 is written with ``IF NOT EXISTS``, so on such a
#: file it changes nothing but the number). Append; never edit an entry that has shipped.
_MIGRATIONS: Final = (
    """
        CREATE TABLE IF NOT EXISTS triobg_tasks (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            arguments TEXT NOT NULL,
            status TEXT NOT NULL,
            priority INTEGER NOT NULL,
            key TEXT,
            attempts INTEGER NOT NULL,
            max_attempts INTEGER NOT NULL,
            enqueued_at REAL NOT NULL,
            run_after REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            owner TEXT,
            lease_until REAL,
            result TEXT,
            errors TEXT NOT NULL DEFAULT '[]'
        );
        CREATE INDEX IF NOT EXISTS triobg_tasks_claimable
            ON triobg_tasks (priority DESC, run_after, seq)
            WHERE status IN ('ready', 'retrying');
        CREATE UNIQUE INDEX IF NOT EXISTS triobg_tasks_key
            ON triobg_tasks (key)
            WHERE key IS NOT NULL AND status IN ('ready', 'running', 'retrying');
        CREATE INDEX IF NOT EXISTS triobg_tasks_running
            ON triobg_tasks (owner, lease_until) WHERE status = 'running';
        CREATE INDEX IF NOT EXISTS triobg_tasks_finished
            ON triobg_tasks (finished_at) WHERE status IN ('succeeded', 'failed', 'cancelled');
        CREATE INDEX IF NOT EXISTS triobg_tasks_status ON triobg_tasks (status);
    """,
    # Version 2 (#14): one index on (status, finished_at) instead of three. A task's insert
    # and its update to SUCCEEDED each paid for ``status``, ``finished`` and ``running``;
    # without statistics the planner used ``status`` for all their queries anyway, so
    # ``finished`` and ``running`` were written and never read. Now prune finds its rows by
    # (status, finished_at), counts scan the index alone, and the running tasks (``owners``,
    # ``lost``) are its ``status = 'running'`` range.
    """
        DROP INDEX IF EXISTS triobg_tasks_status;
        DROP INDEX IF EXISTS triobg_tasks_finished;
        DROP INDEX IF EXISTS triobg_tasks_running;
        CREATE INDEX IF NOT EXISTS triobg_tasks_status_finished
            ON triobg_tasks (status, finished_at);
    """,
)

_SQL: Final = {
    "holder": f"""
        SELECT {_COLUMNS} FROM triobg_tasks
        WHERE key = ? AND status IN ('ready', 'running', 'retrying')
    """,
    # ``INDEXED BY``: the claimable index holds just the READY and RETRYING rows, in claim
    # order; without statistics the planner preferred the status index, then sorted every
    # claimable row (20 ms per claim with 100,000 waiting, 1.4 ms through this one). SQLite
    # refuses the statement if the index cannot serve it, so a schema change cannot quietly
    # lose it. ``oldest_ready`` below reads it for the same reason.
    "claim": f"""
        UPDATE triobg_tasks
        SET status = 'running', owner = :owner, lease_until = :lease_until,
            attempts = attempts + 1, started_at = :now
        WHERE seq IN (
            SELECT seq FROM triobg_tasks INDEXED BY triobg_tasks_claimable
            WHERE status IN ('ready', 'retrying') AND run_after <= :now
            ORDER BY priority DESC, run_after, seq
            LIMIT :limit
        )
        RETURNING seq, {_COLUMNS}
    """,
    # One statement for all the ids (a JSON array): under load a worker holds hundreds of
    # tasks, and a statement each meant a trip for the GIL each, with every commit waiting.
    # ``+status`` keeps the planner on the id index: without statistics it would rather walk
    # the status index through every running task of every worker (measured: 5.6 ms instead
    # of 0.6 ms for 250 ids among 20,000 running).
    "heartbeat": """
        UPDATE triobg_tasks SET lease_until = ?
        WHERE id IN (SELECT value FROM json_each(?)) AND +status = 'running' AND owner = ?
        RETURNING id
    """,
    "fail": """
        UPDATE triobg_tasks
        SET status = 'failed', errors = json_insert(errors, '$[#]', json(?)),
            finished_at = ?, lease_until = NULL
        WHERE id = ? AND status = 'running' AND owner = ?
    """,
    "fail_retry": """
        UPDATE triobg_tasks
        SET status = 'retrying', errors = json_insert(errors, '$[#]', json(?)),
            run_after = ?, lease_until = NULL
        WHERE id = ? AND status = 'running' AND owner = ?
    """,
    "release": """
        UPDATE triobg_tasks
        SET status = 'ready', attempts = attempts - 1, run_after = ?, lease_until = NULL
        WHERE id IN (SELECT value FROM json_each(?)) AND +status = 'running' AND owner = ?
    """,
    "owners": "SELECT DISTINCT owner FROM triobg_tasks WHERE status = 'running'",
    "lost": f"""
        SELECT {_COLUMNS} FROM triobg_tasks
        WHERE status = 'running' AND (lease_until < ? OR owner IN (SELECT value FROM json_each(?)))
    """,
    "recover_ready": """
        UPDATE triobg_tasks
        SET status = 'ready', errors = json_insert(errors, '$[#]', json(?)), run_after = ?,
            lease_until = NULL
        WHERE id = ? AND status = 'running'
    """,
    "recover_failed": """
        UPDATE triobg_tasks
        SET status = 'failed', errors = json_insert(errors, '$[#]', json(?)), finished_at = ?,
            lease_until = NULL
        WHERE id = ? AND status = 'running'
    """,
    "get": f"SELECT {_COLUMNS} FROM triobg_tasks WHERE id = ?",
    "list": f"SELECT {_COLUMNS} FROM triobg_tasks ORDER BY seq DESC LIMIT ?",
    # Listing by status: first the newest rows of the table, walked back from the newest
    # (``+status`` keeps the planner off the status index), then, if they hold too few, the
    # status index (``_list_status``).
    "list_status_recent": f"""
        SELECT {_COLUMNS} FROM triobg_tasks
        WHERE seq > (SELECT max(seq) FROM triobg_tasks) - ? AND +status = ?
        ORDER BY seq DESC LIMIT ?
    """,
    "list_status": f"""
        SELECT {_COLUMNS} FROM triobg_tasks
        WHERE seq IN (SELECT seq FROM triobg_tasks WHERE status = ? ORDER BY seq DESC LIMIT ?)
        ORDER BY seq DESC
    """,
    "cancel": """
        UPDATE triobg_tasks SET status = 'cancelled', finished_at = ?, lease_until = NULL
        WHERE id = ? AND status IN ('ready', 'running', 'retrying')
    """,
    "retry": """
        UPDATE triobg_tasks
        SET status = 'ready', attempts = 0, run_after = ?, finished_at = NULL, lease_until = NULL
        WHERE id = ? AND status IN ('failed', 'cancelled')
    """,
    "counts": "SELECT status, count(*) FROM triobg_tasks GROUP BY status",
    "oldest_ready": """
        SELECT min(run_after) FROM triobg_tasks INDEXED BY triobg_tasks_claimable
        WHERE status IN ('ready', 'retrying') AND run_after <= ?
    """,
    "prune": """
        DELETE FROM triobg_tasks
        WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < ?
    """,
}


def _record(row: Sequence[Any]) -> TaskRecord:
    return record_from_row(row, json.loads(row[15]))


def _error_json(error: TaskError) -> str:
    return json.dumps(attrs.asdict(error))


class SQLiteTaskStore(GroupCommitSucceeds, TaskStore):
    """Durable tasks in one SQLite file (created, with its directory, on first use).

    Args:
        path: The database file. Several processes on one machine may share it.
        clock: Wall-clock seconds (tests inject a fake clock).
        busy_timeout: Seconds a write waits for another process's write lock before failing
            (a request adding durable tasks then gets a 503).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.busy_timeout = busy_timeout
        self._connection: sqlite3.Connection | None = None
        self._limiter = trio.CapacityLimiter(1)  # one call on the connection at a time
        self._writes = GroupCommit(self._commit, self._limiter)
        self._mark_succeeded = _mark_succeeded

    def __repr__(self) -> str:
        return f"SQLiteTaskStore({str(self.path)!r})"

    @property
    def batches(self) -> int:
        """Transactions committed by the group commit so far (statistics)."""
        return self._writes.batches

    # --- the connection and the group commit -------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connection = self._connection
        if connection is not None:
            return connection
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            _upgrade(connection, self.path)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    async def _read(self, read: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            return read(self._connect())

        return await trio.to_thread.run_sync(run, limiter=self._limiter)

    async def _write(self, apply: Callable[[sqlite3.Connection], T]) -> T:
        """Apply ``apply`` in the next committed transaction, batched with concurrent writes
        (``_batch.GroupCommit``).

        ``apply`` runs in a worker thread inside the transaction. It must raise before it
        writes anything, or not at all: an ``sqlite3`` error fails (and rolls back) the whole
        batch, and every writer in it gets that error.
        """
        return await self._writes.write(apply)

    def _commit(self, batch: list[Write]) -> None:
        # A batch is a handful of statements (``apply_in_order``), not one per write: each
        # statement costs a round trip for the GIL (``sqlite3`` lets it go while SQLite works,
        # and a busy event loop may hold it for its whole switch interval before giving it
        # back).
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            apply_in_order(
                connection,
                batch,
                bulk_first=(_Insert, _insert_many),
                bulk_last=(Succeed, merge_succeeds),
                store_error=sqlite3.Error,
            )
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            for write in batch:
                write.result = None
                write.error = error
        self._writes.batches += 1

    async def migrate(self) -> int:
        """Create or upgrade the file's schema now (otherwise done on first use); returns the
        schema version the file is at."""
        return await self._read(_version)

    async def aclose(self) -> None:
        def close() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await trio.to_thread.run_sync(close, limiter=self._limiter)

    # --- the contract ------------------------------------------------------------------------

    async def enqueue(
        self, tasks: Sequence[NewTask], *, claim: Preclaim | None = None
    ) -> builtins.list[TaskRecord]:
        check_unique(task.id for task in tasks)
        if all(task.key is None for task in tasks):
            # The common case: nothing to look up first, so the rows are built here and the
            # group commit inserts them together with the other enqueues of its batch.
            make = RecordMaker(claim, self.clock())
            return await self._write(_Insert([make(task) for task in tasks]))

        def apply(db: sqlite3.Connection) -> builtins.list[TaskRecord]:
            make = RecordMaker(claim, self.clock())
            out = []
            for task in tasks:
                if task.key is not None:
                    held = db.execute(_SQL["holder"], (task.key,)).fetchone()
                    if held is not None:
                        out.append(_record(held))
                        continue
                record = make(task)
                _insert_rows(db, [_row(record)])
                out.append(record)
            return out

        return await self._write(apply)

    async def claim(self, owner: str, limit: int, lease: float) -> builtins.list[TaskRecord]:
        if limit <= 0:
            return []

        def apply(db: sqlite3.Connection) -> builtins.list[TaskRecord]:
            now = self.clock()
            rows = db.execute(
                _SQL["claim"],
                {"owner": owner, "lease_until": now + lease, "now": now, "limit": limit},
            ).fetchall()
            rows.sort(key=lambda row: (-row[5], row[10], row[0]))
            return [_record(row[1:]) for row in rows]

        return await self._write(apply)

    async def heartbeat(self, owner: str, ids: Collection[str], lease: float) -> set[str]:
        if not ids:
            return set()

        listed = json.dumps(list(ids))

        def apply(db: sqlite3.Connection) -> set[str]:
            rows = db.execute(_SQL["heartbeat"], (self.clock() + lease, listed, owner))
            return {row[0] for row in rows}

        return await self._write(apply)

    async def fail(
        self, task_id: str, owner: str, error: TaskError, retry_at: float | None
    ) -> bool:
        def apply(db: sqlite3.Connection) -> bool:
            if retry_at is None:
                args = (_error_json(error), self.clock(), task_id, owner)
                return bool(db.execute(_SQL["fail"], args).rowcount)
            args = (_error_json(error), retry_at, task_id, owner)
            return bool(db.execute(_SQL["fail_retry"], args).rowcount)

        return await self._write(apply)

    async def release(self, owner: str, ids: Collection[str]) -> int:
        if not ids:
            return 0

        listed = json.dumps(sorted(set(ids)))

        def apply(db: sqlite3.Connection) -> int:
            return db.execute(_SQL["release"], (self.clock(), listed, owner)).rowcount

        return await self._write(apply)

    async def owners(self) -> set[str]:
        def read(db: sqlite3.Connection) -> set[str]:
            return {row[0] for row in db.execute(_SQL["owners"]) if row[0] is not None}

        return await self._read(read)

    async def recover(self, dead_owners: Collection[str] = ()) -> builtins.list[TaskRecord]:
        dead = json.dumps(sorted(dead_owners))

        def apply(db: sqlite3.Connection) -> builtins.list[TaskRecord]:
            now = self.clock()
            out = []
            for row in db.execute(_SQL["lost"], (now, dead)).fetchall():
                record = recovered(_record(row), now)
                query = "recover_failed" if record.status is TaskStatus.FAILED else "recover_ready"
                db.execute(_SQL[query], (_error_json(record.errors[-1]), now, record.id))
                out.append(record)
            return out

        return await self._write(apply)

    async def get(self, task_id: str) -> TaskRecord:
        def read(db: sqlite3.Connection) -> TaskRecord | None:
            row = db.execute(_SQL["get"], (task_id,)).fetchone()
            return None if row is None else _record(row)

        record = await self._read(read)
        if record is None:
            raise TaskNotFound(task_id)
        return record

    async def list(
        self, status: TaskStatus | None = None, *, limit: int = 100
    ) -> builtins.list[TaskRecord]:
        def read(db: sqlite3.Connection) -> builtins.list[TaskRecord]:
            if status is None:
                rows = db.execute(_SQL["list"], (max(limit, 0),)).fetchall()
            else:
                rows = _list_status(db, status.value, max(limit, 0))
            return [_record(row) for row in rows]

        return await self._read(read)

    async def cancel(self, task_id: str) -> TaskRecord:
        def apply(db: sqlite3.Connection) -> TaskRecord | None:
            db.execute(_SQL["cancel"], (self.clock(), task_id))
            row = db.execute(_SQL["get"], (task_id,)).fetchone()
            return None if row is None else _record(row)

        record = await self._write(apply)
        if record is None:
            raise TaskNotFound(task_id)
        return record

    async def retry(self, task_id: str) -> TaskRecord:
        def apply(db: sqlite3.Connection) -> TaskRecord | None:
            row = db.execute(_SQL["get"], (task_id,)).fetchone()
            if row is None:
                return None
            record = _record(row)
            if record.status in (TaskStatus.FAILED, TaskStatus.CANCELLED) and record.key:
                held = db.execute(_SQL["holder"], (record.key,)).fetchone()
                if held is not None:
                    return _record(held)  # the key is taken again: the other task does this work
            db.execute(_SQL["retry"], (self.clock(), task_id))
            return _record(db.execute(_SQL["get"], (task_id,)).fetchone())

        record = await self._write(apply)
        if record is None:
            raise TaskNotFound(task_id)
        return record

    async def statistics(self) -> TaskStatistics:
        def read(db: sqlite3.Connection) -> TaskStatistics:
            now = self.clock()
            counts = {
                TaskStatus(status).name.lower(): n for status, n in db.execute(_SQL["counts"])
            }
            oldest = db.execute(_SQL["oldest_ready"], (now,)).fetchone()[0]
            return TaskStatistics(
                **counts, oldest_ready_age=0.0 if oldest is None else now - oldest
            )

        return await self._read(read)

    async def prune(self, finished_before: float) -> int:
        def apply(db: sqlite3.Connection) -> int:
            return db.execute(_SQL["prune"], (finished_before,)).rowcount

        return await self._write(apply)


#: How many of the table's newest rows ``_list_status`` walks per task asked for before it
#: turns to the status index.
_RECENT_ROWS_PER_RESULT: Final = 16


def _list_status(db: sqlite3.Connection, status: str, limit: int) -> builtins.list[Any]:
    """The newest ``limit`` rows with ``status``, newest first.

    The status index is ordered by ``finished_at`` within a status, not by ``seq``, so through
    it the newest rows of a status are found by sorting all of that status's entries (17 ms
    for 100,000 succeeded tasks). A status that is common among the newest rows (succeeded,
    usually) is found sooner by walking the table back from its newest row; only when the
    ``_RECENT_ROWS_PER_RESULT * limit`` newest rows hold too few does the index answer, and
    then the status is rare there (and usually rare overall: failed, cancelled).
    """
    window = min(_RECENT_ROWS_PER_RESULT * limit, 2**62)  # an SQLite integer, whatever limit
    rows = db.execute(_SQL["list_status_recent"], (window, status, limit)).fetchall()
    if len(rows) < limit:
        rows = db.execute(_SQL["list_status"], (status, limit)).fetchall()
    return rows


def _mark_succeeded(
    db: sqlite3.Connection, rows: builtins.list[tuple[str, str, str]], now: float
) -> builtins.set[tuple[str, str]]:
    """Successes in one statement per ``_CHUNK`` tasks (``_batch.MarkSucceeded``): ``RETURNING``
    names the tasks changed, so one no longer held (lease lost, cancelled) is simply missing."""
    done: set[tuple[str, str]] = set()
    for at in range(0, len(rows), _CHUNK):
        chunk = rows[at : at + _CHUNK]
        values = [value for row in chunk for value in row]
        done.update(db.execute(_succeed_sql(len(chunk)), (now, *values)).fetchall())
    return done


@attrs.frozen
class _Insert:
    """``enqueue`` of tasks without idempotency keys, as a write the group commit recognises
    and inserts together with the others of its batch: its records are what it stores."""

    records: list[TaskRecord]

    def __call__(self, db: sqlite3.Connection) -> builtins.list[TaskRecord]:
        _insert_rows(db, [_row(record) for record in self.records])
        return self.records


def _insert_many(db: sqlite3.Connection, writes: Sequence[Write]) -> None:
    inserts = [typing.cast(_Insert, write.apply) for write in writes]
    _insert_rows(db, [_row(record) for insert in inserts for record in insert.records])
    for write, insert in zip(writes, inserts, strict=True):
        write.result = insert.records


#: Rows per multi-row statement: few enough that the statement texts (one per row count up to
#: this) stay in ``sqlite3``'s statement cache, and far below SQLite's limit on parameters.
_CHUNK: Final = 50

_INSERT_COLUMNS: Final = (
    "id, name, arguments, status, priority, key, attempts, max_attempts, enqueued_at, "
    "run_after, started_at, owner, lease_until"
)


def _row(r: TaskRecord) -> tuple[Any, ...]:
    """A freshly stored record's values, in the order of ``_INSERT_COLUMNS``."""
    return (
        r.id, r.name, r.arguments, r.status.value, r.priority, r.key, r.attempts,
        r.max_attempts, r.enqueued_at, r.run_after, r.started_at, r.owner, r.lease_until,
    )  # fmt: skip


def _insert_rows(db: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    for at in range(0, len(rows), _CHUNK):
        chunk = rows[at : at + _CHUNK]
        db.execute(_insert_sql(len(chunk)), [value for row in chunk for value in row])


@functools.cache
def _insert_sql(rows: int) -> str:
    one = "(" + ", ".join("?" * 13) + ")"
    return f"INSERT INTO triobg_tasks ({_INSERT_COLUMNS}) VALUES " + ", ".join([one] * rows)


@functools.cache
def _succeed_sql(rows: int) -> str:
    return (
        "UPDATE triobg_tasks SET status = 'succeeded', result = v.column2, finished_at = ?, "
        "lease_until = NULL FROM (VALUES " + ", ".join(["(?, ?, ?)"] * rows) + ") AS v "
        "WHERE triobg_tasks.id = v.column1 AND triobg_tasks.status = 'running' "
        "AND triobg_tasks.owner = v.column3 RETURNING triobg_tasks.id, triobg_tasks.owner"
    )


def store_from_url(url: str) -> TaskStore:
    """The store a ``task_store=`` URL names: ``sqlite:///relative/path`` or
    ``sqlite:////absolute/path`` (three slashes, then the path, as SQLAlchemy spells it), or
    a PostgreSQL URL ``postgresql://user:password@host:5432/database`` (``triobg[postgres]``).

    Raises:
        ValueError: the URL names no store triobg knows.
    """
    scheme, sep, rest = url.partition("://")
    if scheme == "sqlite" and sep and rest.startswith("/") and len(rest) > 1:
        return SQLiteTaskStore(rest[1:])
    if scheme in ("postgresql", "postgres") and sep:
        from ._postgres import PostgresTaskStore  # psycopg is an optional extra

        return PostgresTaskStore(url)
    raise ValueError(
        f"unknown task store URL {url!r}: expected 'sqlite:///path/to/tasks.sqlite3' or "
        "'postgresql://user@host:5432/database'"
    )


def _version(connection: sqlite3.Connection) -> int:
    version: int = connection.execute("PRAGMA user_version").fetchone()[0]
    return version


def _upgrade(connection: sqlite3.Connection, path: Path) -> None:
    """Bring the file's schema to the newest version, in one transaction with its number.

    ``BEGIN IMMEDIATE`` takes the write lock first, so of several processes opening a new file
    at once one migrates and the others then find it done. A file from a newer triobg (a higher
    version than this one knows) is refused rather than written with the wrong assumptions.
    """
    newest = len(_MIGRATIONS)
    if _version(connection) == newest:
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = _version(connection)
        _check_known(version, path)
        for migration in _MIGRATIONS[version:]:
            for statement in migration.split(";"):  # no ``;`` inside the schema's strings
                if statement.strip():
                    connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {newest}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _check_known(version: int, path: Path) -> None:
    if version > len(_MIGRATIONS):
        raise RuntimeError(
            f"the task store {str(path)!r} has schema version {version}, written by a newer "
            f"triobg; this one knows versions up to {len(_MIGRATIONS)}"
        )
