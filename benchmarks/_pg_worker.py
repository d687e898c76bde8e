# A durable-task worker process for ``benchmarks/postgres_store.py``: one ``Worker`` on the
# PostgreSQL store, running no-op (and sleeping) tasks until SIGTERM.
#
#   python -m benchmarks._pg_worker URL CONCURRENCY LEASE
from __future__ import annotations

import signal
import sys

import trio

from triobg import App
from triobg._durable._postgres import PostgresTaskStore
from triobg._durable._worker import Worker

app = App()


@app.task(name="noop")
async def noop() -> None:
    return None


@app.task(name="sleepy")
async def sleepy(seconds: float) -> None:
    await trio.sleep(seconds)


async def main(url: str, concurrency: int, lease: float) -> None:
    store = PostgresTaskStore(url, max_connections=4)
    worker = Worker(
        store,
        app.tasks.registry,
        concurrency=concurrency,
        lease=lease,
        poll_interval=0.5,
        recover_interval=0.5,
    )
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            print(f"ready {worker.owner}", flush=True)
            async for _ in signals:
                await worker.stop()
                break
            nursery.cancel_scope.cancel()
    await store.aclose()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
