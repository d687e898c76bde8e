"""Observe background task failures: ``on_task_error`` and ``app.background.statistics()``.

``POST /signup/{email}`` adds two tasks. The first, ``notify_crm``, always fails here (the CRM is
"down"); triobg logs it with its traceback, calls ``report_failure``, and still runs the second,
``send_welcome_email``. ``GET /tasks`` shows the counts::

    curl -X POST http://127.0.0.1:8000/signup/you@example.com
    curl http://127.0.0.1:8000/tasks
    cat failures.txt log.txt
"""

import trio

from triobg import App, BackgroundStatistics, BackgroundTasks, TaskFailure


async def report_failure(failure: TaskFailure) -> None:
    # Where you would page someone, bump a metric or send the error to a tracker. It may be
    # ``async`` or plain; it runs in the event loop right after the task failed, and an exception
    # raised here is logged and does not stop the request's remaining tasks.
    line = (
        f"{failure.task} failed after {failure.method} {failure.path}: "
        f"{type(failure.exception).__name__}: {failure.exception}\n"
    )
    async with await trio.Path("failures.txt").open("a") as file:
        await file.write(line)


app = App(on_task_error=report_failure)


def notify_crm(email: str) -> None:
    raise ConnectionError(f"CRM unreachable, {email} not recorded")


def send_welcome_email(email: str) -> None:
    with open("log.txt", mode="a") as log:
        log.write(f"welcome email sent to {email}\n")


@app.post("/signup/{email}")
async def signup(email: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(notify_crm, email)
    background_tasks.add_task(send_welcome_email, email)
    return {"message": f"welcome, {email}"}


@app.get("/tasks")
async def task_statistics() -> BackgroundStatistics:
    # A frozen snapshot; JSONResponse encodes attrs instances, so it can be returned as is.
    return app.background.statistics()
