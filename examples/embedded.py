"""Embed a triobg API in a trio program that has work of its own.

The program owns a job queue (a trio memory channel) and a worker task that consumes it. The
HTTP API is just another task of the same program: ``POST /jobs`` puts a job on the queue and
answers 202, ``GET /jobs`` reports progress. Nothing is shared through threads or globals; the
handlers reach the queue through the app's ``state``.

The program decides when to stop, from its own code: once the worker has done ``jobs_wanted``
jobs it sets an event that is the server's ``shutdown_trigger``. ``serve`` then finishes the
requests in flight, drains background tasks and returns; the program closes the queue, the
worker finishes what is left, and the nursery exits. Results go to ``job-<n>.txt`` in the
current directory::

    python examples/embedded.py        # then, three times:
    curl -d 'hello' http://127.0.0.1:8000/jobs
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import trio

import triobg
from triobg import App, BackgroundTasks, Request

logger = logging.getLogger("examples.embedded")


@attrs.frozen
class Job:
    number: int
    text: str


@attrs.define
class Progress:
    accepted: int = 0
    done: int = 0


def build_app(jobs: trio.MemorySendChannel[Job], progress: Progress) -> App:
    """The API: a thin front door to the program's queue."""
    app = App(drain_timeout=5)

    @app.post("/jobs", status_code=202)
    async def submit(request: Request, tasks: BackgroundTasks) -> dict[str, Any]:
        text = (await request.body()).decode("utf-8", errors="replace")
        progress.accepted += 1
        job = Job(progress.accepted, text)
        # Waits (applying back-pressure to this client) if the queue is full.
        await jobs.send(job)
        tasks.add_task(log_accepted, job)
        return {"job": job.number}

    @app.get("/jobs")
    async def status() -> dict[str, int]:
        return {"accepted": progress.accepted, "done": progress.done}

    return app


async def log_accepted(job: Job) -> None:
    # A background task: runs after the 202 has reached the client.
    logger.info("job %d accepted (%d bytes)", job.number, len(job.text))


async def worker(
    jobs: trio.MemoryReceiveChannel[Job], progress: Progress, jobs_wanted: int, stop: trio.Event
) -> None:
    """The program's own work: consume the queue until it is closed."""
    async with jobs:
        async for job in jobs:
            path = trio.Path(f"job-{job.number}.txt")
            await path.write_text(job.text.upper())
            progress.done += 1
            if progress.done >= jobs_wanted:
                stop.set()  # the program, not a signal, decides to shut the API down


async def run(
    *,
    bind: str = "127.0.0.1:8000",
    jobs_wanted: int = 3,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> Progress:
    """Run the API and the worker side by side until ``jobs_wanted`` jobs are done."""
    progress = Progress()
    send, receive = trio.open_memory_channel[Job](16)
    stop = trio.Event()
    app = build_app(send, progress)

    async def api(task_status: trio.TaskStatus[list[str]]) -> None:
        # Closing the queue once ``serve`` has returned (no handler can run any more) lets the
        # worker finish what is queued and end.
        async with send:
            await triobg.serve(app, bind=bind, shutdown_trigger=stop.wait, task_status=task_status)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker, receive, progress, jobs_wanted, stop)
        urls: list[str] = await nursery.start(api)
        logger.info("API listening on %s", ", ".join(urls))
        task_status.started(urls)
    return progress


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(trio.run(run))
