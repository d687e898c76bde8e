"""Soak and shutdown under load, over real sockets on 127.0.0.1.

``TestSoak`` runs thousands of keep-alive requests over 16 concurrent connections to
``serve_live`` (real hypercorn), each request adding an ``async def`` and a ``def`` task, and
checks that every task of every request ran exactly once and that memory, open files, trio tasks
and the app's task books are flat between two phases after a warm-up.

The default run is short (6,000 requests, about 20 seconds). Set ``TRIOBG_SOAK=long`` for the long
version (20,000 requests)::

    TRIOBG_SOAK=long pytest tests/test_soak.py

``TestShutdownUnderLoad`` sends SIGTERM to ``python -m triobg`` and to
``hypercorn --worker-class trio`` while clients keep sending requests and tasks are running: every
task the server accepted either completed, failed, or was cancelled and named in the log (none is
silent), and the process exits within the drain deadline plus a small margin.
"""

from __future__ import annotations

import gc
import os
import re
import signal
import sys
from array import array
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import attrs
import pytest
import trio
import trio.testing
from _support import WAIT, assert_books_balance, rss_kib
from hypercorn.config import Config
from test_e2e_hypercorn import HYPERCORN, STARTUP, ServerProcess, server_process

from triobg import App, BackgroundTasks, Body, StreamingResponse
from triobg.testing import HTTP11Connection, HTTP11Error, serve_live

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LONG = os.environ.get("TRIOBG_SOAK") == "long"
REQUESTS = 20_000 if LONG else 6_000
CONNECTIONS = 16
TASKS_PER_REQUEST = 2


@attrs.define
class Sample:
    """What is measured at the end of a phase, once every task of the phase has finished."""

    rss_kib: int
    gc_objects: int
    open_fds: int
    trio_tasks: int


async def sample(app: App) -> Sample:
    with trio.fail_after(WAIT):
        await app.background.wait_idle()
        # The server shares this trio run: let every request task finish its way out (they
        # never block), so the sample does not count tasks that are merely exiting.
        await trio.testing.wait_all_tasks_blocked()
    gc.collect()
    return Sample(
        rss_kib=rss_kib(),
        gc_objects=len(gc.get_objects()),
        open_fds=len(os.listdir("/proc/self/fd")),
        trio_tasks=trio.lowlevel.current_statistics().tasks_living,
    )


def soak_app(hits: array[int]) -> App:
    app = App()

    async def count_async(n: int) -> None:
        hits[n * TASKS_PER_REQUEST] += 1

    def count_sync(n: int) -> None:
        hits[n * TASKS_PER_REQUEST + 1] += 1  # each slot is only ever touched by one task

    @app.get("/get/{n}")
    async def get(n: int, tasks: BackgroundTasks, q: str = "") -> dict[str, Any]:
        tasks.add_task(count_async, n)
        tasks.add_task(count_sync, n)
        return {"n": n, "q": q}

    @app.post("/post/{n}")
    async def post(
        n: int, tags: Annotated[list[str], Body()], tasks: BackgroundTasks
    ) -> dict[str, Any]:
        tasks.add_task(count_sync, n)
        tasks.add_task(count_async, n)
        return {"n": n, "tags": len(tags)}

    @app.get("/stream/{n}")
    def stream(n: int, tasks: BackgroundTasks) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield b"%d:%d\n" % (n, i)

        tasks.add_task(count_async, n)
        tasks.add_task(count_sync, n)
        return StreamingResponse(chunks(), media_type="text/plain")

    return app


async def one_request(conn: HTTP11Connection, n: int) -> None:
    kind = n % 3
    if kind == 0:
        response = await conn.request("GET", f"/get/{n}?q=soak{n}")
        assert response.json() == {"n": n, "q": f"soak{n}"}, response
    elif kind == 1:
        response = await conn.request("POST", f"/post/{n}", json=["a", "b", str(n)])
        assert response.json() == {"n": n, "tags": 3}, response
    else:
        response = await conn.request("GET", f"/stream/{n}")
        assert response.body == b"".join(b"%d:%d\n" % (n, i) for i in range(3)), response


async def run_phase(connections: list[HTTP11Connection], first: int, count: int) -> None:
    """Requests ``first .. first+count-1``, spread over every connection at once."""

    async def worker(conn: HTTP11Connection, offset: int) -> None:
        for n in range(first + offset, first + count, len(connections)):
            await one_request(conn, n)

    with trio.fail_after(max(30.0, count / 50)):
        async with trio.open_nursery() as nursery:
            for offset, conn in enumerate(connections):
                nursery.start_soon(worker, conn, offset)


