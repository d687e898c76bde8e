"""Where a durable request's extra CPU goes: the seed endpoint in-process, no HTTP server.

The app of ``benchmarks.durable_http`` (two no-op tasks per request, in-process or durable on a
SQLite file with ``synchronous=FULL``) is called directly through ASGI (``benchmarks._driver``,
lifespan included, so the worker runs and the log lines go where hypercorn's would), by 64
concurrent clients. Each kind's round ends when its tasks have all finished. Reported: the
process's CPU time per request of each kind (threads included), and the event loop thread's
part of it (the rest is the store's thread: SQLite and the commit's Python); with
``--profile KIND`` one round of that kind runs under cProfile and the top functions are
printed::

    python -m benchmarks.durable_profile [--requests 4000] [--rounds 3] [--profile durable]

Not part of the test run.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

from benchmarks import _driver
from benchmarks.durable_http import APP

CLIENTS = 64
COMMITS: dict[str, list[float]] = {"inprocess": [], "durable": []}


async def one_round(app: object, kind: str, requests: int) -> tuple[float, float]:
    """CPU seconds per request for ``requests`` requests of ``kind``, their tasks included:
    the whole process's, and the event loop thread's alone (the rest is the store's thread)."""
    scope = _driver.make_scope(path=f"/{kind}/a@example.com", query=b"")
    per_client = requests // CLIENTS
    tasks = app.tasks  # type: ignore[attr-defined]
    commits = tasks.store.batches
    before, loop_before = time.process_time(), time.thread_time()

    async def client() -> None:
        for _ in range(per_client):
            await _driver.call(app, scope)  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        for _ in range(CLIENTS):
            nursery.start_soon(client)
    if tasks.worker is not None:  # the durable round: until its worker has run them all
        with trio.fail_after(60):
            await tasks.worker.wait_idle()
    # In-process tasks run in the request's nursery, which the ASGI call waits for: done too.
    done = per_client * CLIENTS
    COMMITS[kind].append((tasks.store.batches - commits) / done)
    return (time.process_time() - before) / done, (time.thread_time() - loop_before) / done


async def run(args: argparse.Namespace, app: object) -> None:
    async with _driver.running(app):  # type: ignore[arg-type]
        for kind in ("inprocess", "durable"):
            await one_round(app, kind, 640)  # warm-up
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await one_round(app, args.profile, args.requests)
            profiler.disable()
            out = pstats.Stats(profiler, stream=sys.stdout)
            out.sort_stats("tottime").print_stats(args.top)
            out.sort_stats("cumulative").print_stats(args.top)
            return
        cpu: dict[str, list[float]] = {"inprocess": [], "durable": []}
        loop: dict[str, list[float]] = {"inprocess": [], "durable": []}
        for n in range(args.rounds):
            order = ["inprocess", "durable"] if n % 2 == 0 else ["durable", "inprocess"]
            for kind in order:
                total, in_loop = await one_round(app, kind, args.requests)
                cpu[kind].append(total)
                loop[kind].append(in_loop)
    inproc, durable = statistics.median(cpu["inprocess"]), statistics.median(cpu["durable"])
    in_loop = {kind: statistics.median(values) * 1e6 for kind, values in loop.items()}
    print(
        f"in-process {inproc * 1e6:.0f} µs, durable {durable * 1e6:.0f} µs of CPU per request "
        f"(+{(durable - inproc) * 1e6:.0f} µs; in the event loop's thread "
        f"{in_loop['inprocess']:.0f} and {in_loop['durable']:.0f} µs); "
        f"{statistics.median(COMMITS['durable']):.2f} commits per durable request; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", choices=["inprocess", "durable"])
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "durablebench.py").write_text(APP)
        os.environ["BENCH_STORE"] = f"sqlite:///{tmp}/tasks.sqlite3"
        sys.path.insert(0, tmp)
        app = importlib.import_module("durablebench").app
        trio.run(run, args, app)


if __name__ == "__main__":
    main()
