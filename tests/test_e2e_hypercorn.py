"""A triobg app under hypercorn's own command line, as a separate process.

``hypercorn --worker-class trio module:app`` knows nothing of triobg: it never starts the drain
before the connections are gone, and its ``--graceful-timeout`` (3 s by default) is the only
time tasks get once shutdown starts. These tests send SIGTERM to a real hypercorn and check that
each background task either completed or was named in the log, also with two worker processes.

The helpers here (``ServerProcess``, ``APP_SOURCE``) are shared with ``test_cli.py``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from triobg.testing import HTTP11Connection

pytestmark = pytest.mark.e2e

HYPERCORN = str(Path(sys.executable).with_name("hypercorn"))
STARTUP = 20  # seconds a fresh interpreter may take to import and listen (slow CI machines)
WAIT = 10

# The app the subprocesses serve. Each task prints when it starts, so a test can wait for that
# line instead of guessing with a sleep.
APP_SOURCE = """\
import os
import time

import trio

import triobg

app = triobg.App(drain_timeout=float(os.environ.get("APP_DRAIN", "1")))


async def quick(tag):
    print(f"task quick {tag} started", flush=True)
    await trio.sleep(0.1)
    print(f"task quick {tag} completed", flush=True)


async def forever(tag):
    print(f"task forever {tag} started in {os.getpid()}", flush=True)
    await trio.sleep_forever()


async def slow(tag):
    print(f"task slow {tag} started", flush=True)
    await trio.sleep(1.5)
    print(f"task slow {tag} completed", flush=True)


@app.get("/quick/{tag}")
async def quick_route(tag: str, tasks: triobg.BackgroundTasks):
    tasks.add_task(quick, tag)
    return {"pid": os.getpid()}


@app.get("/forever/{tag}")
async def forever_route(tag: str, tasks: triobg.BackgroundTasks):
    tasks.add_task(forever, tag)
    return {"pid": os.getpid()}


@app.get("/hold")
async def hold():
    # Blocks this worker's whole event loop until the test creates ``release`` (10 s at most),
    # so that meanwhile a new connection can only be accepted by another worker.
    print(f"holding in {os.getpid()}", flush=True)
    deadline = time.monotonic() + 10
    while not os.path.exists("release") and time.monotonic() < deadline:
        time.sleep(0.005)
    return {"pid": os.getpid()}


@app.get("/big")
async def big():
    return triobg.Response(b"x" * (20 * 1024 * 1024), media_type="application/octet-stream")


@app.get("/slow/{tag}")
async def slow_route(tag: str, tasks: triobg.BackgroundTasks):
    tasks.add_task(slow, tag)
    return {"pid": os.getpid()}


def make_app():
    return app


def make_number():
    return 42


not_an_app = 42
"""


def write_app(directory: Path, name: str = "bgapp") -> Path:
    path = directory / f"{name}.py"
    path.write_text(APP_SOURCE)
    return path


def free_port() -> int:
    """A port nothing listens on right now (for runners that cannot report port 0)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A child process whose combined output is collected line by line as it arrives."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = trio.Event()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def _collect(self) -> None:
        assert self.process.stdout is not None
        pending = b""
        async for data in self.process.stdout:
            pending += data
            *complete, pending = pending.split(b"\n")
            self.lines.extend(line.decode(errors="replace") for line in complete)
            self._changed.set()
            self._changed = trio.Event()
        if pending:
            self.lines.append(pending.decode(errors="replace"))
        self._changed.set()

    async def wait_for(self, pattern: str, *, count: int = 1, timeout: float = WAIT) -> list[str]:
        """Wait until ``count`` output lines match ``pattern``; returns the matching lines."""
        regex = re.compile(pattern)
        with trio.fail_after(timeout):
            while True:
                found = [line for line in self.lines if regex.search(line)]
                if len(found) >= count:
                    return found
                if self.process.returncode is not None and self._changed.is_set():
                    raise AssertionError(f"exited before {pattern!r}:\n{self.output}")
                await self._changed.wait()

    async def url(self, pattern: str = r"(https?://127\.0\.0\.1:\d+)") -> tuple[str, int]:
        line = (await self.wait_for(pattern, timeout=STARTUP))[0]
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert match is not None
        return "127.0.0.1", int(match.group(1))

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def wait_exit(self, timeout: float = WAIT) -> int:
        with trio.fail_after(timeout):
            return await self.process.wait()