class TestSoak:
    async def test_every_task_runs_once_and_memory_stays_flat(self) -> None:
        """Thousands of requests over 16 keep-alive connections: each of their tasks ran
        exactly once, and RSS, objects, files, trio tasks and the books are flat after warm-up."""
        hits = array("I", [0]) * (REQUESTS * TASKS_PER_REQUEST)
        app = soak_app(hits)
        warm_up = REQUESTS // 4
        phase = (REQUESTS - warm_up) // 2
        config = Config()
        config.keep_alive_max_requests = REQUESTS  # hypercorn closes at 1,000 by default
        async with serve_live(app, config=config) as server:
            connections = [await server.connect(timeout=WAIT) for _ in range(CONNECTIONS)]
            try:
                began = trio.current_time()
                await run_phase(connections, 0, warm_up)
                start = await sample(app)
                await run_phase(connections, warm_up, phase)
                first = await sample(app)
                await run_phase(connections, warm_up + phase, REQUESTS - warm_up - phase)
                second = await sample(app)
                took = trio.current_time() - began
            finally:
                for conn in connections:
                    await conn.aclose()
        print(  # shown with ``pytest -s``; the figures the issue asks for
            f"\nsoak: {REQUESTS} requests, {REQUESTS * TASKS_PER_REQUEST} tasks, "
            f"{CONNECTIONS} connections, {took:.1f} s ({REQUESTS / took:.0f} req/s); "
            f"after phase 2: {first}; after phase 3: {second}"
        )
        # Every task of every request ran, and ran once.
        assert min(hits) == max(hits) == 1, [i for i, h in enumerate(hits) if h != 1][:20]
        stats = app.background.statistics()
        assert stats.accepted == stats.completed == REQUESTS * TASKS_PER_REQUEST, stats
        assert stats.live_requests == stats.queued == stats.running == 0, stats
        assert_books_balance(app)
        # Flat between two equal phases after warm-up. RSS tolerates allocator noise (the
        # client runs in this process too); a leak of one object per request would show in the
        # object count, which is exact.
        assert second.rss_kib - first.rss_kib < 4096 + phase // 2, (first, second)
        # hypercorn's connection state and the client's buffers wobble by up to about a
        # thousand objects either way (measured: -990 to +860); a leak of even one object per
        # request adds ``phase`` (2,250) to *every* phase. So at least one of the two equal
        # phases must grow by under half a phase: noise alone fails that only if it is high
        # twice in a row. (In-process, 3,000 requests leave no per-request growth at all.)
        growth = (first.gc_objects - start.gc_objects, second.gc_objects - first.gc_objects)
        assert min(growth) < phase // 2, (start, first, second)
        assert second.open_fds == first.open_fds, (first, second)
        # hypercorn restarts a per-connection idle-timeout task, so the count of living tasks
        # moves by up to one per connection; a task leaked per request would move by hundreds.
        assert abs(second.trio_tasks - first.trio_tasks) <= CONNECTIONS, (first, second)


# --- shutdown under load -----------------------------------------------------------------------

SHUTDOWN_APP = """\
import os
import sys
import time

import trio

import triobg

app = triobg.App(drain_timeout=float(os.environ["APP_DRAIN"]))


def say(line):
    # One write per line (print writes the newline separately), so that lines from worker
    # threads and log records on stderr never interleave within a line.
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()


async def quick(tag):
    await trio.sleep(0.05)
    say(f"task {tag} completed")


def blocking(tag):
    time.sleep(0.02)
    say(f"task {tag} completed")


async def slow(tag):
    say(f"task {tag} started")
    await trio.sleep(60)
    say(f"task {tag} completed")


async def fail(tag):
    raise RuntimeError(f"task {tag} failed on purpose")


KINDS = {"quick": quick, "sync": blocking, "slow": slow, "fail": fail}


@app.get("/work/{kind}/{tag}")
async def work(kind: str, tag: str, tasks: triobg.BackgroundTasks):
    tasks.add_task(KINDS[kind], tag)
    say(f"accepted {tag}")
    return {"tag": tag}
"""

KIND_CYCLE = ["quick", "sync", "quick", "fail", "quick", "sync", "quick", "slow"]


@attrs.define
class Load:
    """Clients that keep sending requests until the server stops answering."""

    host: str
    port: int
    answered: set[str] = attrs.Factory(set)
    sent: int = 0

    async def client(self, number: int) -> None:
        n = 0
        while True:
            try:
                conn = await HTTP11Connection.connect(self.host, self.port, timeout=WAIT)
            except OSError:
                return  # the server no longer listens
            async with conn:
                try:
                    while True:
                        tag = f"c{number}n{n}"
                        kind = KIND_CYCLE[n % len(KIND_CYCLE)]
                        n += 1
                        self.sent += 1
                        response = await conn.request("GET", f"/work/{kind}/{tag}")
                        assert response.status == 200, response
                        self.answered.add(tag)
                except (HTTP11Error, OSError, trio.BrokenResourceError):
                    continue  # connection closed by the shutdown: try a new one


