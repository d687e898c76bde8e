"""Background tasks added at two levels, a dependency and the handler, run in that order.

The dependency ``get_query`` and the handler declare ``BackgroundTasks``; triobg hands both the
same object, so ``POST /send-notification/you@example.com?q=hello`` writes::

    found query: hello
    message to you@example.com

to ``log.txt``, in that order (the dependency runs before the handler), after the response.
"""

from typing import Annotated

from triobg import App, BackgroundTasks, Depends

app = App()


def write_log(message: str) -> None:
    with open("log.txt", mode="a") as log:
        log.write(message)


def get_query(background_tasks: BackgroundTasks, q: str | None = None) -> str | None:
    if q:
        message = f"found query: {q}\n"
        background_tasks.add_task(write_log, message)
    return q


@app.post("/send-notification/{email}")
async def send_notification(
    email: str,
    background_tasks: BackgroundTasks,
    q: Annotated[str | None, Depends(get_query)],
) -> dict[str, str]:
    message = f"message to {email}\n"
    background_tasks.add_task(write_log, message)
    return {"message": "Message sent"}
