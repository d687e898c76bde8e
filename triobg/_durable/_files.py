# The durable tasks' file area: where an ``UploadFile`` handed to a durable task waits for it.
#
# Where it sits: ``DurableTask._new`` (the handler's ``add_task``, before the request's commit)
# moves each ``UploadFile`` argument's file here, named after the task (``<task id>-<n>``), and
# the codec stores a reference to it (path, file name, type, size, headers). The worker's
# decoding opens it again as an ``UploadFile``; the worker deletes the task's files once the
# task has succeeded or failed for good, and its prune deletes files whose task is gone (pruned,
# or never stored because its request failed or the process died before the commit). So a file
# lives exactly as long as its task, crash included: it is on disk before the task is stored.
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from .._headers import Headers
from .._uploads import UploadFile
from ._memory import MemoryTaskStore

#: Overrides where the file area is (any store); see ``files_dir``.
FILES_ENV = "TRIOBG_TASK_FILES"
#: The key that marks an argument stored as a reference to a handed-over file.
UPLOAD_KEY = "triobg.upload"
#: A file younger than this is never swept: its task may be on its way into the store.
SWEEP_MIN_AGE = 3600.0


def files_dir(store: Any) -> Path:
    """The file area of ``store``: ``$TRIOBG_TASK_FILES``; else next to a SQLite store's file
    (``tasks.sqlite3.files``); else ``triobg-task-files`` in the working directory (for the
    in-memory store, in the system's temporary directory)."""
    configured = os.environ.get(FILES_ENV)
    if configured:
        return Path(configured)
    path = getattr(store, "path", None)
    if isinstance(path, Path):
        return path.with_name(path.name + ".files")
    if isinstance(store, MemoryTaskStore):
        return Path(tempfile.gettempdir()) / "triobg-task-files"
    return Path("triobg-task-files")


def hand_over(uploads: list[UploadFile], directory: Path, task_id: str) -> None:
    """Move each upload's file into the area (a rename; a copy across file systems).

    The request no longer deletes them; the task's worker will.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for index, upload in enumerate(uploads):
        if upload.closed or upload.path is None:
            raise TypeError(
                f"cannot pass {upload!r} to a durable task: it is closed or has no file on disk"
            )
        upload._move(directory / f"{task_id}-{index}")


def unstructure_upload(upload: UploadFile) -> dict[str, Any]:
    """The stored reference; only for a file already handed over (its path is in the area)."""
    if upload.path is None or upload._owned:
        raise TypeError(
            "an UploadFile can be stored only as a direct argument of a durable task "
            "(add_task or enqueue hands it over), not inside another value"
        )
    return {
        UPLOAD_KEY: str(upload.path),
        "filename": upload.filename,
        "content_type": upload.content_type,
        "size": upload.size,
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in upload.headers.raw],
    }


def structure_upload(data: Any, _: Any) -> UploadFile:
    """An ``UploadFile`` reading the handed-over file again, for the task's attempt."""
    if not isinstance(data, dict) or UPLOAD_KEY not in data:
        raise ValueError("not a stored UploadFile reference")
    path = Path(data[UPLOAD_KEY])
    headers = Headers([(k.encode("latin-1"), v.encode("latin-1")) for k, v in data["headers"]])
    upload = UploadFile(
        path.open("rb"),
        filename=data["filename"],
        content_type=data["content_type"],
        headers=headers,
        size=data["size"],
    )
    upload._path = path  # not owned: closing it keeps the file for a retry
    return upload


def close_uploads(values: list[Any]) -> None:
    """Close the files an attempt's arguments opened (the files stay)."""
    for value in values:
        if isinstance(value, UploadFile):
            value._discard()


def delete_task_files(directory: Path, task_id: str) -> None:
    """Delete the files handed over to task ``task_id`` (it finished for good)."""
    with contextlib.suppress(FileNotFoundError):
        for path in directory.glob(f"{task_id}-*"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


async def sweep(
    directory: Path, exists: Callable[[str], Awaitable[bool]], min_age: float = SWEEP_MIN_AGE
) -> int:
    """Delete files whose task is not in the store (pruned, or never stored). Returns the count."""

    def listing() -> list[tuple[Path, float]]:
        try:
            return [(path, path.stat().st_ctime) for path in directory.iterdir()]
        except FileNotFoundError:
            return []

    swept = 0
    now = time.time()
    for path, changed in await trio.to_thread.run_sync(listing):
        task_id = path.name.partition("-")[0]
        if now - changed < min_age or await exists(task_id):
            continue
        with contextlib.suppress(FileNotFoundError):
            await trio.to_thread.run_sync(path.unlink)
            swept += 1
    return swept
