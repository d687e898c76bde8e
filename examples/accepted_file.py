"""Accept a file with 202 and process it in the background; poll for the result.

``POST /files`` takes the raw request body (up to the app's ``max_body_size``, 1 MiB by
default; larger uploads get a 413), answers ``202 Accepted`` with an id at once, and a background
task writes a report. ``GET /files/{upload_id}`` answers 202 while the report is not ready and
the report once it is::

    curl -i --data-binary @README.md http://127.0.0.1:8000/files
    curl http://127.0.0.1:8000/files/<id>
"""

import hashlib
import json
import os
import re
from typing import Any

import trio

from triobg import App, BackgroundTasks, HTTPException, JSONResponse, Request

app = App()


def process_file(upload_id: str, data: bytes) -> None:
    # The slow part the client should not wait for. A ``def`` task runs in a worker thread, so
    # CPU-bound or blocking work here does not stall other requests.
    text = data.decode("utf-8", errors="replace")
    report = {
        "id": upload_id,
        "bytes": len(data),
        "lines": len(text.splitlines()),
        "words": len(text.split()),
    }
    # Write then rename, so a poller never reads a half-written report.
    path = f"upload-{upload_id}.json"
    with open(path + ".tmp", mode="w") as file:
        json.dump(report, file)
    os.replace(path + ".tmp", path)


@app.post("/files", status_code=202)
async def accept_file(request: Request, background_tasks: BackgroundTasks) -> dict[str, Any]:
    data = await request.body()
    # The id is derived from the content, never from a client-chosen name: nothing the client
    # sends ends up in a file path.
    upload_id = hashlib.sha256(data).hexdigest()[:16]
    background_tasks.add_task(process_file, upload_id, data)
    return {"id": upload_id, "status": f"/files/{upload_id}"}


@app.get(
    "/files/{upload_id}",
    responses={202: {"description": "Still processing"}, 404: {"description": "No such upload"}},
)
async def file_status(upload_id: str) -> Any:
    if not re.fullmatch(r"[0-9a-f]{16}", upload_id):
        raise HTTPException(404)
    path = trio.Path(f"upload-{upload_id}.json")
    if not await path.exists():
        return JSONResponse({"id": upload_id, "status": "processing"}, status_code=202)
    return json.loads(await path.read_text())
