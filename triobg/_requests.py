# The incoming request: a lazy view over the ASGI scope plus the body read from ``receive``.
#
# Built once per request by the pipeline and injected into handlers that declare a ``Request``
# parameter. Nothing is parsed until asked for (headers, query, cookies), and the body is read
# under the app's limits: a body over ``max_body_size`` is a 413, JSON that is malformed or nested
# deeper than ``max_json_depth`` is a 422. A body that is refused is never read to its end: a
# ``Content-Length`` over the limit is refused from the header alone, a chunked body as soon as the
# running count passes the limit, and the pipeline answers with ``Connection: close`` instead of
# reading on. A body that a successful handler merely left unread is drained (up to the limit) so
# the connection can be kept alive: hypercorn's trio worker deadlocks otherwise (hypercorn#314).
from __future__ import annotations

import contextlib
import json
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote_plus

import attrs
import trio

from ._convert import ErrorDetail
from ._exceptions import HTTPException, RequestValidationError
from ._headers import Headers
from ._url import URL, Address

if typing.TYPE_CHECKING:
    from ._app import App
    from ._forms import FormData
    from ._uploads import UploadFile, UploadLimits

Receive = Callable[[], Awaitable[dict[str, Any]]]


@attrs.frozen
class RequestLimits:
    """Bounds on what a client may send; each breach is a clear 4xx, never a 500 or a hang.

    Attributes:
        max_body_size: Largest request body in bytes (413 beyond it).
        max_json_depth: Deepest nesting of arrays/objects in a JSON body (422 beyond it).
        max_query_params: Most ``key=value`` pairs in a query string (400 beyond it).
        min_body_rate: Bytes per second a body must arrive at, on average, once
            ``body_grace`` seconds have passed since the app began to read it; slower is a
            408 and the connection is closed. ``None``: no limit. A minimum rate rather than
            a fixed time, so that a large upload on a slow link is fine while a client
            trickling a byte at a time (which a server's read timeout never catches, since
            each byte restarts it) cannot hold a request open: the body's deadline moves one
            second further for every ``min_body_rate`` bytes received.
        body_grace: Seconds any body gets before the rate counts (slow starts, small bodies).
    """

    max_body_size: int = 1024 * 1024
    max_json_depth: int = 64
    max_query_params: int = 1000
    min_body_rate: float | None = 1024.0
    body_grace: float = 10.0