@asynccontextmanager
async def server_process(args: list[str], cwd: Path, **env: str) -> AsyncIterator[ServerProcess]:
    """Run ``args`` in ``cwd``; always killed and reaped on the way out, even on failure."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    process = await trio.lowlevel.open_process(
        args,
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a kill of the group also reaches hypercorn's workers
    )
    child = ServerProcess(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child._collect)
            try:
                yield child
            finally:
                with trio.CancelScope(shield=True):
                    if process.returncode is None:
                        os.killpg(process.pid, signal.SIGKILL)
                    with trio.move_on_after(WAIT):
                        await process.wait()
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
                await process.wait()
            assert process.stdout is not None
            await process.stdout.aclose()


async def get(host: str, port: int, target: str) -> int:
    """GET ``target`` on a new connection; returns the pid that answered."""
    async with await HTTP11Connection.connect(host, port, timeout=WAIT) as conn:
        response = await conn.request("GET", target)
        assert response.status == 200, response.body
        pid: int = response.json()["pid"]
        return pid


class TestHypercornCommandLine:
    async def test_sigterm_completes_or_names_every_task(self, tmp_path: Path) -> None:
        """With --graceful-timeout above the drain, quick tasks finish and stuck ones are named."""
        write_app(tmp_path)
        args = [HYPERCORN, "--worker-class", "trio", "--bind", "127.0.0.1:0"]
        args += ["--graceful-timeout", "2", "bgapp:app"]  # whole seconds only
        async with server_process(args, tmp_path, APP_DRAIN="1") as server:
            host, port = await server.url()
            await get(host, port, "/forever/f1")
            await get(host, port, "/quick/q1")
            await server.wait_for("task forever f1 started")
            await server.wait_for("task quick q1 started")
            server.signal(signal.SIGTERM)
            assert await server.wait_exit() == 0
            out = server.output
        assert "task quick q1 completed" in out
        assert re.search(r"bgapp\.forever of GET /forever/f1 cancelled while running", out), out

    async def test_two_workers_each_drain_their_own_tasks(self, tmp_path: Path) -> None:
        """hypercorn --workers 2: every worker names the tasks it was running at shutdown."""
        async with hypercorn_two_workers(tmp_path, graceful_timeout=1) as (server, port):
            owner = await spread_over_workers(server, "127.0.0.1", port, tmp_path)
            server.signal(signal.SIGTERM)
            assert await server.wait_exit(timeout=WAIT + 5) == 0
            out = server.output
        for tag in owner:
            assert re.search(rf"forever of GET /forever/{tag} cancelled", out), (tag, out)

    async def test_a_slow_reader_is_stopped_at_the_graceful_timeout(self, tmp_path: Path) -> None:
        """The response to a slow reader stops after the slice in flight at the deadline.

        hypercorn's writes are shielded from its own cancellation; a 20 MB body handed over in
        one message kept the worker alive for as long as the client took (minutes).
        """
        write_app(tmp_path)
        args = [HYPERCORN, "--worker-class", "trio", "--bind", "127.0.0.1:0"]
        args += ["--graceful-timeout", "1", "bgapp:app"]
        async with server_process(args, tmp_path) as server:
            host, port = await server.url()
            async with slow_reader(host, port):
                server.signal(signal.SIGTERM)
                start = trio.current_time()
                assert await server.wait_exit() == 0
                elapsed = trio.current_time() - start
        assert elapsed < 1 + 3, elapsed  # one 64 KiB slice at 100 KB/s is 0.65 s

    async def test_sigterm_to_the_whole_process_group_still_drains(self, tmp_path: Path) -> None:
        """A service manager signals every process at once (systemd's default): no task lost.

        The worker used to die of its own SIGTERM at once, before any graceful shutdown.
        """
        write_app(tmp_path)
        args = [HYPERCORN, "--worker-class", "trio", "--bind", "127.0.0.1:0"]
        args += ["--graceful-timeout", "3", "bgapp:app"]
        async with server_process(args, tmp_path) as server:
            host, port = await server.url()
            await get(host, port, "/slow/s1")
            await server.wait_for("task slow s1 started")
            os.killpg(server.process.pid, signal.SIGTERM)
            assert await server.wait_exit() == 0
            out = server.output
        assert "task slow s1 completed" in out, out
        assert "SIGTERM received by a hypercorn worker" in out, out
        assert "background drain finished: 1 completed" in out, out

    async def test_a_busy_worker_outlives_the_idle_one(self, tmp_path: Path) -> None:
        """The idle worker exits first and the runner SIGTERMs the busy one: it drains anyway.

        hypercorn's runner sets its shutdown event, waits for the *first* worker to exit and
        then terminates the rest; a worker still draining used to die there with its tasks
        unnamed. The drain summary also has to reach hypercorn's output, where nothing
        configures logging.
        """
        async with hypercorn_two_workers(tmp_path, graceful_timeout=3) as (server, port):
            async with await HTTP11Connection.connect("127.0.0.1", port, timeout=WAIT) as conn:
                for target in ("/slow/s1", "/forever/f1"):  # one connection: one worker
                    response = await conn.request("GET", target)
                    assert response.status == 200, response.body
            await server.wait_for("task slow s1 started")
            await server.wait_for("task forever f1 started")
            server.signal(signal.SIGTERM)
            assert await server.wait_exit(timeout=WAIT + 5) == 0
            out = server.output
        assert "task slow s1 completed" in out, out
        assert re.search(r"bgapp\.forever of GET /forever/f1 cancelled while running", out), out
        summaries = re.findall(r"INFO triobg\.background: background drain finished", out)
        assert len(summaries) == 2, out


@asynccontextmanager
async def hypercorn_two_workers(
    directory: Path, graceful_timeout: int
) -> AsyncIterator[tuple[ServerProcess, int]]:
    """Plain ``hypercorn --workers 2`` serving ``bgapp:app`` on a free port, both listening."""
    write_app(directory)
    port = free_port()
    args = [HYPERCORN, "--worker-class", "trio", "--workers", "2", "--bind", f"127.0.0.1:{port}"]
    args += ["--graceful-timeout", str(graceful_timeout), "bgapp:app"]
    async with server_process(args, directory) as server:
        await server.wait_for(r"Running on http://127\.0\.0\.1", count=2, timeout=STARTUP)
        yield server, port


@asynccontextmanager
async def slow_reader(host: str, port: int) -> AsyncIterator[None]:
    """A client taking ``GET /big`` (20 MB) 2 KB every 20 ms: three minutes' worth.

    Its small receive buffer keeps the server's writes blocked on it. Yields once the response
    is flowing; reads on (bounded) until the server closes the connection.
    """
    client = trio.socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with client:
        await client.connect((host, port))
        await client.send(b"GET /big HTTP/1.1\r\nhost: test\r\n\r\n")
        with trio.fail_after(WAIT):
            assert (await client.recv(2048)).startswith(b"HTTP/1.1 200")

        async def read_slowly() -> None:
            received = 0
            with trio.fail_after(WAIT * 3):
                while data := await client.recv(2048):
                    received += len(data)
                    await trio.sleep(0.02)  # the client's own pace, not a wait for the server
            assert received < 20 * 1024 * 1024  # cut off, not served to the end

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_slowly)
            yield


async def spread_over_workers(
    server: ServerProcess, host: str, port: int, directory: Path | None
) -> dict[str, int]:
    """Start a ``forever`` task on each of two workers; returns tag -> pid.

    Workers sharing one listening socket (hypercorn's runner): the kernel hands a new
    connection to whichever worker accepts first, and on a busy machine that can be the same
    worker many times in a row. So the first worker's event loop is held by a blocking request
    on its own keep-alive connection while the second connection is made: only the other worker
    can accept it. The hold ends when the test creates ``release`` in ``directory``.

    Workers with a socket each (``SO_REUSEPORT``, ``directory=None``): the kernel picks the
    worker by a hash of each new connection's addresses, so holding one would only queue
    connections for it; new connections are made until both workers have one (the odds of 60
    in a row on one worker are 2**-59).
    """
    if directory is None:
        owner: dict[str, int] = {}
        for n in range(60):
            owner[f"w{n}"] = await get(host, port, f"/forever/w{n}")
            await server.wait_for(f"task forever w{n} started")
            if len(set(owner.values())) == 2:
                return owner
        pytest.fail(f"60 connections all went to one worker: {set(owner.values())}")
    async with await HTTP11Connection.connect(host, port, timeout=WAIT) as first:
        response = await first.request("GET", "/forever/w0")
        assert response.status == 200, response.body
        owner = {"w0": response.json()["pid"]}
        await server.wait_for("task forever w0 started")
        await first.send_request("GET", "/hold")
        await server.wait_for(f"holding in {owner['w0']}")
        try:
            owner["w1"] = await get(host, port, "/forever/w1")
            await server.wait_for("task forever w1 started")
        finally:
            (directory / "release").touch()
        assert (await first.read_response()).status == 200
    assert owner["w0"] != owner["w1"], owner
    return owner
