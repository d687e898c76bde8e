"""A blocking ``def`` task beside an ``async def`` task, and a task added by a dependency.

``write_log`` blocks (``time.sleep``), so triobg runs it in a worker thread; ``send_email_async``
awaits, so it runs in the event loop. The tasks of one request run one after another in the
order they were added, after the response::

    curl -X POST 'http://127.0.0.1:8000/send-notification/you@example.com?message=hi'
    curl -X POST 'http://127.0.0.1:8000/query/?q=triobg'
"""

import time
from typing import Annotated

import trio

from triobg import App, BackgroundTasks, Depends

app = App()


def write_log(message: str) -> None:
    time.sleep(0.5)  # stands in for blocking I/O; fine here, this runs in a worker thread
    with open("log.txt", mode="a") as log_file:
        log_file.write(message + "\n")


async def send_email_async(email: str, message: str) -> None:
    await trio.sleep(1)  # stands in for talking to a mail server
    # In the event loop, use trio's async file API rather than a blocking ``open``.
    async with await trio.Path("log.txt").open("a") as log_file:
        await log_file.write(f"Email sent to {email}: {message!r}\n")


@app.post("/send-notification/{email}")
async def send_notification(
    email: str, message: str, background_tasks: BackgroundTasks
) -> dict[str, str]:
    background_tasks.add_task(write_log, f"Notification sent to {email}: {message}")
    background_tasks.add_task(
        send_email_async, email, message=f"Subject: Notification\n\n{message}"
    )
    return {"message": "Notification sending initiated in background"}


async def get_query(background_tasks: BackgroundTasks, q: str | None = None) -> str | None:
    if q:
        background_tasks.add_task(write_log, f"Query received: {q}")
    return q


@app.post("/query/")
async def process_query(query: Annotated[str | None, Depends(get_query)]) -> dict[str, str]:
    if not query:
        return {"message": "No query provided"}
    return {"message": f"Processing query: {query}"}
