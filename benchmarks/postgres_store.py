# PostgreSQL task store: end-to-end no-op durable tasks per second with 1, 2 and 4 worker
# processes on one server, and how long another worker takes over a killed worker's task.
#
#   python -m benchmarks.postgres_store [--tasks N] [--lease S]
#
# Starts a throwaway PostgreSQL cluster (as the tests do, ``tests/_postgres.py``) with its
# durability settings at their defaults (fsync and synchronous_commit on), workers as separate
# processes (``benchmarks/_pg_worker.py``), and a producer in this process that enqueues in
# batches of 100 while the workers run: each task is enqueued, claimed, run and recorded. The
# clock runs from the first enqueue until the store counts every task succeeded.
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _postgres import PostgresServer, _binaries

from triobg._durable._postgres import PostgresTaskStore
from triobg._durable._store import NewTask


def start_workers(url: str, count: int, lease: float) -> list[subprocess.Popen[str]]:
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks._pg_worker", url, "64", str(lease)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for worker in workers:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        assert line.startswith("ready"), line
    return workers


def stop_workers(workers: list[subprocess.Popen[str]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def task(n: int, name: str = "noop", arguments: str = "{}") -> NewTask:
    return NewTask(
        id=f"b{n}", name=name, arguments=arguments, enqueued_at=time.time(), max_attempts=3
    )


async def throughput(url: str, workers: int, tasks: int) -> float:
    store = PostgresTaskStore(url, max_connections=4)
    processes = start_workers(url, workers, lease=30)
    try:
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for first in range(0, tasks, 100):
                batch = [task(n) for n in range(first, min(first + 100, tasks))]
                nursery.start_soon(store.enqueue, batch)
        while True:  # polling the store is the measurement: no event crosses processes
            if (await store.statistics()).succeeded >= tasks:
                break
            await trio.sleep(0.02)
        elapsed = time.perf_counter() - start
        failed = (await store.statistics()).failed
        assert failed == 0, failed
        return tasks / elapsed
    finally:
        stop_workers(processes)
        await store.aclose()


async def takeover(url: str, lease: float) -> float:
    """Seconds from ``kill -9`` of the worker running a task until another worker runs it."""
    store = PostgresTaskStore(url, max_connections=2)
    (first,) = start_workers(url, 1, lease)
    others: list[subprocess.Popen[str]] = []
    try:
        await store.enqueue([task(0, "sleepy", '{"seconds": 3600}')])
        while True:
            if (await store.get("b0")).status.value == "running":
                break
            await trio.sleep(0.01)
        others = start_workers(url, 1, lease)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        killed = time.perf_counter()
        owner = (await store.get("b0")).owner
        while True:
            record = await store.get("b0")
            if record.status.value == "running" and record.owner != owner:
                return time.perf_counter() - killed
            await trio.sleep(0.01)
    finally:
        stop_workers([first, *others])
        await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--lease", type=float, default=10.0)
    args = parser.parse_args()
    binaries = _binaries()
    if binaries is None:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    server = PostgresServer(binaries)
    server.fsync = True
    try:
        server.start()
        for workers in (1, 2, 4):
            url = server.new_database()
            rate = trio.run(throughput, url, workers, args.tasks)
            print(f"{workers} worker process(es): {rate:,.0f} no-op durable tasks/s")
        seconds = trio.run(takeover, server.new_database(), args.lease)
        print(f"takeover after kill -9 with a {args.lease:g} s lease: {seconds:.1f} s")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
