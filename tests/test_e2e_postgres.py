"""Durable tasks on PostgreSQL across real processes: web and worker processes sharing one
database over TCP, and a worker killed with SIGKILL mid-task.

The PostgreSQL server is the tests' own (``_postgres.py``); the app is the one of
``test_e2e_durable.py``, pointed at it. Every wait is on a log line or the store, bounded.
"""

from __future__ import annotations

import collections
import sys
import time
from pathlib import Path

import pytest
import trio
from _postgres import shared_server
from test_e2e_durable import APP_SOURCE, URL, done_tags, kill9, post
from test_e2e_hypercorn import STARTUP, server_process

from triobg import NewTask, PostgresTaskStore, TaskStatus
from triobg._durable._postgres import _MIGRATIONS as POSTGRES_MIGRATIONS
from triobg._durable._sqlite import _MIGRATIONS as SQLITE_MIGRATIONS

pytestmark = pytest.mark.e2e

PYTHON = sys.executable
WEB = [PYTHON, "-m", "triobg", "durableapp:app", "--bind", "127.0.0.1:0"]
WORKER = [PYTHON, "-m", "triobg", "worker", "durableapp:app"]


def setup(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "durableapp.py").write_text(APP_SOURCE)
    return {"TASK_STORE": shared_server().new_database(), "TASK_DONE": str(tmp_path / "done.log")}


class TestManyProcesses:
    async def test_web_and_worker_processes_run_each_task_once(self, tmp_path: Path) -> None:
        """A web process and two dedicated workers share the queue: 60 tasks, each run once."""
        env = setup(tmp_path)
        async with (
            server_process(WEB, tmp_path, **env, TASK_DELAY="0.05") as web,
            server_process(WORKER, tmp_path, **env, TASK_DELAY="0.05") as one,
            server_process(WORKER, tmp_path, **env, TASK_DELAY="0.05") as two,
        ):
            _, port = await web.url(URL)
            for worker in (one, two):
                await worker.wait_for("durable-task worker running", timeout=STARTUP)
            async with trio.open_nursery() as nursery:
                for n in range(60):
                    nursery.start_soon(post, port, f"t{n}")
            with trio.fail_after(30):
                while len(done_tags(tmp_path)) < 60:  # noqa: ASYNC110 - a file
                    await trio.sleep(0.05)
            ran = {
                name: sum("started" in line and "task t" in line for line in process.lines)
                for name, process in (("web", web), ("one", one), ("two", two))
            }
        counts = collections.Counter(done_tags(tmp_path))
        assert sorted(counts) == sorted(f"t{n}" for n in range(60))
        assert set(counts.values()) == {1}
        assert sum(ran.values()) == 60
        assert sum(1 for n in ran.values() if n) >= 2, ran  # the work really was shared

    async def test_a_killed_worker_task_is_taken_over_by_another(self, tmp_path: Path) -> None:
        """kill -9 of the worker running a task: the other worker runs it to completion."""
        env = setup(tmp_path)
        store = PostgresTaskStore(env["TASK_STORE"])
        try:
            await store.enqueue(
                [
                    NewTask(
                        id="slow",
                        name="durableapp.record",
                        arguments='{"tag": "slow"}',
                        enqueued_at=time.time(),
                        max_attempts=3,
                    )
                ]
            )
            async with server_process(WORKER, tmp_path, **env, TASK_DELAY="3600") as first:
                await first.wait_for("task slow started", timeout=STARTUP)
                async with server_process(WORKER, tmp_path, **env, TASK_DELAY="0") as second:
                    await second.wait_for("durable-task worker running", timeout=STARTUP)
                    kill9(first)
                    killed = trio.current_time()
                    await second.wait_for("task slow done", timeout=STARTUP)
                    takeover = trio.current_time() - killed
                    with trio.fail_after(STARTUP):  # the result is recorded just after
                        while (record := await store.get("slow")).status is TaskStatus.RUNNING:  # noqa: ASYNC110 - another process
                            await trio.sleep(0.01)
        finally:
            await store.aclose()
        assert record.status is TaskStatus.SUCCEEDED
        assert record.attempts == 2
        assert record.errors[0].type == "triobg.WorkerLost"
        assert done_tags(tmp_path) == ["slow"]
        assert takeover < 10  # same machine: the dead owner is seen, no lease to wait out


class TestMigrateCommand:
    def test_migrate_creates_the_schema_once_for_operators(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``python -m triobg tasks module:app migrate``: the tables exist afterwards, at the
        newest version, and running it again changes nothing (PostgreSQL, then SQLite)."""
        from triobg._cli import main

        for name, value in setup(tmp_path).items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)
        monkeypatch.syspath_prepend(str(tmp_path))
        # Built from this directory and this store, not taken from an earlier test's import.
        monkeypatch.delitem(sys.modules, "durableapp", raising=False)
        for _ in range(2):
            assert main(["tasks", "durableapp:app", "migrate"]) == 0
            out = capsys.readouterr().out
            assert "PostgresTaskStore(" in out
            assert out.endswith(f"is at schema version {len(POSTGRES_MIGRATIONS)}\n")
        monkeypatch.setenv("TASK_STORE", f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
        monkeypatch.delitem(sys.modules, "durableapp")  # built again, on the SQLite store
        assert main(["tasks", "durableapp:app", "migrate"]) == 0
        out = capsys.readouterr().out
        assert "SQLiteTaskStore(" in out
        assert out.endswith(f"is at schema version {len(SQLITE_MIGRATIONS)}\n")
        assert (tmp_path / "fresh.sqlite3").exists()
