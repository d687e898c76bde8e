# A small HTTP/1.1 client over trio sockets, for end-to-end tests against a real server.
#
# Where it sits: tests start the app with ``serve_live`` (``_live.py``) and talk to it through
# this client, so they see exactly what a network client sees: when bytes arrive, when the
# connection is kept alive or closed. h11 does the protocol; this module only moves bytes, and
# keeps every wait bounded by a timeout so a test can fail but never hang.
#
# Unlike a general purpose client it lets a test do what real clients do to servers: keep one
# connection for several requests, pipeline (send several requests before reading), stream a
# chunked upload, and close right after a response.
from __future__ import annotations

import collections
import json as jsonlib
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, final

import attrs
import h11
import trio

HeaderInput = Mapping[str, str] | Sequence[tuple[str, str]]
Body = bytes | Iterable[bytes] | AsyncIterable[bytes]

_FRAMING = {"content-length", "transfer-encoding"}


@attrs.frozen
class HTTP11Response:
    """One complete response as the client received it.

    Attributes:
        status: The status code.
        reason: The reason phrase (``"OK"``).
        headers: ``(name, value)`` pairs in the order received; names are lower case.
        body: The whole body, de-chunked.
        http_version: ``"1.1"`` or ``"1.0"``.
    """

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    http_version: str = "1.1"

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode()

    def json(self) -> Any:
        """The body parsed as JSON."""
        return jsonlib.loads(self.body)


class HTTP11Error(Exception):
    """The server broke the protocol or closed the connection before a complete response."""


