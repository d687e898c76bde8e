"""End-to-end throughput of the embedded SQLite task store: no-op durable tasks per second.

Measures the whole path a durable task takes — enqueue (committed, ``synchronous=FULL``),
claim under a lease, run, record the result — with the app's ``Worker`` in this process, as
``enqueue`` from a trio program (or a request) uses it: a task stored while the worker has room
is stored already claimed by it::

    python -m benchmarks.durable_store [--tasks N] [--concurrency C] [--batch B] [--producers P]

``--batch`` tasks go into each ``enqueue`` call and ``--producers`` enqueue at once, as
concurrent requests would (their commits are grouped). Not part of the test run.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import trio

from triobg import App, SQLiteTaskStore


async def measure(tasks: int, concurrency: int, batch: int, producers: int) -> dict[str, float]:
    app = App()

    @app.task(name="noop")
    async def noop(n: int) -> None:
        return None

    with tempfile.TemporaryDirectory() as directory:
        store = SQLiteTaskStore(Path(directory) / "tasks.sqlite3")
        await store.statistics()  # create the file and schema outside the timing
        app.tasks.store = store
        worker = app.tasks.make_worker(concurrency=concurrency, poll_interval=0.05)
        start = time.perf_counter()
        cpu = time.process_time()
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            app.tasks._worker = worker  # as the lifespan does: enqueues here wake it

            async def produce(first: int, last: int) -> None:
                for at in range(first, last, batch):
                    size = min(batch, last - at)
                    await app.tasks._enqueue([noop._new((at + i,), {}) for i in range(size)])

            share = -(-tasks // producers)
            async with trio.open_nursery() as writers:
                for p in range(producers):
                    writers.start_soon(produce, p * share, min(tasks, (p + 1) * share))
            enqueued = time.perf_counter() - start
            while worker.completed < tasks:  # noqa: ASYNC110 - a counter, polled
                await trio.sleep(0.01)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu
            app.tasks._worker = None
            await worker.stop()
        stats = await store.statistics()
        await store.aclose()
    assert stats.succeeded == tasks, stats
    return {
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tasks": tasks,
        "seconds": elapsed,
        "tasks_per_second": tasks / elapsed,
        "enqueue_seconds": enqueued,
        "commits": store.batches,
        "cpu_seconds": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--producers", type=int, default=64)
    args = parser.parse_args()
    result = trio.run(measure, args.tasks, args.concurrency, args.batch, args.producers)
    print(
        f"{result['tasks']:.0f} no-op durable tasks in {result['seconds']:.2f} s: "
        f"{result['tasks_per_second']:,.0f} tasks/s end to end (enqueue, claim, run, record; "
        f"{result['tasks'] / result['cpu_seconds']:,.0f} per CPU second; "
        f"synchronous=FULL; {result['commits']:.0f} commits; enqueueing took "
        f"{result['enqueue_seconds']:.2f} s; peak RSS {result['max_rss_mib']:.0f} MiB with every "
        "finished task retained)"
    )


if __name__ == "__main__":
    main()
