# ``StaticFiles``: an ASGI app that serves the files under one directory, usually mounted
# (``app.mount("/static", StaticFiles(directory="static"))``).
#
# Where it sits: outside the request pipeline, as any mounted app. A request goes through three
# steps, each a plain function so it can be tested alone:
#
#   the URL path -> safe segments (``safe_parts``: pure; anything odd is a 404 here)
#     -> a file opened under the root (``_open_under``, in a thread: resolves symlinks and
#        refuses whatever lands outside the root, then opens without following a last symlink)
#     -> headers, conditional requests and ranges (pure), then the bytes, read in chunks in
#        threads and sent as they come.
#
# The promise: no request ever reads a file outside the root, and a missing or unreadable file
# is a 404, never a 500.
from __future__ import annotations

import email.utils
import errno
import mimetypes
import os
import stat
from collections.abc import Awaitable, Callable
from typing import Any, Final, final
from urllib.parse import quote

import attrs
import trio

from ._responses import is_same_site_reference
from ._url import PATH_SAFE, split_root

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

#: Bytes read (in a worker thread) and sent per body message.
CHUNK_SIZE = 64 * 1024

_UNSATISFIABLE: Final = "unsatisfiable"


def safe_parts(path: str, raw_path: bytes | None) -> tuple[str, ...] | None:
    """The segments of a request path, or ``None`` when the path is not a plain file path.

    Refused (so a 404): ``.`` and ``..`` segments (however they were encoded: ``%2e%2e``
    arrives decoded), empty segments (``a//b``), an encoded ``/`` or ``\\`` inside a segment
    (``%2f``, ``%5c``), any backslash, and NUL or other control characters. A trailing ``/``
    asks for a directory and gives no segment of its own.

    Args:
        path: The decoded path below the mount, starting with ``/``.
        raw_path: The same path as the client encoded it, if known.
    """
    if not path.startswith("/") or "\\" in path:
        return None
    if any(ord(c) < 0x20 or c == "\x7f" for c in path):
        return None
    if raw_path is not None:
        lowered = raw_path.lower()
        if b"%2f" in lowered or b"%5c" in lowered or b"%00" in lowered:
            return None
    parts = path[1:].split("/")
    if parts[-1] == "":
        parts.pop()  # ``/dir/`` (or ``/``): a directory
    if any(part in ("", ".", "..") for part in parts):
        return None
    return tuple(parts)


def parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """One ``Range: bytes=...`` header, as an inclusive ``(first, last)`` byte pair.

    Returns:
        The pair; ``"unsatisfiable"`` (a 416) for a range that starts past the end; ``None``
        for a header to ignore (another unit, several ranges, nonsense), which RFC 9110
        section 14.2 allows, and which serves the whole file.
    """
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    first_text, last_text = first_text.strip(), last_text.strip()
    if not dash or not _is_number(last_text, allow_empty=True):
        return None
    if not first_text:  # ``bytes=-500``: the last 500 bytes
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return _UNSATISFIABLE
        return (max(0, size - suffix), size - 1)
    if not _is_number(first_text, allow_empty=False):
        return None
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        return _UNSATISFIABLE
    last = int(last_text) if last_text else size - 1
    return (first, min(last, size - 1))


def _is_number(text: str, *, allow_empty: bool) -> bool:
    if not text:
        return allow_empty
    # ``isascii`` too: ``isdigit`` says yes to ``"²"``; and a bound, so ``int`` never has to
    # parse thousands of digits.
    return text.isascii() and text.isdigit() and len(text) <= 19


@attrs.frozen
class FileInfo:
    """What the headers of a file response say about the file."""

    size: int
    mtime: float
    etag: str
    last_modified: str
    content_type: str

    @classmethod
    def of(cls, name: str, info: os.stat_result) -> FileInfo:
        content_type, _ = mimetypes.guess_type(name, strict=False)
        content_type = content_type or "application/octet-stream"
        if content_type.startswith("text/") or content_type in _UTF8_TYPES:
            content_type += "; charset=utf-8"
        return cls(
            size=info.st_size,
            mtime=info.st_mtime,
            etag=f'"{info.st_mtime_ns:x}-{info.st_size:x}"',
            last_modified=email.utils.formatdate(info.st_mtime, usegmt=True),
            content_type=content_type,
        )

    def not_modified(self, headers: dict[bytes, bytes]) -> bool:
        """Whether the client's copy is current (``If-None-Match``, else ``If-Modified-Since``)."""
        match = headers.get(b"if-none-match")
        if match is not None:
            wanted = {_weak(tag) for tag in match.decode("latin-1").split(",")}
            return "*" in wanted or _weak(self.etag) in wanted
        since = headers.get(b"if-modified-since")
        if since is not None:
            try:
                when = email.utils.parsedate_to_datetime(since.decode("latin-1"))
            except (TypeError, ValueError, IndexError):
                return False
            return int(self.mtime) <= when.timestamp()
        return False

    def range_applies(self, headers: dict[bytes, bytes]) -> bool:
        """Whether ``Range`` is to be honoured: no ``If-Range``, or one that names this file."""
        condition = headers.get(b"if-range")
        if condition is None:
            return True
        text = condition.decode("latin-1").strip()
        if text.startswith('"'):
            return text == self.etag  # a strong comparison (RFC 9110 section 13.1.5)
        return text == self.last_modified