def outcomes(output: str, module: str) -> dict[str, list[str]]:
    """For each accepted tag, every outcome the server reported for its task."""
    found: dict[str, list[str]] = {
        tag: [] for tag in re.findall(r"^accepted (\S+)$", output, flags=re.MULTILINE)
    }
    for tag in re.findall(r"^task (\S+) completed$", output, flags=re.MULTILINE):
        found.setdefault(tag, []).append("completed")
    pattern = rf"background task {module}\.\w+ of GET /work/\w+/(\S+) (failed|cancelled|discarded)"
    for tag, outcome in re.findall(pattern, output):
        found.setdefault(tag, []).append(outcome)
    return found


async def load_then_sigterm(server: ServerProcess, host: str, port: int) -> tuple[Load, float]:
    """Run 8 clients until 150 tasks are accepted and slow ones run, then SIGTERM; returns the
    load and the seconds from SIGTERM to exit."""
    load = Load(host, port)
    with trio.fail_after(STARTUP + 2 * WAIT):  # the clients stop once nothing listens
        async with trio.open_nursery() as nursery:
            for number in range(8):
                nursery.start_soon(load.client, number)
            await server.wait_for(r"^accepted ", count=150, timeout=STARTUP)
            await server.wait_for(r"^task \S+ started$", count=2)
            server.signal(signal.SIGTERM)
            began = trio.current_time()
            exit_code = await server.wait_exit(timeout=WAIT + 5)
            took = trio.current_time() - began
    assert exit_code == 0, server.output[-3000:]
    return load, took


def check_nothing_silent(output: str, load: Load, module: str) -> dict[str, int]:
    found = outcomes(output, module)
    silent = [tag for tag, seen in found.items() if not seen]
    twice = {tag: seen for tag, seen in found.items() if len(seen) > 1}
    assert not silent, (silent[:10], output[-3000:])
    assert not twice, twice
    assert load.answered <= set(found), load.answered - set(found)
    tally = {"completed": 0, "failed": 0, "cancelled": 0, "discarded": 0}
    for (outcome,) in found.values():
        tally[outcome] += 1
    assert tally["cancelled"] >= 2 and tally["failed"] >= 1 and tally["completed"] >= 100, tally
    return tally


class TestShutdownUnderLoad:
    async def test_sigterm_to_the_cli_loses_nothing_silently(self, tmp_path: Path) -> None:
        """``python -m triobg``: SIGTERM under load; each accepted task completed, failed or
        was named as cancelled, and the process exits by the drain deadline plus a margin."""
        (tmp_path / "bgsoak.py").write_text(SHUTDOWN_APP)
        drain = 1.0
        args = [sys.executable, "-m", "triobg", "bgsoak:app", "--bind", "127.0.0.1:0"]
        async with server_process(args, tmp_path, APP_DRAIN=str(drain)) as server:
            host, port = await server.url(r"serving on (http://127\.0\.0\.1:\d+)")
            load, took = await load_then_sigterm(server, host, port)
            output = server.output
        tally = check_nothing_silent(output, load, "bgsoak")
        summary = re.search(
            r"drain finished: (\d+) completed, (\d+) failed, (\d+) cancelled, (\d+) discarded",
            output,
        )
        assert summary is not None, output[-3000:]
        assert tuple(map(int, summary.groups())) == (
            tally["completed"],
            tally["failed"],
            tally["cancelled"],
            tally["discarded"],
        )
        print(f"\nCLI shutdown: {load.sent} sent, {tally}, exit {took:.2f} s after SIGTERM")
        assert took < drain + 0.25 + 2.0, took

    async def test_sigterm_to_hypercorn_loses_nothing_silently(self, tmp_path: Path) -> None:
        """``hypercorn --worker-class trio``: the same, bounded by its ``--graceful-timeout``."""
        (tmp_path / "bgsoak.py").write_text(SHUTDOWN_APP)
        graceful = 2
        args = [HYPERCORN, "--worker-class", "trio", "--bind", "127.0.0.1:0"]
        args += ["--graceful-timeout", str(graceful), "bgsoak:app"]
        async with server_process(args, tmp_path, APP_DRAIN="1") as server:
            host, port = await server.url()
            load, took = await load_then_sigterm(server, host, port)
            output = server.output
        tally = check_nothing_silent(output, load, "bgsoak")
        print(f"\nhypercorn shutdown: {load.sent} sent, {tally}, exit {took:.2f} s after SIGTERM")
        assert took < graceful + 2.0, took
