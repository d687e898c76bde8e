"""``def`` tasks cut off at shutdown under plain ``hypercorn --worker-class trio``.

hypercorn cancels the requests at its graceful timeout (3 s by default; 1 s here), and the
durable worker releases what still runs at the app's drain deadline; a ``def`` task cannot be
interrupted and runs on in its thread. These tests check, over a real hypercorn process, that
the interpreter then waits for it at exit (naming it), and names it when it gives up. The tasks
wait for a ``go`` file the test creates once the process says it is waiting: no sleeps.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
import trio
from test_e2e_hypercorn import HYPERCORN, STARTUP, ServerProcess, server_process

from triobg import SQLiteTaskStore, TaskStatus
from triobg.testing import HTTP11Connection

pytestmark = pytest.mark.e2e

APP_SOURCE = """\
import os
import time

import triobg

app = triobg.App(
    drain_timeout=float(os.environ["APP_DRAIN"]), task_store=os.environ["TASK_STORE"]
)


def work(tag):
    print(f"task {tag} started", flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists("go") and time.monotonic() < deadline:
        time.sleep(0.01)
    if os.path.exists("go"):
        with open("done.log", "a") as done:
            done.write(tag + "\\n")


durable_work = app.task(name="durable_work")(work)


@app.post("/plain/{tag}")
async def plain(tag: str, tasks: triobg.BackgroundTasks):
    tasks.add_task(work, tag)
    return {"id": None}


@app.post("/durable/{tag}")
async def durable(tag: str, tasks: triobg.BackgroundTasks):
    return {"id": tasks.add_task(durable_work, tag).id}
"""

ARGS = [HYPERCORN, "--worker-class", "trio", "--bind", "127.0.0.1:0"]
ARGS += ["--graceful-timeout", "1", "exitapp:app"]


def setup(tmp_path: Path, drain: float) -> dict[str, str]:
    (tmp_path / "exitapp.py").write_text(APP_SOURCE)
    return {"APP_DRAIN": str(drain), "TASK_STORE": f"sqlite:///{tmp_path / 'tasks.sqlite3'}"}


def done_tags(tmp_path: Path) -> list[str]:
    path = tmp_path / "done.log"
    return path.read_text().split() if path.exists() else []


async def post(server: ServerProcess, target: str) -> str | None:
    _, port = await server.url()
    async with await HTTP11Connection.connect("127.0.0.1", port, timeout=10) as conn:
        response = await conn.request("POST", target)
        assert response.status == 200, response.body
        task_id: str | None = response.json()["id"]
        return task_id


class TestExitWait:
    async def test_a_def_task_cut_off_by_the_graceful_timeout_finishes_before_exit(
        self, tmp_path: Path
    ) -> None:
        """The process names the running ``def`` task, waits for it, then exits cleanly."""
        env = setup(tmp_path, drain=30)
        async with server_process(ARGS, tmp_path, **env) as server:
            await post(server, "/plain/p1")
            await server.wait_for("task p1 started")
            server.signal(signal.SIGTERM)
            await server.wait_for(
                r"waiting up to \d+\.\d s for background task exitapp\.work of POST /plain/p1, "
                "still running in its worker thread",
                timeout=STARTUP,
            )
            assert done_tags(tmp_path) == []  # the process is still there, waiting
            (tmp_path / "go").touch()
            assert await server.wait_exit() == 0
            out = server.output
        assert done_tags(tmp_path) == ["p1"]
        assert "background task exitapp.work of POST /plain/p1 finished in its worker" in out

    async def test_past_its_drain_time_the_exit_names_the_task_it_stops(
        self, tmp_path: Path
    ) -> None:
        """A ``def`` task still running after ``drain_timeout`` more is named as stopped."""
        env = setup(tmp_path, drain=1)
        async with server_process(ARGS, tmp_path, **env) as server:
            await post(server, "/plain/p2")
            await server.wait_for("task p2 started")
            server.signal(signal.SIGTERM)
            assert await server.wait_exit() == 0
            out = server.output
        assert done_tags(tmp_path) == []
        assert re.search(
            r"background task exitapp\.work of POST /plain/p2 is still running in its worker "
            r"thread after its drain time: the process exits now and stops it mid-work",
            out,
        ), out

    async def test_a_released_durable_def_task_finishes_before_exit(self, tmp_path: Path) -> None:
        """Released at the drain deadline (READY again), it still finishes in its thread."""
        env = setup(tmp_path, drain=3)
        async with server_process(ARGS, tmp_path, **env) as server:
            task_id = await post(server, "/durable/d1")
            await server.wait_for("task d1 started")
            server.signal(signal.SIGTERM)
            await server.wait_for(f"durable task {task_id} released at shutdown", timeout=STARTUP)
            await server.wait_for(
                rf"waiting up to \d+\.\d s for durable task durable_work \(id {task_id}, "
                r"attempt 1/1\), still running in its worker thread",
                timeout=STARTUP,
            )
            (tmp_path / "go").touch()
            with trio.fail_after(STARTUP):
                assert await server.wait_exit() == 0
            assert "finished in its worker thread" in server.output
        assert done_tags(tmp_path) == ["d1"]
        store = SQLiteTaskStore(tmp_path / "tasks.sqlite3")
        record = await store.get(task_id or "")
        await store.aclose()
        # Given back at the deadline: another worker may run it again (at least once).
        assert (record.status, record.attempts) == (TaskStatus.READY, 0)
