"""A ``yield`` dependency whose resource a background task still uses.

triobg tears a ``yield`` dependency down only after the request's background tasks have
finished, so a task may use what the dependency opened. ``POST /invite/you@example.com``
writes to ``log.txt``::

    mailer connected
    sent 'You are invited' to you@example.com
    mailer closed

The response is sent between the first and the second line. (``Depends(..., scope="function")``
would close the mailer before the response instead, and the task would find it closed.)
"""

from collections.abc import Iterator
from typing import Annotated

from triobg import App, BackgroundTasks, Depends

app = App()


def log(line: str) -> None:
    with open("log.txt", mode="a") as file:
        file.write(line + "\n")


class Mailer:
    """Stands in for a connection to a mail server: opened per request, then closed."""

    def __init__(self) -> None:
        self.closed = False
        log("mailer connected")

    def send(self, to: str, subject: str) -> None:
        if self.closed:
            raise RuntimeError("the mailer is already closed")
        log(f"sent {subject!r} to {to}")

    def close(self) -> None:
        self.closed = True
        log("mailer closed")


def get_mailer() -> Iterator[Mailer]:
    # A plain generator: triobg runs the code before and after ``yield`` in a worker thread.
    mailer = Mailer()
    try:
        yield mailer
    finally:
        mailer.close()  # runs after the background tasks of the request have finished


@app.post("/invite/{email}")
async def invite(
    email: str,
    background_tasks: BackgroundTasks,
    mailer: Annotated[Mailer, Depends(get_mailer)],
) -> dict[str, str]:
    background_tasks.add_task(mailer.send, email, "You are invited")
    return {"message": f"invitation to {email} on its way"}
