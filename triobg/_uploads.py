# Uploaded files: ``UploadFile`` (one file part of a form, on disk) and ``UploadLimits``.
#
# ``_multipart.py`` creates an ``UploadFile`` for each file part as the body streams in and
# appends to it from worker threads; the handler (and its background tasks) then read it with
# ``await file.read()``. Every disk call runs in a worker thread, so a slow disk never stalls the
# event loop. Each file belongs to its request (``Request._uploads``): the pipeline deletes it
# after the request's background tasks have finished, or at once when the request fails, its
# client leaves or it is cancelled. ``await file.move_to(path)`` keeps the bytes instead.
from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

import attrs
import trio

from ._headers import Headers

#: Where uploads are spooled when ``UploadLimits.directory`` is not set (and this variable is):
#: the test suite points it at a directory it checks is empty at the end.
UPLOAD_DIR_ENV = "TRIOBG_UPLOAD_DIR"
_PREFIX = "triobg-upload-"


@attrs.frozen(kw_only=True)
class UploadLimits:
    """Bounds on form bodies (``multipart/form-data`` and urlencoded) and where files go.

    Every breach is a clear 4xx and every partly written file is deleted. Set once per app
    (``App(upload_limits=...)``) and, for a route that takes larger or smaller uploads, per
    route (``@app.post(..., upload_limits=...)``). How fast the body must arrive is the app's
    ``min_body_rate``/``body_grace`` (408), as for any body.

    Attributes:
        max_body_size: Largest multipart body in bytes, all parts together (413 beyond it,
            decided from ``Content-Length`` before reading when the client sends one).
            urlencoded forms are read into memory and keep the app's ``max_body_size``.
        max_file_size: Largest single file in bytes (413).
        max_files: Most file parts in one body (413).
        max_fields: Most plain (non-file) fields in one body, multipart or urlencoded (413).
        max_field_size: Largest plain field value in bytes; plain fields are kept in memory
            (413).
        max_part_headers: Most header lines in one part (a browser sends two or three; 413).
        max_part_header_size: Longest header line in one part, in bytes (413).
        directory: Where files are written while the request lives. Default: the
            ``TRIOBG_UPLOAD_DIR`` environment variable, else the system's temporary directory.
            Put it on the same file system as the place you ``move_to`` so keeping a file is
            a rename, not a copy.
        flush_size: Bytes gathered in memory before one write to disk (fewer, larger writes;
            also the most memory one file part holds).
    """

    max_body_size: int = 256 * 1024 * 1024
    max_file_size: int = 256 * 1024 * 1024
    max_files: int = 100
    max_fields: int = 1000
    max_field_size: int = 1024 * 1024
    max_part_headers: int = 8
    max_part_header_size: int = 4096
    directory: str | os.PathLike[str] | None = None
    flush_size: int = 256 * 1024

    def upload_dir(self) -> str:
        """The directory new files go to (see ``directory``)."""
        if self.directory is not None:
            return os.fspath(self.directory)
        return os.environ.get(UPLOAD_DIR_ENV) or tempfile.gettempdir()


