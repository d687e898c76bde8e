"""Graceful shutdown with a drain deadline: what finishes, what is cut off, what is logged.

``GET /report`` answers at once and leaves two background tasks: a quick one that writes
``quick.txt`` and a slow one that would write ``slow.txt`` after a minute. The app gives its
tasks ``drain_timeout`` seconds once shutdown begins, so at shutdown the quick task completes and
the slow one is cancelled, and the log (logger ``triobg.background``) names it::

    WARNING triobg.background: background task examples.graceful_shutdown.slow_report of
        GET /report cancelled while running (the shutdown drain deadline passed)
    INFO triobg.background: background drain finished: 1 completed, 0 failed, 1 cancelled, ...

Run the whole story in one process (it serves, calls itself, shuts down, and writes the log to
``shutdown.log`` in the current directory)::

    python examples/graceful_shutdown.py

or serve it and press CTRL+C (or send SIGTERM) after a request::

    python -m triobg examples.graceful_shutdown:app
    curl http://127.0.0.1:8000/report

With plain hypercorn, give it a ``--graceful-timeout`` above the drain timeout, or hypercorn
cancels the tasks after its default 3 s::

    hypercorn --worker-class trio --graceful-timeout 3 examples.graceful_shutdown:app
"""

from __future__ import annotations

import logging

import trio

import triobg
from triobg import App, BackgroundStatistics, BackgroundTasks
from triobg.testing import HTTP11Connection

app = App(drain_timeout=1.0)


async def quick_report() -> None:
    await trio.sleep(0.05)
    await trio.Path("quick.txt").write_text("done\n")


async def slow_report() -> None:
    await trio.sleep(60)  # longer than any drain deadline: this one is cut off and named
    await trio.Path("slow.txt").write_text("done\n")


@app.get("/report")
async def report(tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(quick_report)
    tasks.add_task(slow_report)
    return {"status": "reports scheduled"}


async def demo() -> BackgroundStatistics:
    """Serve, make one request, shut down, and write what was logged to ``shutdown.log``."""
    records: list[str] = []
    handler = _ListHandler(records)
    watched = [logging.getLogger("triobg.background"), logging.getLogger("triobg.serve")]
    for log in watched:
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            urls: list[str] = await nursery.start(_serve, stop)
            host, _, port = urls[0].removeprefix("http://").rpartition(":")
            async with await HTTP11Connection.connect(host, int(port)) as conn:
                response = await conn.request("GET", "/report")
            records.append(f"client got {response.status} {response.text}")
            stop.set()  # as SIGTERM would under ``python -m triobg``
    finally:
        for log in watched:
            log.removeHandler(handler)
    await trio.Path("shutdown.log").write_text("".join(line + "\n" for line in records))
    return app.background.statistics()


async def _serve(stop: trio.Event, task_status: trio.TaskStatus[list[str]]) -> None:
    await triobg.serve(app, bind="127.0.0.1:0", shutdown_trigger=stop.wait, task_status=task_status)


class _ListHandler(logging.Handler):
    def __init__(self, records: list[str]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.levelname} {record.name}: {record.getMessage()}")


if __name__ == "__main__":
    print(trio.run(demo))
