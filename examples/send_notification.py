"""Send a notification after the response: the first example of the background tasks tutorial.

Serve it (``./run serve`` does exactly this)::

    python -m triobg examples.send_notification:app

then ``curl -X POST http://127.0.0.1:8000/send-notification/you@example.com`` and read
``log.txt``: the line appears after curl has printed the response.
"""

import os

from triobg import App, BackgroundTasks

app = App()


def log_path() -> str:
    # Read at every call, not at import, so the tests can point it at a temporary directory.
    return os.path.join(os.environ.get("TRIOBG_EXAMPLES_DIR", "."), "log.txt")


def write_notification(email: str, message: str = "") -> None:
    # A plain ``def``: triobg runs it in a worker thread, so its blocking file I/O never
    # stalls the event loop that is serving other requests.
    with open(log_path(), mode="a") as log:
        log.write(f"notification for {email}: {message}\n")


@app.post("/send-notification/{email}")
async def send_notification(email: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(write_notification, email, message="some notification")
    return {"message": "Notification sent in the background"}