_UTF8_TYPES = frozenset({"application/javascript", "application/json", "image/svg+xml"})


def _weak(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


@attrs.frozen
class _Found:
    """The outcome of a lookup: an open file, a redirect to the directory's ``/``, or nothing."""

    fd: int | None = None
    info: FileInfo | None = None
    add_slash: bool = False
    not_found_page: bool = False  # ``404.html`` (``html=True``), served with status 404


@final
class StaticFiles:
    """Serve the files under ``directory``: ``app.mount("/static", StaticFiles(directory=...))``.

    ``GET`` and ``HEAD`` only. Each file has an ``ETag`` and a ``Last-Modified`` (a matching
    ``If-None-Match`` or ``If-Modified-Since`` is a 304), a ``Content-Type`` from its name, and
    one ``Range`` (``bytes=0-99``, ``bytes=500-``, ``bytes=-500``) is a 206; a range past the
    end is a 416. Files are read in chunks in worker threads, so a large file never blocks the
    event loop, and reading stops when the client leaves.

    Nothing outside ``directory`` is ever served: ``..``, however encoded, an encoded ``/`` or
    ``\\``, control characters and symbolic links that lead out of the directory are all 404,
    as is a missing or unreadable file (never a 500). Symbolic links that stay inside are
    followed. Dot files are served like any other: keep secrets out of the directory.

    Args:
        directory: The root of what is served.
        html: Serve ``index.html`` for a directory (redirecting ``/dir`` to ``/dir/`` first, so
            relative links work) and ``404.html``, if there is one, for a missing file.
        check_dir: Refuse, here, a ``directory`` that does not exist.
        chunk_size: Bytes per read and per body message.

    Raises:
        RuntimeError: ``check_dir`` and ``directory`` is not a directory.
    """

    def __init__(
        self,
        *,
        directory: str | os.PathLike[str],
        html: bool = False,
        check_dir: bool = True,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.directory = os.fspath(directory)
        self.root = os.path.realpath(self.directory)
        self.html = html
        self.chunk_size = chunk_size
        if check_dir and not os.path.isdir(self.root):
            raise RuntimeError(f"StaticFiles directory {self.directory!r} does not exist")

    def __repr__(self) -> str:
        return f"StaticFiles(directory={self.directory!r}, html={self.html!r})"

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _answer_lifespan(receive, send)
        elif kind == "http":
            await self._serve(scope, receive, send)
        elif kind == "websocket":
            # Refuse the handshake (servers answer it with a 403).
            await send({"type": "websocket.close", "code": 1008})
        else:
            raise RuntimeError(f"StaticFiles does not handle ASGI scope type {kind!r}")

    async def _serve(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _plain(send, 405, b"Method Not Allowed", [(b"allow", b"GET, HEAD")])
            return
        path, raw = split_root(scope)
        parts = safe_parts(path, raw)
        if parts is None:
            await _plain(send, 404, b"Not Found")
            return
        wants_dir = str(scope["path"]).endswith("/")
        found = await trio.to_thread.run_sync(self._lookup, parts, wants_dir)
        if found.add_slash:
            location = quote(str(scope.get("root_path") or ""), safe=PATH_SAFE)
            location += "/" + "/".join(quote(part, safe=PATH_SAFE) for part in parts) + "/"
            if not is_same_site_reference(location):  # a target built from the request
                await _plain(send, 404, b"Not Found")
                return
            await _plain(send, 307, b"", [(b"location", location.encode("latin-1"))])
            return
        if found.fd is None or found.info is None:
            await _plain(send, 404, b"Not Found")
            return
        try:
            await self._send_file(scope, receive, send, found.fd, found)
        finally:
            await trio.to_thread.run_sync(os.close, found.fd)

    def _lookup(self, parts: tuple[str, ...], wants_dir: bool) -> _Found:
        """Find and open what ``parts`` names (in a worker thread: it touches the disk)."""
        opened = _open_under(self.root, parts)
        if opened is not None:
            fd, info = opened
            if stat.S_ISREG(info.st_mode):
                return _Found(fd, FileInfo.of(parts[-1] if parts else "", info))
            os.close(fd)
            if stat.S_ISDIR(info.st_mode) and self.html:
                index = _open_file(self.root, (*parts, "index.html"))
                if index is not None:
                    if wants_dir:
                        return _Found(index[0], FileInfo.of("index.html", index[1]))
                    os.close(index[0])
                    return _Found(add_slash=True)
        if self.html:
            page = _open_file(self.root, ("404.html",))
            if page is not None:
                return _Found(page[0], FileInfo.of("404.html", page[1]), not_found_page=True)
        return _Found()

    async def _send_file(
        self, scope: dict[str, Any], receive: Receive, send: Send, fd: int, found: _Found
    ) -> None:
        info = found.info
        assert info is not None
        request_headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers", ()):
            request_headers.setdefault(name, value)
        headers = [
            (b"content-type", info.content_type.encode("latin-1")),
            (b"etag", info.etag.encode("latin-1")),
            (b"last-modified", info.last_modified.encode("latin-1")),
            (b"accept-ranges", b"bytes"),
        ]
        status, first, last = 200, 0, info.size - 1
        if found.not_found_page:
            status = 404
        elif info.not_modified(request_headers):
            # No body, so no Content-Type: the validators are what a cache updates from.
            headers = [(k, v) for k, v in headers if k != b"content-type"]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        else:
            wanted = request_headers.get(b"range")
            ranged = wanted is not None and scope["method"] == "GET"
            if wanted is not None and ranged and info.range_applies(request_headers):
                span = parse_range(wanted.decode("latin-1"), info.size)
                if span == _UNSATISFIABLE:
                    extra = [(b"content-range", f"bytes */{info.size}".encode())]
                    await _plain(send, 416, b"Range Not Satisfiable", extra)
                    return
                if isinstance(span, tuple):
                    status, (first, last) = 206, span
                    content_range = f"bytes {first}-{last}/{info.size}".encode()
                    headers.append((b"content-range", content_range))
        length = last - first + 1
        headers.append((b"content-length", str(length).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if scope["method"] == "HEAD" or length == 0:
            await send({"type": "http.response.body", "body": b""})
            return
        await send_span(send, receive, fd, first, length, self.chunk_size)


def _open_under(root: str, parts: tuple[str, ...]) -> tuple[int, os.stat_result] | None:
    """Open what ``parts`` names below ``root`` (read-only), or ``None``.

    The name is resolved first (every symbolic link followed) and refused unless it lands
    inside ``root``; the resolved name is then opened without following a symbolic link and
    without blocking (a FIFO put there meanwhile would otherwise hang the thread). Any
    ``OSError`` (missing, a permission, a name too long) is ``None``: a 404.
    """
    try:
        target = os.path.realpath(os.path.join(root, *parts))
    except (OSError, ValueError):
        return None
    if target != root and not target.startswith(root.rstrip(os.sep) + os.sep):
        return None
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(target, flags)
    except (OSError, ValueError):  # ValueError: a NUL that slipped through
        return None
    try:
        return fd, os.fstat(fd)
    except OSError:
        os.close(fd)
        return None


def _open_file(root: str, parts: tuple[str, ...]) -> tuple[int, os.stat_result] | None:
    """``_open_under``, for a regular file only."""
    opened = _open_under(root, parts)
    if opened is not None and not stat.S_ISREG(opened[1].st_mode):
        os.close(opened[0])
        return None
    return opened


async def send_span(
    send: Send, receive: Receive, fd: int, first: int, length: int, chunk_size: int
) -> bool:
    """Send ``length`` bytes of ``fd`` from ``first``, read chunk by chunk in worker threads.

    Stops early when the server reports the client gone (servers drop what is sent to a closed
    connection, so reading on would only waste the disk) or when the file shrank meanwhile (the
    response is then short of its ``Content-Length``, and the server closes the connection).

    Returns:
        Whether the client went away before the last byte (``FileResponse`` then discards the
        request's tasks, as a streaming response does).
    """
    gone = False
    offset, left = first, length

    async def watch_disconnect(cancel_scope: trio.CancelScope) -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        # A disconnect reported once the last chunk was handed over (as a test client does
        # at once) does not undo a response that is complete.
        gone = left > 0
        cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_disconnect, nursery.cancel_scope)
        while left > 0:
            chunk = await trio.to_thread.run_sync(read_at, fd, offset, min(chunk_size, left))
            if not chunk:
                break
            offset += len(chunk)
            left -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
        if left > 0:
            await send({"type": "http.response.body", "body": b""})  # short: the server closes
        nursery.cancel_scope.cancel()
    return gone


def read_at(fd: int, offset: int, size: int) -> bytes:
    try:
        return os.pread(fd, size, offset)
    except OSError as error:
        if error.errno == errno.EINTR:
            return os.pread(fd, size, offset)
        return b""


async def _plain(
    send: Send, status: int, text: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(text)).encode()),
        *(extra or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})


async def _answer_lifespan(receive: Receive, send: Send) -> None:
    """Nothing to set up or tear down: answer the startup and the shutdown, then return."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
