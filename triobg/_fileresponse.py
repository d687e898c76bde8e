# ``FileResponse``: one file from disk as a response, for a handler that has a path in hand
# (``return FileResponse(report_path, filename="report.pdf")``).
#
# Where it sits: a ``Response`` the pipeline writes with ``_send`` like any other; the bytes
# come from ``StaticFiles``' reader (``send_span``: chunks read in worker threads, stopped when
# the client leaves), so the event loop never waits on the disk. The file is opened when the
# response is sent, not when it is built: what goes out is the file as it is then, and its
# size and dates are the ones the headers state.
from __future__ import annotations

import errno
import logging
import os
import stat
import typing
from collections.abc import Mapping
from urllib.parse import quote

import trio

from ._responses import ClientDisconnected, Response, no_body_status
from ._staticfiles import CHUNK_SIZE, FileInfo, send_span

if typing.TYPE_CHECKING:
    from ._background import BackgroundTasks
    from ._requests import Receive
    from ._responses import Send

logger = logging.getLogger("triobg.error")

_NOT_FOUND = b"Not Found"


class FileResponse(Response):
    """A file's bytes, streamed from disk, with its length, type and dates in the headers.

    ``Content-Type`` is ``media_type`` or guessed from the file's name; ``ETag`` and
    ``Last-Modified`` come from the file, so clients and caches can revalidate. With
    ``filename`` the response carries ``Content-Disposition`` (``attachment`` by default, so a
    browser saves it under that name; non-ASCII names are sent as RFC 6266 asks).

    A file that cannot be opened when the response is sent (it was deleted meanwhile, or is a
    directory) is answered ``404 Not Found`` and logged on ``triobg.error`` with the path: the
    client learns nothing about the server's files, the operator learns what went wrong, and
    the request's background tasks still run, as for any response the handler chose. A client
    that leaves mid-file ends the sending and discards the tasks, as a streaming response does.

    Args:
        path: The file to send.
        status_code: The HTTP status.
        headers: Extra headers.
        media_type: The ``Content-Type``; by default guessed from ``filename`` or ``path``.
        background: Tasks to run after the file has been sent.
        filename: The name the client should save the file under.
        content_disposition_type: ``"attachment"`` (save) or ``"inline"`` (show).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTasks | None = None,
        filename: str | None = None,
        content_disposition_type: str = "attachment",
    ) -> None:
        self.path = os.fspath(path)
        self.filename = filename
        self._media_type = media_type
        super().__init__(None, status_code, headers, None, background)
        if filename is not None:
            self._raw.append(
                (b"content-disposition", _disposition(content_disposition_type, filename))
            )

    def _init_content_headers(self, media_type: str | None) -> None:
        # Length and type are known once the file is opened (``_send``).
        pass

    async def _send(self, send: Send, head: bool, receive: Receive | None = None) -> None:
        opened = await trio.to_thread.run_sync(_open_regular, self.path)
        if isinstance(opened, OSError):
            logger.error("FileResponse cannot send %r: %s", self.path, opened.strerror or opened)
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(_NOT_FOUND)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b"" if head else _NOT_FOUND})
            return
        fd, info = opened
        try:
            await self._send_open(send, head, receive, fd, info)
        finally:
            os.close(fd)

    async def _send_open(
        self, send: Send, head: bool, receive: Receive | None, fd: int, info: os.stat_result
    ) -> None:
        described = FileInfo.of(self.filename or self.path, info)
        names = {name for name, _ in self._raw}
        headers = list(self._raw)
        status = self.status_code
        fields = [(b"etag", described.etag), (b"last-modified", described.last_modified)]
        if not no_body_status(status):  # a 204 or 304 has no body: neither a type nor a length
            fields.insert(0, (b"content-type", self._media_type or described.content_type))
            fields.append((b"content-length", str(described.size)))
        headers.extend((k, v.encode("latin-1")) for k, v in fields if k not in names)
        no_body = head or no_body_status(status) or described.size == 0
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if no_body:
            await send({"type": "http.response.body", "body": b""})
            return
        if receive is None:
            receive = _never_disconnects
        if await send_span(send, receive, fd, 0, described.size, CHUNK_SIZE):
            raise ClientDisconnected


def _open_regular(path: str) -> tuple[int, os.stat_result] | OSError:
    """Open ``path`` for reading if it is a regular file (in a worker thread)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        return error
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", path)
    except OSError as error:
        os.close(fd)
        return error
    return fd, info


async def _never_disconnects() -> dict[str, typing.Any]:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


def _disposition(kind: str, filename: str) -> bytes:
    """``Content-Disposition`` for ``filename``: plain when it is safe ASCII, RFC 5987 otherwise."""
    if kind not in ("attachment", "inline"):
        raise ValueError(f"content_disposition_type must be 'attachment' or 'inline', not {kind!r}")
    plain = filename.isascii() and all(c.isprintable() and c not in '"\\' for c in filename)
    if plain:
        return f'{kind}; filename="{filename}"'.encode("ascii")
    return f"{kind}; filename*=utf-8''{quote(filename, safe='')}".encode("ascii")
