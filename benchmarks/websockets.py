# WebSocket benchmark: triobg vs Starlette on the same hypercorn trio worker, in the same run.
#
#   python -m benchmarks.websockets [--rounds 5] [--seconds 2] [--clients 1000] [--messages 20]
#
# Three figures per app, each the median over interleaved rounds (triobg, Starlette, then the
# other way round), so that drift on a shared machine hits both alike:
#
# * echo: round trips per second over one connection (send a message, wait for it back);
# * fan-out: messages per second delivered to ``--clients`` connected clients, from a broadcast
#   of ``--messages`` messages that one of them asks for;
# * memory per idle connection: the server's resident memory with the clients connected, minus
#   before, divided by the number of clients.
#
# Each app runs in its own ``hypercorn --worker-class trio -w 0`` process (no worker fork, so its
# RSS is the server's); the clients are trio-websocket (the test dependency) in this process. Not
# a timed test: it prints a table and exits 0.
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trio
import trio_websocket

from benchmarks._server import free_port
from benchmarks._stats import median

REPO_ROOT = Path(__file__).resolve().parent.parent
APPS = {"triobg": "benchmarks.apps.ws_triobg:app", "starlette": "benchmarks.apps.ws_starlette:app"}
HOST = "127.0.0.1"


@contextmanager
def serving(module: str) -> Iterator[tuple[int, int]]:
    """Run ``module`` under hypercorn's trio worker; yield (port, pid)."""
    port = free_port()
    command = [
        *(sys.executable, "-m", "hypercorn", "--worker-class", "trio", "-w", "0"),
        *("--bind", f"{HOST}:{port}", module),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        trio.run(_wait_listening, port)
        yield port, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


async def _wait_listening(port: int) -> None:
    with trio.fail_after(30):
        while True:
            try:
                stream = await trio.open_tcp_stream(HOST, port)
            except OSError:
                await trio.sleep(0.1)
            else:
                await stream.aclose()
                return


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def echo_rate(port: int, seconds: float) -> float:
    async with trio_websocket.open_websocket_url(f"ws://{HOST}:{port}/echo") as ws:
        for _ in range(50):  # warm up
            await ws.send_message("x" * 32)
            await ws.get_message()
        count = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            await ws.send_message("x" * 32)
            await ws.get_message()
            count += 1
    return count / elapsed


async def fan_out(port: int, pid: int, clients: int, messages: int) -> tuple[float, float]:
    """(messages delivered per second, KiB of server memory per idle connection)."""
    before = rss_kib(pid)
    connected = 0
    all_connected = trio.Event()
    finished = 0
    all_finished = trio.Event()
    go = trio.Event()
    leave = trio.Event()

    async def member(task_status: trio.TaskStatus[trio_websocket.WebSocketConnection]) -> None:
        nonlocal connected, finished
        async with trio_websocket.open_websocket_url(
            f"ws://{HOST}:{port}/room", message_queue_size=messages + 1
        ) as ws:
            task_status.started(ws)
            connected += 1
            if connected == clients:
                all_connected.set()
            await go.wait()
            while await ws.get_message() != "done":
                pass
            finished += 1
            if finished == clients:
                all_finished.set()
            await leave.wait()

    with trio.fail_after(300):
        async with trio.open_nursery() as nursery:
            sockets = []
            for _ in range(clients):
                sockets.append(await nursery.start(member))
            await all_connected.wait()
            await trio.sleep(0.5)  # let the server finish accepting (memory read, not a sync)
            per_connection = (rss_kib(pid) - before) / clients
            go.set()
            start = time.perf_counter()
            await sockets[0].send_message(f"go {messages}")
            await all_finished.wait()
            elapsed = time.perf_counter() - start
            leave.set()
    return clients * messages / elapsed, per_connection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20)
    args = parser.parse_args()
    echo: dict[str, list[float]] = {name: [] for name in APPS}
    fan: dict[str, list[float]] = {name: [] for name in APPS}
    memory: dict[str, list[float]] = {name: [] for name in APPS}
    order = list(APPS)
    for round_ in range(args.rounds):
        for name in order if round_ % 2 == 0 else reversed(order):
            with serving(APPS[name]) as (port, pid):
                echo[name].append(trio.run(echo_rate, port, args.seconds))
                rate, per_connection = trio.run(fan_out, port, pid, args.clients, args.messages)
                fan[name].append(rate)
                memory[name].append(per_connection)
            print(
                f"round {round_ + 1} {name}: echo {echo[name][-1]:.0f}/s, "
                f"fan-out {fan[name][-1]:.0f} msg/s, {memory[name][-1]:.1f} KiB/connection",
                flush=True,
            )
    print(f"\nmedians over {args.rounds} rounds ({args.clients} clients, {args.messages} messages)")
    print("| app | echo round trips/s | fan-out messages/s | KiB per idle connection |")
    print("|---|---|---|---|")
    for name in APPS:
        print(
            f"| {name} | {median(echo[name]):.0f} | {median(fan[name]):.0f} | "
            f"{median(memory[name]):.1f} |"
        )


if __name__ == "__main__":
    main()
