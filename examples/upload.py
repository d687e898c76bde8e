"""Accept a file upload and process it in the background; poll for the result.

``POST /uploads`` takes a ``multipart/form-data`` form with a ``file`` and an optional ``note``.
The file is streamed to a temporary file as it arrives (never held in memory whole), the
response ``202 Accepted`` goes out at once, and a background task then reads the upload in
chunks and writes a report. The upload stays on disk until that task has finished; then it is
deleted. ``GET /uploads/{upload_id}`` answers 202 while the report is not ready, then the
report::

    curl -i -F file=@big.iso -F note=backup http://127.0.0.1:8000/uploads
    curl http://127.0.0.1:8000/uploads/<id>

Up to 1 GiB per file here (``UploadLimits``); more is a 413, and so is a body over 1 GiB.
"""

import hashlib
import json
import re
import uuid
from typing import Any

import trio

from triobg import (
    App,
    BackgroundTasks,
    Form,
    HTTPException,
    JSONResponse,
    UploadFile,
    UploadLimits,
)

GIB = 1024 * 1024 * 1024
app = App(upload_limits=UploadLimits(max_body_size=GIB, max_file_size=GIB))


async def process_upload(upload_id: str, file: UploadFile, note: str) -> None:
    # The slow part the client should not wait for. The file is read a megabyte at a time
    # (each read in a worker thread), so a large upload never sits in memory and the event
    # loop keeps serving other requests meanwhile.
    digest = hashlib.sha256()
    lines = 0
    while chunk := await file.read(1024 * 1024):
        digest.update(chunk)
        lines += chunk.count(b"\n")
    report = {
        "id": upload_id,
        "filename": file.filename,
        "bytes": file.size,
        "lines": lines,
        "sha256": digest.hexdigest(),
        "note": note,
    }
    # Write then rename, so a poller never reads a half-written report.
    path = trio.Path(f"upload-{upload_id}.json")
    await trio.Path(f"{path}.tmp").write_text(json.dumps(report))
    await trio.Path(f"{path}.tmp").rename(path)


@app.post("/uploads", status_code=202)
async def accept_upload(
    file: UploadFile, background_tasks: BackgroundTasks, note: str = Form("")
) -> dict[str, Any]:
    # The id is ours, never the client's file name: nothing the client sends becomes a path.
    upload_id = uuid.uuid4().hex[:16]
    background_tasks.add_task(process_upload, upload_id, file, note)
    return {"id": upload_id, "status": f"/uploads/{upload_id}"}


@app.get(
    "/uploads/{upload_id}",
    responses={202: {"description": "Still processing"}, 404: {"description": "No such upload"}},
)
async def upload_status(upload_id: str) -> Any:
    if not re.fullmatch(r"[0-9a-f]{16}", upload_id):
        raise HTTPException(404)
    path = trio.Path(f"upload-{upload_id}.json")
    if not await path.exists():
        return JSONResponse({"id": upload_id, "status": "processing"}, status_code=202)
    return json.loads(await path.read_text())


@app.get("/ping")
async def ping() -> str:
    return "pong"
