# Response objects: what a handler returns, and how it is written to the ASGI ``send`` callable.
#
# The pipeline (``_pipeline.py``) calls ``Response._send`` once; the moment that call returns,
# the final ``http.response.body`` message has been handed to the server (under hypercorn: the
# bytes are in the kernel), and only then may background tasks start. Responses never run tasks
# themselves: a ``background=`` given here is merged into the request's one ``BackgroundTasks``.
from __future__ import annotations

import contextlib
import functools
import typing
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from http.cookies import SimpleCookie
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import trio

from ._encode import dump_json
from ._headers import MutableHeaders, RawHeaders, encode_header

if typing.TYPE_CHECKING:
    from ._background import BackgroundTasks
    from ._requests import Receive

Send = Callable[[dict[str, Any]], Awaitable[None]]

#: Largest body message a plain response hands to the server at once (see ``Response._send``).
BODY_SLICE = 64 * 1024


class Response:
    """A complete response with a body known up front.

    Args:
        content: ``bytes`` are sent as they are, ``str`` is encoded as UTF-8; subclasses render
            other values (``JSONResponse`` takes any JSON-serialisable value).
        status_code: The HTTP status.
        headers: Extra headers; CR/LF in a value raises ``ValueError`` (header injection).
        media_type: The ``Content-Type`` (``; charset=utf-8`` is added for ``text/*``).
        background: Tasks to run after this response is sent; they are merged with the ones the
            request's injected ``BackgroundTasks`` collected, after them.
    """

    media_type: ClassVar[str | None] = None
    charset: ClassVar[str] = "utf-8"

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTasks | None = None,
    ) -> None:
        self.status_code = status_code
        self.background = background
        self.body = self.render(content)
        self._raw: RawHeaders = []
        if headers:
            self._raw.extend(encode_header(k, v) for k, v in headers.items())
        self._init_content_headers(media_type or self.media_type)

    def render(self, content: Any) -> bytes:
        """Turn ``content`` into the body bytes."""
        if content is None:
            return b""
        if isinstance(content, bytes | bytearray | memoryview):
            return bytes(content)
        if isinstance(content, str):
            return content.encode(self.charset)
        raise TypeError(
            f"{type(self).__name__} takes bytes or str content, not {type(content).__name__}; "
            "use JSONResponse for other values"
        )

    def _init_content_headers(self, media_type: str | None) -> None:
        raw = self._raw
        names = {k for k, _ in raw} if raw else ()
        if no_body_status(self.status_code):
            return  # no body, so nothing to give a length or a type to (an explicit header stays)
        if b"content-length" not in names:
            raw.append((b"content-length", str(len(self.body)).encode()))
        if media_type is not None and b"content-type" not in names:
            raw.append((b"content-type", _content_type(media_type, self.charset)))

    @property
    def headers(self) -> MutableHeaders:
        """The response headers, case-insensitive; changes apply to this response."""
        return MutableHeaders(self._raw)

    @property
    def raw_headers(self) -> RawHeaders:
        return self._raw

    def set_cookie(
        self,
        key: str,
        value: str = "",
        *,
        max_age: int | None = None,
        expires: int | str | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = True,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
    ) -> None:
        """Add a ``Set-Cookie`` header.

        The defaults are the safe ones: ``HttpOnly`` (scripts cannot read the cookie) and
        ``SameSite=Lax`` (no cross-site POSTs carry it). ``SameSite=None`` requires ``secure``.

        Raises:
            ValueError: the key or value cannot be carried safely in a cookie, or
                ``samesite="none"`` without ``secure=True``.
        """
        if samesite is not None and samesite.lower() not in ("lax", "strict", "none"):
            raise ValueError("samesite must be 'lax', 'strict' or 'none'")
        if samesite is not None and samesite.lower() == "none" and not secure:
            raise ValueError("browsers reject SameSite=None cookies that are not secure")
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie[key] = value
        except Exception as error:  # http.cookies.CookieError is not exported as a type
            raise ValueError(f"invalid cookie name {key!r}: {error}") from None
        morsel = cookie[key]
        if max_age is not None:
            morsel["max-age"] = str(max_age)
        if expires is not None:
            morsel["expires"] = expires
        if path is not None:
            morsel["path"] = path
        if domain is not None:
            morsel["domain"] = domain
        if secure:
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        if samesite is not None:
            morsel["samesite"] = samesite.capitalize()
        self._raw.append(encode_header("set-cookie", morsel.OutputString()))

    def delete_cookie(self, key: str, *, path: str = "/", domain: str | None = None) -> None:
        """Tell the client to forget a cookie."""
        self.set_cookie(key, max_age=0, expires=0, path=path, domain=domain)

    async def _send(self, send: Send, head: bool, receive: Receive | None = None) -> None:
        """Write the whole response; returns once the last body message has been handed over.

        ``receive`` (the request's, its body already read) lets a streaming response notice a
        client that has gone; a complete body is handed over at once and needs no watch.

        A body larger than ``BODY_SLICE`` goes out in slices of that size: hypercorn writes each
        message to the socket inside a shielded cancel scope, so a single 20 MB message to a
        client that reads slowly could not be stopped by the shutdown deadline for as long as
        the client takes. Between slices, it can.
        """
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self._raw}
        )
        status = self.status_code
        # HEAD, 1xx, 204 and 304 carry no body, whatever the response holds (a server that
        # follows the protocol, as h11 does, refuses to send one).
        body = b"" if head or status < 200 or status in (204, 304) else self.body
        if len(body) > BODY_SLICE:
            view = memoryview(body)
            last = (len(body) - 1) // BODY_SLICE * BODY_SLICE  # where the final slice begins
            for start in range(0, last, BODY_SLICE):
                chunk = bytes(view[start : start + BODY_SLICE])
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            body = bytes(view[last:])
        await send({"type": "http.response.body", "body": body})


