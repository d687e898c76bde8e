# Hypercorn subprocesses for the HTTP benchmarks, and the CPU time they use.
#
# Each app is served by ``hypercorn --worker-class trio -w 1`` on 127.0.0.1 and a free port, its
# task kind passed through the environment, pinned with ``taskset`` to a core of its own when the
# machine has two. ``-w 1`` forks a worker process, so CPU time is summed over the process tree.
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import attrs
import trio

from benchmarks import _client
from benchmarks.apps import _work

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Seconds a server may take to import its app and answer ``GET /count``.
STARTUP_TIMEOUT = 30.0
#: Seconds between SIGTERM and SIGKILL when stopping a server.
STOP_TIMEOUT = 10.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerError(Exception):
    """A server did not come up; the message carries the tail of its output."""


@attrs.frozen
class Cores:
    """Where to pin processes: taskset CPU lists for ``server`` and ``load``, None for "anywhere".

    Two different cores keep the load generator from stealing the server's CPU, so the server's
    throughput is what we measure.
    """

    server: str | None
    load: str | None

    @classmethod
    def detect(cls) -> Cores:
        """Use the first two CPUs this process may run on, if there are two and taskset exists."""
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) >= 2 and shutil.which("taskset"):
            return cls(str(cpus[0]), str(cpus[1]))
        return cls(None, None)


def pinned(command: Sequence[str], cpus: str | None) -> list[str]:
    """``command`` prefixed with ``taskset -c cpus`` when ``cpus`` is given."""
    return ["taskset", "-c", cpus, *command] if cpus else list(command)


@attrs.define
class Server:
    """A running hypercorn serving one app with one task kind."""

    app: str
    kind: str
    port: int
    process: subprocess.Popen[bytes]
    output: IO[bytes]

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server and all its descendants so far."""
        return process_tree_cpu_seconds(self.process.pid)

    def output_tail(self, limit: int = 2000) -> str:
        """The last ``limit`` characters of the server's stdout and stderr, for error messages."""
        self.output.flush()
        self.output.seek(0)
        return self.output.read().decode(errors="replace")[-limit:]


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now (hypercorn binds it moments later)."""
    with socket.socket() as sock:
        sock.bind((_client.HOST, 0))
        return int(sock.getsockname()[1])


def process_tree_cpu_seconds(root: int) -> float:
    """Sum utime + stime from ``/proc/<pid>/stat`` for ``root`` and its descendants."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # The command name may hold spaces and parentheses; the fields after the last ")" do not.
        fields = stat.rpartition(")")[2].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    return sum(ticks.get(pid, 0) for pid in tree) / _CLOCK_TICKS


def _start(app: str, module: str, kind: str, log_dir: Path, cpus: str | None) -> Server:
    port = free_port()
    command = [
        *(sys.executable, "-m", "hypercorn", "--worker-class", "trio", "-w", "1"),
        *("--bind", f"{_client.HOST}:{port}", f"{module}:app"),
    ]
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {
        **os.environ,
        "PYTHONPATH": pythonpath,
        _work.KIND_ENV: kind,
        _work.LOG_DIR_ENV: str(log_dir),
    }
    output = (log_dir / "server.log").open("w+b")
    process = subprocess.Popen(
        pinned(command, cpus),
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        # Its own process group, so stopping it reaches hypercorn's worker too, and nothing else.
        start_new_session=True,
    )
    return Server(app, kind, port, process, output)


async def _wait_ready(server: Server) -> None:
    with trio.move_on_after(STARTUP_TIMEOUT):
        while server.process.poll() is None:
            try:
                await _client.completed_tasks(server.port)
            except OSError:
                await trio.sleep(0.1)
            else:
                return
    raise ServerError(f"{server.app} ({server.kind}) did not start:\n{server.output_tail()}")


def stop_all(servers: Sequence[Server]) -> None:
    """Stop every server's process group: SIGTERM to all, then SIGKILL after ``STOP_TIMEOUT``.

    All at once, because hypercorn's graceful shutdown takes a couple of seconds each.
    """
    for server in servers:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for server in servers:
        try:
            server.process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(STOP_TIMEOUT)
        server.output.close()
    # Give forked workers a moment to follow their parents out before the next measurement.
    for server in servers:
        while time.monotonic() < deadline:
            try:
                os.killpg(server.process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)


@contextmanager
def serving(
    modules: dict[str, str], kind: str, log_root: Path, cores: Cores
) -> Iterator[tuple[dict[str, Server], dict[str, str]]]:
    """Serve every app in ``modules`` with task ``kind`` for the duration of the block.

    Yields:
        The servers that came up, by app name, and the reasons the others did not.
    """
    servers: dict[str, Server] = {}
    failures: dict[str, str] = {}
    started: list[Server] = []
    try:
        # Start them all before waiting for any: importing the frameworks is most of the wait.
        for app, module in modules.items():
            log_dir = log_root / kind / app
            log_dir.mkdir(parents=True, exist_ok=True)
            started.append(_start(app, module, kind, log_dir, cores.server))
        for server in started:
            try:
                trio.run(_wait_ready, server)
            except ServerError as exc:
                failures[server.app] = str(exc)
                continue
            servers[server.app] = server
        yield servers, failures
    finally:
        stop_all(started)