class State:
    """Attribute access over a dict: ``request.state.db`` for lifespan state ``{"db": ...}``."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", data if data is not None else {})

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"state has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._data[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"State({self._data!r})"


class QueryParams(Mapping[str, str]):
    """The query string as a multi-dict: ``params["tag"]`` is the last value, ``getlist`` all."""

    __slots__ = ("_items", "_last")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._last = dict(items)

    def __getitem__(self, key: str) -> str:
        return self._last[key]

    # ``get`` and ``in`` straight from the dict: Mapping's versions go through ``__getitem__``
    # and a KeyError for every absent key, and the solver calls ``get`` for each query value.
    def get(self, key: str, default: Any = None) -> Any:
        """The last value of ``key``, or ``default`` when the query string has none."""
        return self._last.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._last

    def __iter__(self) -> typing.Iterator[str]:
        return iter(self._last)

    def __len__(self) -> int:
        return len(self._last)

    def getlist(self, key: str) -> list[str]:
        return [v for k, v in self._items if k == key]

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._items)


_NO_BODY = b""


class HTTPConnection:
    """What a ``Request`` and a ``WebSocket`` have in common: the handshake's scope, read lazily.

    Declare a parameter of this type in a dependency that serves both HTTP routes and WebSocket
    routes (an authentication check, say); each gets its own connection object.

    Attributes:
        scope: The raw ASGI scope.
        app: The ``App`` that is handling the connection (a mounted app, under a mount).
        path_params: Path parameters as strings, from the matched route template.
    """

    __slots__ = ("_cookies", "_headers", "_query", "_url", "app", "path_params", "scope")

    def __init__(self, scope: dict[str, Any], app: App) -> None:
        self.scope = scope
        self.app = app
        self.path_params: Mapping[str, str] = {}
        self._headers: Headers | None = None
        self._query: QueryParams | None = None
        self._cookies: dict[str, str] | None = None
        self._url: URL | None = None

    @property
    def path(self) -> str:
        """The path being routed, the scope's ``path`` (percent-decoded, no query string)."""
        path: str = self.scope["path"]
        return path

    @property
    def url(self) -> URL:
        """The whole URL, with scheme, host, root path, path and query string.

        The host is the ``Host`` header's, else the server's address. ``str(request.url)`` is
        the text, ``request.url.path`` the path (decoded).
        """
        if self._url is None:
            self._url = URL.from_scope(self.scope)
        return self._url

    @property
    def base_url(self) -> URL:
        """The URL of the app's root (scheme, host and ``root_path``), ending with ``/``."""
        return URL.from_scope(self.scope, base=True)

    def url_for(self, name: str, /, **path_params: Any) -> URL:
        """The absolute URL of the route called ``name``, with ``path_params`` filled in.

        Routes are named after their function unless given ``name=``; a route of a mounted app
        is ``"mount_name:route_name"``. The names are those of ``request.app``: in a mounted
        app, its own routes. The URL starts with ``base_url`` (so it honours the
        root path); its host comes from the request's ``Host`` header, so do not put it in
        messages sent elsewhere (e-mail) unless a proxy you trust sets that header.

        Raises:
            NoMatchFound: no route has that name, or the parameters do not fit its path.
        """
        path = self.app.url_path_for(name, **path_params)
        base = self.base_url
        return URL(str(base).rstrip("/") + path)

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self.scope.get("headers", []))
        return self._headers

    @property
    def query_params(self) -> QueryParams:
        if self._query is None:
            raw = self.scope.get("query_string", b"")
            self._query = QueryParams(parse_query(raw) if raw else [])
        return self._query

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies by name (the first one wins when a name repeats)."""
        if self._cookies is None:
            parsed: dict[str, str] = {}
            for header in self.headers.getlist("cookie"):
                parse_cookie_header(header, parsed)
            self._cookies = parsed
        return self._cookies

    @property
    def client(self) -> Address | None:
        """The client's ``host`` and ``port``; ``None`` when the server does not say (a Unix
        socket, some test clients)."""
        client = self.scope.get("client")
        if not client:
            return None
        return Address(str(client[0]), client[1] if len(client) > 1 else None)

    @property
    def state(self) -> State:
        """Lifespan state (what the lifespan yielded), shared by every request."""
        return State(self.scope.setdefault("state", {}))


class Request(HTTPConnection):
    """One HTTP request as the handler sees it.

    Attributes:
        scope: The raw ASGI scope.
        path_params: Path parameters as strings, from the matched route template.
    """

    __slots__ = (
        "_body",
        "_body_done",
        "_body_started",
        "_disconnected",
        "_form",
        "_json",
        "_receive",
        "_received",
        "_started_stream",
        "_upload_limits",
        "_uploads",
        "limits",
    )

    def __init__(self, scope: dict[str, Any], receive: Receive, app: App) -> None:
        # The fields of ``HTTPConnection`` set here, not through its ``__init__``: a request is
        # built for every call, and one function call fewer is measurable.
        self.scope = scope
        self._receive = receive
        self.app = app
        self.limits: RequestLimits = app.limits
        self.path_params = {}
        self._headers = None
        self._query = None
        self._cookies = None
        self._url = None
        self._body: bytes | None = None
        self._json: Any = _NO_BODY
        self._body_done = False
        self._received = 0  # body bytes taken from ``receive`` so far
        self._body_started: float | None = None  # trio time of the first body read
        self._started_stream = False
        self._disconnected = False
        self._form: FormData | None = None
        self._uploads: list[UploadFile] = []  # every file made for this request, to delete
        self._upload_limits: UploadLimits = app.upload_limits  # the route's, once matched

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def query_params(self) -> QueryParams:
        if self._query is None:
            raw = self.scope.get("query_string", b"")
            if not raw:
                self._query = QueryParams([])
            else:
                limit = self.limits.max_query_params
                count = raw.count(b"&") + raw.count(b";") + 1
                if count > limit:  # refuse before doing any work for the flood
                    raise HTTPException(
                        400, f"too many query parameters: {count} (the limit is {limit})"
                    )
                self._query = QueryParams(parse_query(raw))
        return self._query

    async def stream(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives, enforcing ``max_body_size``.

        Raises:
            HTTPException: 413 when the body grows past the limit.
            RuntimeError: the body was already consumed by ``body()`` or another ``stream()``.
        """
        async with contextlib.aclosing(self._chunks(self.limits.max_body_size)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _chunks(self, limit: int) -> AsyncGenerator[bytes, None]:
        """``stream()`` with the size limit given: form uploads have their own."""
        if self._body is not None:
            yield self._body
            return
        if self._started_stream:
            raise RuntimeError("the request body has already been consumed")
        self._started_stream = True
        declared = self._declared_length()
        if declared is not None and declared > limit:
            # Refused from the header alone: not one byte of the body is asked for.
            raise HTTPException(413, f"request body too large: {declared} bytes (limit {limit})")
        while not self._body_done:
            message = await self._receive_in_time()
            if message is None:
                # Refused like an oversized body: the rest is never read, the connection closes.
                raise HTTPException(408, self._too_slow_message())
            if message["type"] == "http.disconnect":
                self._disconnected = True
                self._body_done = True
                # What arrived is not the whole body: a handler must never take it for one (and
                # run tasks on a truncated upload). The request fails; its tasks are discarded.
                raise HTTPException(400, "the client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            self._body_done = not message.get("more_body", False)
            self._received += len(chunk)
            if self._received > limit:
                # Refused as soon as the count passes the limit; the rest is never read.
                raise HTTPException(413, f"request body too large: over {limit} bytes")
            if chunk:
                yield chunk

    async def body(self) -> bytes:
        """The whole body (read once, then cached)."""
        if self._body is None:
            chunks = [chunk async for chunk in self._chunks(self.limits.max_body_size)]
            self._body = b"".join(chunks)
        return self._body

    async def form(self) -> FormData:
        """The body read as a form (``multipart/form-data`` or urlencoded), once, then cached.

        Files are streamed to disk as they arrive and stay there until the request's
        background tasks have finished (see ``UploadFile``); the limits are the route's
        ``upload_limits`` (else the app's).

        Raises:
            HTTPException: 415 for a body that is not a form, 400 for a malformed one, 413 for
                one over a limit, 408 for one that arrives too slowly.
        """
        if self._form is None:
            from ._forms import read_form  # here: _forms imports this module

            self._form = await read_form(self, self._upload_limits)
        return self._form

    async def _delete_uploads(self) -> None:
        """Close and delete the request's temporary files (at its very end, or on failure).

        In a worker thread, because unlinking a large file takes the kernel tens of
        milliseconds (it frees every page), which would stall every other request; shielded,
        because this runs in the pipeline's ``finally``, also while the request is being
        cancelled, and must not be cut short and leave a file behind. The work is bounded: a
        close and an unlink per file.
        """
        uploads, self._uploads = self._uploads, []
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_discard_all, uploads)

    async def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            RequestValidationError: the body is not valid UTF-8 JSON or nests too deeply.
        """
        if self._json is _NO_BODY:
            self._json = parse_json(await self.body(), self.limits.max_json_depth)
        return self._json

    def _parsed_json(self) -> Any:
        """The JSON body if it has been parsed already, else ``None``."""
        return None if self._json is _NO_BODY else self._json

    async def is_disconnected(self) -> bool:
        """Whether the client has gone away (only known once the body has been read)."""
        return self._disconnected

    def _has_unread_body(self) -> bool:
        """Whether the client announced a body that nobody has read yet.

        A request without ``Content-Length``/``Transfer-Encoding`` (or with length 0) queues at
        most one empty message in the server, so there is nothing to drain and the pipeline can
        skip a ``receive`` round trip.
        """
        if self._body_done:
            return False
        if self.scope.get("http_version") in ("2", "3"):
            return True  # HTTP/2 and /3 bodies need not announce a length
        for name, value in self.scope.get("headers", ()):
            if name == b"content-length":
                return value.strip() not in (b"0", b"")
            if name == b"transfer-encoding":
                return True
        return False

    async def _receive_in_time(self) -> dict[str, Any] | None:
        """The next body message, or ``None`` if it did not come before the body's deadline.

        The deadline follows ``min_body_rate`` (see ``RequestLimits``), counted from the first
        read of the body. The server's ``receive`` is a queue read, safe to cancel.
        """
        rate = self.limits.min_body_rate
        if rate is None:
            return await self._receive()
        if self._body_started is None:
            self._body_started = trio.current_time()
        deadline = self._body_started + self.limits.body_grace + self._received / rate
        with trio.move_on_at(deadline):
            return await self._receive()
        return None

    def _too_slow_message(self) -> str:
        assert self._body_started is not None
        elapsed = trio.current_time() - self._body_started
        return (
            f"request body too slow: {self._received} bytes in {elapsed:.0f} s (at least "
            f"{self.limits.min_body_rate:g} bytes/s after {self.limits.body_grace:g} s)"
        )

    def _declared_length(self) -> int | None:
        """The ``Content-Length`` the client announced, when it is a plain number."""
        declared = self.headers.get("content-length")
        if declared is None:
            return None
        declared = declared.strip()
        # ``isascii`` too: ``isdigit`` also says yes to ``"²"``, which ``int`` refuses.
        return int(declared) if declared.isascii() and declared.isdigit() else None

    async def _drain(self) -> bool:
        """Read and discard what a successful handler left unread, up to ``max_body_size``.

        hypercorn's trio worker blocks the connection once its per-request queue (10 messages)
        is full and nobody reads it (hypercorn#314), so a body the handler ignored is read out
        to keep the connection usable. Within the limit that costs no more than a handler that
        did read it; beyond the limit it would be a free way to make the server read without
        end, so draining stops there.

        Returns:
            Whether the body was read to its end (or the client left). ``False``: the body is
            over the limit, announced or counted, and the rest was left unread; the caller must
            close the connection after its response.
        """
        if "triobg.unread_body_closes" in self.scope.get("extensions", ()):
            # triobg's own server closes the connection after a response whose request body
            # was not read, so a body is never read (nor ``100 Continue`` invited) for that.
            return False
        limit = self.limits.max_body_size
        declared = self._declared_length()
        if declared is not None and declared > limit:
            return False
        while not self._body_done:
            message = await self._receive_in_time()
            if message is None:
                return False  # a trickle: refused like an oversized body
            if message["type"] == "http.disconnect":
                self._disconnected = True
                break
            self._body_done = not message.get("more_body", False)
            self._received += len(message.get("body", b""))
            if self._received > limit and not self._body_done:
                return False
        self._body_done = True
        return True


def _discard_all(uploads: list[UploadFile]) -> None:
    for upload in uploads:
        upload._discard()


def parse_cookie_header(header: str, into: dict[str, str]) -> None:
    """Read ``a=1; b="two"`` into ``into``, in one linear pass.

    Not ``http.cookies.SimpleCookie``: it rejects whole headers over one odd cookie, and before
    CPython 3.11.10 its unquoting is quadratic in backslashes (CVE-2024-7592), which lets one
    16 KiB header stall the event loop for seconds. Browsers send plain ``name=value`` pairs;
    surrounding double quotes are removed, nothing else is unescaped.
    """
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        into.setdefault(name, value)


def parse_query(raw: bytes) -> list[tuple[str, str]]:
    """Split a query string into ``(name, value)`` pairs, keeping blanks and order.

    Percent-escapes and ``+`` are decoded as UTF-8 (invalid sequences become U+FFFD, never an
    error); pairs without ``=`` have an empty value. Faster than ``parse_qsl`` for the short
    query strings most requests carry, because plain pairs skip unquoting entirely.
    """
    text = raw.decode("utf-8", errors="replace")
    items: list[tuple[str, str]] = []
    for part in text.replace(";", "&").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in part or "+" in part:
            name = unquote_plus(name, errors="replace")
            value = unquote_plus(value, errors="replace")
        items.append((name, value))
    return items


def parse_json(raw: bytes, max_depth: int) -> Any:
    """Parse a JSON request body with located, readable errors."""
    if not raw:
        raise RequestValidationError([ErrorDetail(("body",), "a JSON body is required", "missing")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestValidationError(
            [
                ErrorDetail(
                    ("body",), f"body is not valid UTF-8 (byte {error.start})", "json_invalid"
                )
            ]
        ) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise RequestValidationError(
            [
                ErrorDetail(
                    ("body",),
                    f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}",
                    "json_invalid",
                )
            ]
        ) from None
    except RecursionError:
        raise _too_deep_error(max_depth) from None
    except ValueError:
        # Not a JSONDecodeError (caught above): an integer longer than Python's
        # ``sys.get_int_max_str_digits()`` (4300 by default). The client's input, so a 422.
        raise RequestValidationError(
            [ErrorDetail(("body",), "invalid JSON: a number has too many digits", "json_invalid")]
        ) from None
    if _too_deep(value, max_depth):
        raise _too_deep_error(max_depth)
    if b"\\u" in raw:  # a lone surrogate can only arrive as a ``\\uD800``-style escape
        where = _lone_surrogate(value)
        if where is not None:
            raise RequestValidationError(
                [
                    ErrorDetail(
                        ("body", *where),
                        "a string holds a lone surrogate escape (\\uD800-\\uDFFF without its "
                        "pair): not Unicode text",
                        "json_invalid",
                    )
                ]
            )
    return value


def _lone_surrogate(value: Any) -> tuple[str | int, ...] | None:
    """Where in ``value`` a string (or an object key) holds a lone surrogate, if anywhere.

    Python's JSON parser accepts ``"\\ud800"`` and yields a ``str`` that cannot be encoded as
    UTF-8: echoed back, written to a database or a log, it fails far from the request that
    brought it. It is no Unicode text at all, so it is refused here, located, as a 422. For a
    bad key the location is the object that holds it (the key itself cannot be shown).
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if _has_surrogate(node):
                return path
        elif isinstance(node, dict):
            for key, child in node.items():
                if _has_surrogate(key):
                    return path
                stack.append((child, (*path, key)))
        elif isinstance(node, list):
            stack.extend((child, (*path, index)) for index, child in enumerate(node))
    return None


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _too_deep_error(max_depth: int) -> RequestValidationError:
    return RequestValidationError(
        [ErrorDetail(("body",), f"JSON nested deeper than {max_depth} levels", "json_too_deep")]
    )


def _too_deep(value: Any, max_depth: int) -> bool:
    if not isinstance(value, list | dict):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, list | dict))
    return False