@functools.cache
def _content_type(media_type: str, charset: str) -> bytes:
    if media_type.startswith("text/") and "charset=" not in media_type:
        media_type = f"{media_type}; charset={charset}"
    return media_type.encode("latin-1")


_JSON_CONTENT_TYPE = (b"content-type", b"application/json")


def no_body_status(status: int) -> bool:
    """Whether a response with this status has no body (1xx, 204, 304): no Content-Length."""
    return status < 200 or status in (204, 304)


class PlainTextResponse(Response):
    """A ``text/plain; charset=utf-8`` response."""

    media_type = "text/plain"


class HTMLResponse(Response):
    """A ``text/html; charset=utf-8`` response."""

    media_type = "text/html"


class JSONResponse(Response):
    """A JSON response; ``content`` may be any value triobg can encode (attrs instances too)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dump_json(content)

    @classmethod
    def _encoded(cls, body: bytes, status_code: int, no_body: bool) -> JSONResponse:
        """The pipeline's path for a handler's return value: already encoded, no extra headers.

        ``no_body`` is ``no_body_status(status_code)``, which the route works out once.
        """
        response = cls.__new__(cls)
        response.status_code = status_code
        response.background = None
        response.body = body
        if no_body:
            response.body = b""  # a 204 or 304 has no body, not even ``null``, so no type
            response._raw = []
        else:
            response._raw = [(b"content-length", str(len(body)).encode()), _JSON_CONTENT_TYPE]
        return response


class RedirectResponse(Response):
    """Redirect to ``url`` (``307`` keeps the method and body; ``303`` turns it into a GET).

    Any target the application writes is accepted, as in FastAPI: a path on this site
    (``/login``) or another site (``https://accounts.example/login``). What is refused is a
    target taken *from the request* that leads to another site (``?next=https://evil.example``,
    ``?next=//evil.example``), the classic open redirect: when a handler returns a redirect to
    another site, the pipeline compares the target with what the client sent (query and path
    parameters, the body) and answers 400 instead if it is one of them. A handler that means to
    send clients to a site they named passes ``allow_external=True``; one that only wants to
    honour same-site targets uses ``same_site_path(next, default="/")``.

    Raises:
        ValueError: ``url`` holds a control character (CR or LF would split the headers, and
            browsers drop tabs and newlines in ways that change where a URL leads). Raised in
            a handler it is answered 400, since such a target is, in practice, one a client
            sent.
    """

    def __init__(
        self,
        url: str,
        status_code: int = 307,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTasks | None = None,
        *,
        allow_external: bool = False,
    ) -> None:
        if any(ord(c) < 0x20 or c == "\x7f" for c in url):
            raise UnsafeRedirect(f"refusing to redirect to {url!r}: it holds a control character")
        super().__init__(None, status_code, headers, background=background)
        self._raw.append(encode_header("location", url))
        self.url = url
        #: Off-site and not vouched for: the pipeline checks it was not taken from the request.
        self._check_origin = not allow_external and not is_same_site_reference(url)


class UnsafeRedirect(ValueError):
    """Internal: a redirect target with a control character (answered 400, see ``_errors``)."""


def same_site_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site, else ``default``: for a target from the request.

    ``RedirectResponse(same_site_path(request.query_params.get("next")))`` never sends a
    client elsewhere and never fails: ``https://evil.example``, ``//evil.example``,
    ``/\\evil.example`` and the like all become ``default``.
    """
    if target is not None and is_same_site_reference(target):
        return target
    return default


def is_same_site_reference(url: str) -> bool:
    """Whether ``url`` is a path on this site (``/a/b?c``), not ``//host`` or ``scheme:``."""
    if not url.startswith("/") or url.startswith(("//", "/\\")):
        return False
    if any(c in url for c in "\r\n\t\0"):
        return False
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc


ContentStream = AsyncIterable[str | bytes] | Iterable[str | bytes]


class StreamingResponse(Response):
    """A response whose body is produced chunk by chunk.

    ``content`` may be an async iterable (iterated in the event loop) or a plain iterable
    (each ``next`` runs in a worker thread, so a blocking generator does not stall the loop).
    Background tasks start after the last chunk has been sent.

    The stream stops as soon as the server reports the client gone, and the request's tasks are
    then discarded (named in the log): the client does not have the response they follow. A
    client that only half-closes (shuts down its sending side after the request, and still
    reads) counts as gone too: hypercorn reports that end of input to the app exactly as it
    reports a closed connection, and what is sent to a closed connection vanishes without an
    error, so streaming on would let every vanished client hold an endless stream until
    shutdown. A complete ``Response`` is handed over in one piece and reaches a half-closed
    client whole. HTTP/1.1 clients should not half-close before the response (RFC 9112 9.6).
    """

    def __init__(
        self,
        content: ContentStream,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTasks | None = None,
    ) -> None:
        self._content = content
        super().__init__(None, status_code, headers, media_type, background)

    def _init_content_headers(self, media_type: str | None) -> None:
        if media_type is None or no_body_status(self.status_code):
            return  # a 204 or 304 has no body to give a type to
        if not any(k == b"content-type" for k, _ in self._raw):
            self._raw.append((b"content-type", media_type.encode("latin-1")))

    async def _send(self, send: Send, head: bool, receive: Receive | None = None) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self._raw}
        )
        if not head:
            if receive is None:
                await self._send_chunks(send)
            else:
                # Servers accept, and drop, what is sent to a client that has gone (hypercorn
                # does), so an endless stream would run on until shutdown: watch ``receive`` for
                # the disconnect and stop producing.
                gone = False
                async with trio.open_nursery() as nursery:

                    async def watch_disconnect() -> None:
                        nonlocal gone
                        while (await receive())["type"] != "http.disconnect":
                            pass
                        gone = True
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(watch_disconnect)
                    await self._send_chunks(send)
                    nursery.cancel_scope.cancel()
                if gone:
                    raise ClientDisconnected
        await send({"type": "http.response.body", "body": b""})

    async def _send_chunks(self, send: Send) -> None:
        # ``aclosing``: a send cut off (client gone, shutdown) must close the generators now,
        # not leave them to the garbage collector.
        async with contextlib.aclosing(_iterate(self._content)) as chunks:
            async for chunk in chunks:
                data = chunk.encode(self.charset) if isinstance(chunk, str) else bytes(chunk)
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})


class ClientDisconnected(Exception):
    """Internal: the client went away before a streaming response was complete."""


async def _iterate(content: ContentStream) -> typing.AsyncGenerator[str | bytes, None]:
    if isinstance(content, AsyncIterable):
        try:
            async for chunk in content:
                yield chunk
        finally:
            aclose = getattr(content, "aclose", None)
            if aclose is not None:
                await aclose()
        return
    iterator = iter(content)
    while True:
        item = await trio.to_thread.run_sync(_next_or_none, iterator)
        if item is None:
            return
        yield item


def _next_or_none(iterator: typing.Iterator[str | bytes]) -> str | bytes | None:
    return next(iterator, None)