@final
class HTTP11Connection:
    """One HTTP/1.1 connection to a server, usable for several requests.

    Open it with ``connect`` and use it as an async context manager so it is always closed::

        async with await HTTP11Connection.connect("127.0.0.1", port) as conn:
            first = await conn.request("GET", "/a")
            second = await conn.request("POST", "/b", body=b"...")

    Every network wait is bounded by ``timeout`` seconds and raises ``trio.TooSlowError`` when
    it runs out.
    """

    def __init__(self, stream: trio.SocketStream, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._stream = stream
        # ``_reader`` parses responses. h11 only lets a client send the next request once the
        # previous response has been read, so requests are written with a throwaway h11
        # connection each, and replayed into ``_reader`` (bytes discarded) just before their
        # response is read: that keeps pipelining possible and tells h11 each response's method.
        self._reader = h11.Connection(h11.CLIENT, max_incomplete_event_size=1024 * 1024)
        self._unanswered: collections.deque[h11.Request] = collections.deque()
        self._send_failed: BaseException | None = None
        self._eof = False

    @classmethod
    async def connect(cls, host: str, port: int, *, timeout: float = 10.0) -> HTTP11Connection:
        """Open a TCP connection to ``host:port``."""
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(host, port)
        return cls(stream, host, port, timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection now, whatever is in flight (a client hanging up early)."""
        await self._stream.aclose()

    # --- requests --------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: HeaderInput | None = None,
        body: Body = b"",
        json: Any = None,
    ) -> HTTP11Response:
        """Send one request and read its response.

        The body is sent while the response is being read, as real clients do: a server may
        answer before it has read the whole upload, and a client that insisted on finishing the
        upload first could deadlock with it.

        Args:
            method: ``"GET"``, ``"POST"``, ...
            target: The request target, e.g. ``"/items?limit=3"``.
            headers: Extra headers; ``Host`` and the body framing are added when missing.
            body: ``bytes`` (sent with ``Content-Length``), or an iterable / async iterable of
                ``bytes`` (sent chunked, one chunk per item).
            json: Send this as a JSON body instead of ``body``.
        """
        writer, head, body = self._prepare(method, target, headers, body, json)
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._transmit_tolerating_early_answer, writer, head, body)
            try:
                response = await self.read_response()
            except Exception as error:
                # Re-raised below as itself, not wrapped in the nursery's ExceptionGroup.
                failure = error
                nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure
        return response

    async def _transmit_tolerating_early_answer(
        self, writer: h11.Connection, head: bytes, body: Body
    ) -> None:
        try:
            await self._transmit(writer, head, body)
        except trio.BrokenResourceError as error:
            # The server answered and closed before taking the whole upload; the reader sees
            # the answer (or the close) and reports it.
            self._send_failed = error

    async def send_request(
        self,
        method: str,
        target: str,
        *,
        headers: HeaderInput | None = None,
        body: Body = b"",
        json: Any = None,
    ) -> None:
        """Send one request without reading anything; call ``read_response`` for its answer.

        Call it several times before reading to pipeline requests. Arguments are as for
        ``request``.
        """
        writer, head, body = self._prepare(method, target, headers, body, json)
        await self._transmit(writer, head, body)

    def _prepare(
        self, method: str, target: str, headers: HeaderInput | None, body: Body, json: Any
    ) -> tuple[h11.Connection, bytes, Body]:
        fields = list(headers.items() if isinstance(headers, Mapping) else headers or [])
        if json is not None:
            body = jsonlib.dumps(json).encode()
            fields.append(("content-type", "application/json"))
        names = {name.lower() for name, _ in fields}
        if "host" not in names:
            fields.insert(0, ("host", f"{self.host}:{self.port}"))
        if not names & _FRAMING:
            if isinstance(body, bytes):
                if body or method.upper() in {"POST", "PUT", "PATCH"}:
                    fields.append(("content-length", str(len(body))))
            else:
                fields.append(("transfer-encoding", "chunked"))
        writer = h11.Connection(h11.CLIENT)
        head = writer.send(h11.Request(method=method, target=target, headers=fields))
        # The replay for ``_reader`` keeps what decides the response framing (the method, and
        # ``Connection: close``) but carries no body.
        replay_fields = [(n, v) for n, v in fields if n.lower() not in _FRAMING]
        replay_fields.append(("content-length", "0"))
        self._unanswered.append(h11.Request(method=method, target=target, headers=replay_fields))
        return writer, head or b"", body

    async def _transmit(self, writer: h11.Connection, head: bytes, body: Body) -> None:
        await self._send(head)
        if isinstance(body, bytes):
            if body:
                await self._send(writer.send(h11.Data(data=body)))
        elif isinstance(body, AsyncIterable):
            async for chunk in body:
                await self._send_chunk(writer, chunk)
        else:
            for chunk in body:
                await self._send_chunk(writer, chunk)
        await self._send(writer.send(h11.EndOfMessage()))

    async def _send_chunk(self, writer: h11.Connection, chunk: bytes) -> None:
        if chunk:  # an empty chunk would end a chunked body early
            await self._send(writer.send(h11.Data(data=chunk)))

    async def _send(self, data: bytes | None) -> None:
        if data:
            with trio.fail_after(self.timeout):
                await self._stream.send_all(data)

    # --- responses -------------------------------------------------------------------------

    async def read_response(self) -> HTTP11Response:
        """Read the response to the oldest request not answered yet.

        Returns as soon as the response is complete; it never waits for the connection to
        close or for anything else the server does afterwards.

        Raises:
            HTTP11Error: the connection closed before a complete response, or no request is
                waiting for an answer.
            trio.TooSlowError: nothing arrived for ``timeout`` seconds.
        """
        reader = self._reader
        if reader.our_state is h11.DONE and reader.their_state is h11.DONE:
            reader.start_next_cycle()
        if reader.our_state is h11.IDLE:
            if not self._unanswered:
                raise HTTP11Error("no request is waiting for a response")
            reader.send(self._unanswered.popleft())
            reader.send(h11.EndOfMessage())
        head: h11.Response | None = None
        chunks: list[bytes] = []
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return HTTP11Response(
                    status=head.status_code,
                    reason=head.reason.decode("latin-1"),
                    headers=tuple(
                        (name.decode("latin-1"), value.decode("latin-1"))
                        for name, value in head.headers
                    ),
                    body=b"".join(chunks),
                    http_version=head.http_version.decode(),
                )
            elif isinstance(event, h11.ConnectionClosed):
                raise HTTP11Error(
                    "the server closed the connection before a complete response"
                ) from self._send_failed
            elif event is h11.PAUSED:
                raise HTTP11Error("the server sent more than the responses asked for")
            # InformationalResponse (100 Continue) needs nothing from us.

    async def wait_closed(self) -> None:
        """Wait until the server closes the connection (reading and discarding any bytes).

        Raises:
            trio.TooSlowError: the connection is still open after ``timeout`` seconds.
        """
        with trio.fail_after(self.timeout):
            while True:
                try:
                    data = await self._stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                if not data:
                    return

    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            try:
                event = self._reader.next_event()
            except h11.RemoteProtocolError as error:
                if self._eof:
                    raise HTTP11Error(
                        "the server closed the connection before a complete response"
                    ) from self._send_failed
                raise HTTP11Error(f"the server broke HTTP/1.1: {error}") from error
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]  # h11's sentinels are types
            with trio.fail_after(self.timeout):
                try:
                    data = await self._stream.receive_some(65536)
                except trio.BrokenResourceError:
                    data = b""  # a reset is a close, as far as the response is concerned
            self._eof = not data
            self._reader.receive_data(data)
