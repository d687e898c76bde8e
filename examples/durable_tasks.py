"""Durable tasks: answer 202 Accepted with a task id, then let the client poll for the result.

The seeds' notification, made durable: ``@app.task`` stores each task (in
``triobg-tasks.sqlite3``, or wherever ``$TRIOBG_TASK_STORE`` points) before the 202 is sent,
runs it right after, retries it if it fails, and runs it again after a crash or restart::

    python -m triobg examples.durable_tasks:app
    curl -i -X POST http://127.0.0.1:8000/send-notification/you@example.com
    curl -i http://127.0.0.1:8000/tasks/<id>       # 202 while waiting, 200 once finished

Inspect the store from a shell: ``python -m triobg tasks examples.durable_tasks:app list``.
"""

from typing import Any

import attrs

from triobg import App, BackgroundTasks, HTTPException, JSONResponse, TaskNotFound

app = App()


@attrs.frozen
class Notification:
    """Stored as JSON with the task and built again from it by the type hint below."""

    email: str
    message: str


@app.task(retries=3, timeout=30)
def write_notification(notification: Notification) -> dict[str, str]:
    # A ``def`` task runs in a worker thread. It may run more than once (after a crash in the
    # middle of it), so it should be safe to repeat: here, a duplicate line at worst.
    with open("log.txt", mode="a") as log:
        log.write(f"notification for {notification.email}: {notification.message}\n")
    return {"sent_to": notification.email}


@app.post("/send-notification/{email}", status_code=202)
async def send_notification(email: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    task = background_tasks.add_task(write_notification, Notification(email, "some notification"))
    assert task is not None  # a durable task: stored before this 202 is sent
    return {"id": task.id, "status": f"/tasks/{task.id}"}


@app.get("/tasks/{task_id}")
async def task_status(task_id: str) -> JSONResponse:
    try:
        result = await app.tasks.get(task_id)
    except TaskNotFound:
        raise HTTPException(404, "no such task (or it finished long ago and was pruned)") from None
    body: dict[str, Any] = {
        "id": result.id,
        "status": result.status.value,
        "attempts": result.attempts,
        "result": result.return_value,
        "errors": [f"{error.type}: {error.message}" for error in result.errors],
    }
    return JSONResponse(body, status_code=200 if result.status.finished else 202)