class UploadFile:
    """A file sent in a form, stored on disk; read it with ``await file.read()``.

    The file stays open and on disk while the request's background tasks run, so a task may
    take it over as an argument and read it after the response has been sent. Then it is
    closed and deleted, unless it was kept with ``move_to``.

    Attributes:
        filename: The name the client gave (``None`` if none); never trust it as a path.
        content_type: The part's ``Content-Type`` (``None`` if it sent none).
        headers: All the part's headers.
        size: Bytes in the file.
        file: The underlying binary file, for code that wants plain blocking calls (in a
            worker thread, please: they touch the disk).
    """

    def __init__(
        self,
        file: IO[bytes] | None = None,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        headers: Headers | None = None,
        size: int = 0,
    ) -> None:
        self.filename = filename
        self.content_type = content_type
        self.headers = headers if headers is not None else Headers([])
        self.size = size
        self.file: IO[bytes] = file if file is not None else _NOT_OPEN
        self._path: Path | None = None  # where the bytes are, once known
        self._owned = False  # a temporary file of ours: deleted at the end of its request
        self._closed = False
        #: The whole content, for a ``bytes`` parameter (read by the solver before it converts).
        self._content: bytes | None = None

    def __repr__(self) -> str:
        return (
            f"UploadFile(filename={self.filename!r}, content_type={self.content_type!r}, "
            f"size={self.size})"
        )

    @property
    def path(self) -> Path | None:
        """Where the bytes are on disk (``None`` for a file that is not ours, or is deleted)."""
        return None if self._closed and self._owned else self._path

    @property
    def closed(self) -> bool:
        return self._closed

    async def read(self, size: int = -1) -> bytes:
        """Read ``size`` bytes (all that is left if negative) from the current position."""
        self._check_open()
        return await trio.to_thread.run_sync(self.file.read, size)

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the read position, as ``io`` does; returns the new position."""
        self._check_open()
        return await trio.to_thread.run_sync(self.file.seek, offset, whence)

    async def write(self, data: bytes) -> int:
        """Write ``data`` at the current position (and count it in ``size``)."""
        self._check_open()
        written = await trio.to_thread.run_sync(self.file.write, data)
        self.size = max(self.size, await trio.to_thread.run_sync(self.file.tell))
        return written

    async def close(self) -> None:
        """Close the file; a temporary file of the request's is deleted too (unless moved)."""
        if not self._closed:
            await trio.to_thread.run_sync(self._discard)

    async def move_to(self, path: str | os.PathLike[str]) -> Path:
        """Keep the file at ``path`` (replacing what is there) without copying when possible.

        On the same file system this is a rename (``os.replace``), whatever the size; across
        file systems the bytes are copied and the temporary file deleted. The file stays open
        and readable at its new place, and the request no longer deletes it.

        Returns:
            The new path.

        Raises:
            ValueError: the file is closed, or is not on disk (built in memory by hand).
        """
        self._check_open()
        if self._path is None:
            raise ValueError("this UploadFile has no file on disk to move")
        target = Path(path)
        await trio.to_thread.run_sync(self._move, target)
        return target

    # --- the request's side ------------------------------------------------------------------

    def _create(self, directory: str) -> None:
        """Open a new temporary file in ``directory`` (in a worker thread)."""
        fd, name = tempfile.mkstemp(prefix=_PREFIX, dir=directory)
        # Set before anything else can fail, so that the request's cleanup finds the file.
        self._path, self._owned = Path(name), True
        # Unbuffered while it is being written: a buffered file copies each large write
        # through its buffer, several times slower than handing the bytes to ``write(2)``.
        self.file = open(fd, "w+b", buffering=0)  # noqa: SIM115 - closed by _discard

    def _append(self, data: bytes | bytearray) -> None:
        """Write one coalesced chunk at the end (in a worker thread)."""
        view = memoryview(data)
        while view:
            written = self.file.write(view)
            view = view[written or 0 :]

    def _finish(self) -> None:
        """The part is complete: rewind, and buffer for the reader (in a worker thread)."""
        raw = self.file
        raw.seek(0)
        self.file = io.BufferedRandom(raw)  # type: ignore[arg-type]

    def _move(self, target: Path) -> None:
        self.file.flush()
        assert self._path is not None
        try:
            os.replace(self._path, target)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            shutil.copyfile(self._path, target)
            if self._owned:
                os.unlink(self._path)
            # The open file still reads the old, now unlinked, bytes: point it at the copy.
            position = self.file.tell()
            self.file.close()
            self.file = open(target, "r+b")  # noqa: SIM115 - owned by this object, closed later
            self.file.seek(position)
        self._path, self._owned = target, False

    def _discard(self) -> None:
        """Close, and delete the file if it is a temporary one of ours. Never raises."""
        self._closed = True
        with contextlib.suppress(Exception):  # a broken file is closed for us either way
            self.file.close()
        if self._owned and self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{self!r} is closed")


class _NotOpen:
    """``UploadFile.file`` before the temporary file exists: any use is a bug, said plainly."""

    def __getattr__(self, name: str) -> Any:
        raise ValueError("this UploadFile has no file yet")

    def close(self) -> None:
        pass


_NOT_OPEN: Any = _NotOpen()
