# The WebSocket connection as a handler sees it: a typed face over ASGI's websocket messages.
#
# Where it sits: the websocket pipeline (``_websocket_pipeline.py``) builds one ``WebSocket`` per
# ``websocket`` scope, injects it wherever a handler or dependency declares one (as ``Request``
# is injected for HTTP), and closes it when the handler returns. Everything here is about one
# socket's state machine: connecting -> connected -> closed, with the disconnect the client
# (or the server, for it) reports. The invariants it keeps so that handlers cannot hang or leak:
#
# * once the client is gone, every receive and send raises ``WebSocketDisconnect`` at once,
#   instead of waiting for an ASGI message that will never come;
# * a receive that finds a message over ``max_message_size`` closes the socket with 1009;
# * a send that the client does not take within ``send_timeout`` gives up on the client;
# * ``open_nursery`` owns the tasks that read and write concurrently and cancels them all the
#   moment the client leaves.
from __future__ import annotations

import contextlib
import enum
import json
import logging
import math
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, final

import attrs
import trio

from ._encode import dump_json
from ._headers import encode_header
from ._requests import HTTPConnection

if typing.TYPE_CHECKING:
    from ._app import App

logger = logging.getLogger("triobg.websocket")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class WebSocketClose(enum.IntEnum):
    """The close codes triobg sends (RFC 6455, section 7.4.1), by name."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    ABNORMAL = 1006  # never sent on the wire: a connection that ended without a close frame
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011


class WebSocketState(enum.Enum):
    """Where one side of a WebSocket is: connecting, connected, or closed."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


@attrs.frozen
class WebSocketLimits:
    """Bounds on one WebSocket, so a misbehaving client gets a close code, never a hang.

    Attributes:
        max_message_size: Largest message, in bytes (UTF-8 for text), a client may send; a larger
            one closes the socket with 1009. ``triobg.serve`` also hands it to hypercorn, which
            refuses such a message before it is assembled in memory.
        send_timeout: Seconds one send may wait for a client that is not reading before the
            client is given up on (``WebSocketDisconnect`` with 1006 from the send). ``None``
            waits for ever. Under hypercorn the bytes already handed to the kernel are bounded
            by ``serve``'s ``send_timeout`` instead (``TCP_USER_TIMEOUT``).
    """

    max_message_size: int = 1024 * 1024
    send_timeout: float | None = 30.0


class WebSocketDisconnect(Exception):
    """The WebSocket is closed: the client left, or the socket was closed for it.

    Raised by every receive and send once the connection is over. A handler may let it
    propagate: the pipeline treats it as the normal end of a session, not as an error.

    Attributes:
        code: The close code (1006 when the connection ended without a close frame; hypercorn
            reports 1006 for most client closes, whatever code the client sent).
        reason: The close reason, when one is known.
    """

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"WebSocket closed ({self.code}{': ' + self.reason if self.reason else ''})"


_REASON_BYTES = 123  # a close frame's payload is 125 bytes, two of them the code


def clip_reason(reason: str) -> str:
    """``reason`` cut to what fits in a close frame (123 bytes of UTF-8, whole characters)."""
    raw = reason.encode("utf-8")
    if len(raw) <= _REASON_BYTES:
        return reason
    return raw[:_REASON_BYTES].decode("utf-8", errors="ignore")


@final
class WebSocket(HTTPConnection):
    """One WebSocket connection, injected into handlers that declare a ``WebSocket`` parameter.

    Reading the handshake is the same as reading a request: ``headers``, ``query_params``,
    ``cookies``, ``path_params``, ``url``, ``base_url``, ``url_for``, ``client``, ``state`` (all
    from ``HTTPConnection``, shared with ``Request``). Query, header and cookie
    parameters of the handler and its dependencies are read from the same place.

    One task may receive at a time (two readers would each get half of the messages); any
    number may send, one message after another.
    """

    def __init__(self, scope: dict[str, Any], receive: Receive, send: Send, app: App) -> None:
        super().__init__(scope, app)
        self.limits: WebSocketLimits = app.websocket_limits
        self.client_state = WebSocketState.CONNECTING
        self.application_state = WebSocketState.CONNECTING
        self.close_code: int | None = None
        self.close_reason = ""
        self._receive = receive
        self._send = send
        self._connected = False  # the ``websocket.connect`` message has been read
        self._accepted = False
        self._receiving = False
        self._send_lock = trio.Lock()
        self._gone = trio.Event()  # closed by either side: what ``open_nursery`` watches

    # --- the handshake, as a request: ``HTTPConnection`` ---------------------------------

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        return list(self.scope.get("subprotocols", []))

    @property
    def closed(self) -> bool:
        """Whether the connection is over, from either side."""
        return self._gone.is_set()

    # --- opening and closing -----------------------------------------------------------------

    async def accept(
        self, subprotocol: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Complete the handshake.

        Args:
            subprotocol: One of ``subprotocols`` to speak; ``None`` for none.
            headers: Extra headers for the handshake response.

        Raises:
            RuntimeError: the socket was already accepted or closed.
            ValueError: ``subprotocol`` is not one the client offered, or a header is invalid.
            WebSocketDisconnect: the client left before the handshake completed.
        """
        if self.application_state is not WebSocketState.CONNECTING:
            raise RuntimeError(f"cannot accept a WebSocket that is {self.application_state.value}")
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(
                f"subprotocol {subprotocol!r} was not offered by the client "
                f"(offered: {self.subprotocols})"
            )
        raw = [encode_header(name, value) for name, value in (headers or {}).items()]
        await self._wait_connect()
        message: dict[str, Any] = {"type": "websocket.accept", "headers": raw}
        if subprotocol is not None:
            message["subprotocol"] = subprotocol
        await self._send(message)
        self.application_state = WebSocketState.CONNECTED
        self._accepted = True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` (and ``reason``, cut to fit a close frame).

        Closing twice, or after the client left, does nothing: either way the socket is over.
        Closing before ``accept`` rejects the handshake (hypercorn answers it with a 403).
        """
        if self.application_state is WebSocketState.CLOSED or self._gone.is_set():
            self.application_state = WebSocketState.CLOSED
            self._gone.set()
            return
        if not 1000 <= code <= 4999 or code in (1004, 1005, 1006, 1015):
            raise ValueError(f"{code} is not a close code an endpoint may send")
        self.application_state = WebSocketState.CLOSED
        self.close_code = code
        self.close_reason = clip_reason(reason)
        message = {"type": "websocket.close", "code": code, "reason": self.close_reason}
        try:
            # Shielded (within the send timeout): closing from inside ``open_nursery`` cancels
            # that nursery, and the close frame must still go out.
            timeout = self.limits.send_timeout
            with trio.move_on_after(timeout if timeout is not None else math.inf, shield=True):
                async with self._send_lock:
                    await self._send(message)
        finally:
            self._gone.set()

    async def _wait_connect(self) -> None:
        # ASGI's first message is ``websocket.connect``; read it before anything is sent.
        if self._connected:
            return
        message = await self._receive()
        if message["type"] == "websocket.disconnect":
            self._client_left(int(message.get("code", 1006)), message.get("reason") or "")
            raise WebSocketDisconnect(self.close_code or 1006, self.close_reason)
        if message["type"] != "websocket.connect":
            raise RuntimeError(f"expected websocket.connect first, got {message['type']!r}")
        self._connected = True

    async def _wait_close_reply(self) -> None:
        # After our close frame the client answers with its own; a server that closes the TCP
        # connection before that answer arrives can make the client see 1006 instead of our
        # code (hypercorn closes as soon as the app returns). Messages still in flight are
        # dropped: the socket is closed.
        while self.client_state is not WebSocketState.CLOSED and self._accepted:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                self._client_left(int(message.get("code", 1006)), message.get("reason") or "")

    def _client_left(self, code: int, reason: str) -> None:
        self.client_state = WebSocketState.CLOSED
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self._gone.set()

    # --- receiving ---------------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        """The next message: ``str`` for a text message, ``bytes`` for a binary one.

        Raises:
            WebSocketDisconnect: the connection is over (at once, if it already was).
            RuntimeError: the socket was not accepted, or another task is receiving.
        """
        if self._gone.is_set():
            raise WebSocketDisconnect(self.close_code or 1006, self.close_reason)
        if self.application_state is WebSocketState.CONNECTING:
            raise RuntimeError("accept() the WebSocket before receiving from it")
        if self._receiving:
            raise RuntimeError(
                "another task is already receiving from this WebSocket; read in one task and "
                "hand messages on (e.g. through a memory channel)"
            )
        self._receiving = True
        try:
            message = await self._receive()
        finally:
            self._receiving = False
        kind = message["type"]
        if kind == "websocket.disconnect":
            self._client_left(int(message.get("code", 1006)), message.get("reason") or "")
            raise WebSocketDisconnect(self.close_code or 1006, self.close_reason)
        if kind != "websocket.receive":
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an open WebSocket")
        text = message.get("text")
        data: str | bytes = text if text is not None else bytes(message.get("bytes") or b"")
        size = len(data) if isinstance(data, bytes) else _utf8_length(data)
        limit = self.limits.max_message_size
        if size > limit:
            # hypercorn refuses these itself; this covers other servers and the test client.
            await self._refuse(
                WebSocketClose.MESSAGE_TOO_BIG, f"message of {size} bytes (limit {limit})"
            )
        return data

    async def receive_text(self) -> str:
        """The next message, which must be text.

        Raises:
            WebSocketDisconnect: the connection is over, or the client sent a binary message
                (closed with 1003).
        """
        data = await self.receive()
        if not isinstance(data, str):
            await self._refuse(WebSocketClose.UNSUPPORTED_DATA, "expected a text message")
        return data

    async def receive_bytes(self) -> bytes:
        """The next message, which must be binary.

        Raises:
            WebSocketDisconnect: the connection is over, or the client sent a text message
                (closed with 1003).
        """
        data = await self.receive()
        if not isinstance(data, bytes):
            await self._refuse(WebSocketClose.UNSUPPORTED_DATA, "expected a binary message")
        return data

    async def receive_json(self) -> Any:
        """The next message (text or binary) parsed as JSON.

        Raises:
            WebSocketDisconnect: the connection is over, or the message is not JSON (closed
                with 1007, invalid data).
        """
        data = await self.receive()
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as error:
            await self._refuse(WebSocketClose.INVALID_DATA, f"message is not JSON: {error}")

    async def _refuse(self, code: int, reason: str) -> typing.NoReturn:
        logger.warning("closing WebSocket %s with %d: %s", self.path, code, reason)
        await self.close(code, reason)
        raise WebSocketDisconnect(code, clip_reason(reason))

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        """``async for message in websocket``: every message until the client leaves.

        The loop ends quietly when the connection closes (the code is in ``close_code``).
        """
        return self._messages(self.receive)

    def iter_text(self) -> AsyncIterator[str]:
        """Text messages until the client leaves (a binary one closes with 1003)."""
        return self._messages(self.receive_text)

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """Binary messages until the client leaves (a text one closes with 1003)."""
        return self._messages(self.receive_bytes)

    def iter_json(self) -> AsyncIterator[Any]:
        """JSON messages until the client leaves (one that is not JSON closes with 1007)."""
        return self._messages(self.receive_json)

    @staticmethod
    def _messages(next_message: Callable[[], Awaitable[Any]]) -> AsyncIterator[Any]:
        return _Messages(next_message)

    async def wait_disconnect(self) -> None:
        """Read and drop messages until the client leaves.

        For sockets that only push: only a read learns that the client has gone (servers drop
        what is sent to a closed connection without a word), so run this beside the writer in
        ``open_nursery``.
        """
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await self.receive()

    # --- sending -----------------------------------------------------------------------------

    async def send(self, data: str | bytes) -> None:
        """Send one message: text for ``str``, binary for ``bytes``.

        Raises:
            WebSocketDisconnect: the connection is over, or the client did not take the message
                within ``limits.send_timeout`` (1006: the client is given up on).
            RuntimeError: the socket was never accepted.
        """
        if self._gone.is_set():
            raise WebSocketDisconnect(self.close_code or 1006, self.close_reason)
        if self.application_state is WebSocketState.CONNECTING:
            raise RuntimeError("accept() the WebSocket before sending to it")
        message: dict[str, Any]
        if isinstance(data, str):
            message = {"type": "websocket.send", "text": data}
        else:
            message = {"type": "websocket.send", "bytes": bytes(data)}
        timeout = self.limits.send_timeout
        if timeout is None:
            await self._send_in_turn(message)
            return
        with trio.move_on_after(timeout) as bound:
            await self._send_in_turn(message)
        if bound.cancelled_caught:
            reason = f"the client took no message for {timeout} s (it is not reading)"
            logger.warning("giving up on WebSocket %s: %s", self.path, reason)
            self._client_left(WebSocketClose.ABNORMAL, reason)
            raise WebSocketDisconnect(WebSocketClose.ABNORMAL, reason)

    async def _send_in_turn(self, message: dict[str, Any]) -> None:
        # ``async with lock`` is also the send's checkpoint, and it must have one: a server may
        # return from ``send`` without yielding (hypercorn does once the connection is closed),
        # and a writer looping on such sends would starve the task that reads the disconnect,
        # and so never be cancelled.
        async with self._send_lock:
            if self._gone.is_set():
                raise WebSocketDisconnect(self.close_code or 1006, self.close_reason)
            await self._send(message)

    async def send_text(self, data: str) -> None:
        """Send a text message."""
        if not isinstance(data, str):
            raise TypeError(f"send_text needs a str, got {type(data).__name__}")
        await self.send(data)

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"send_bytes needs bytes, got {type(data).__name__}")
        await self.send(bytes(data))

    async def send_json(self, data: Any, *, binary: bool = False) -> None:
        """Send ``data`` as JSON, in a text message (or a binary one with ``binary=True``)."""
        encoded = dump_json(data)
        await self.send(encoded if binary else encoded.decode("utf-8"))

    # --- concurrency -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def open_nursery(self) -> AsyncIterator[trio.Nursery]:
        """A nursery for tasks that read and write this socket at once, owned by the connection.

        The nursery is cancelled as soon as the connection is over: the client leaving (seen
        by a receive) or any task closing the socket. ``WebSocketDisconnect`` from its tasks or
        its body is the normal way out and is not re-raised; any other exception is, as trio
        raises it. So a writer cannot outlive its client::

            async with websocket.open_nursery() as nursery:
                nursery.start_soon(push_updates, websocket)
                async for message in websocket:  # ends when the client leaves
                    ...
        """
        try:
            async with trio.open_nursery() as watch:
                watch.start_soon(self._cancel_when_gone, watch.cancel_scope)
                async with trio.open_nursery() as nursery:
                    yield nursery
                watch.cancel_scope.cancel()  # every task is done: stop watching
        except* WebSocketDisconnect:
            pass

    async def _cancel_when_gone(self, scope: trio.CancelScope) -> None:
        await self._gone.wait()
        scope.cancel()

    def __repr__(self) -> str:
        return f"<WebSocket {self.path} {self.application_state.value}>"


class _Messages:
    """An async iterator over messages that stops, quietly, when the connection closes.

    A plain iterator rather than an async generator, so ``break`` needs no ``aclose``.
    """

    def __init__(self, next_message: Callable[[], Awaitable[Any]]) -> None:
        self._next = next_message

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._next()
        except WebSocketDisconnect:
            raise StopAsyncIteration from None


def _utf8_length(text: str) -> int:
    # ``len(text.encode())`` without the copy for the common all-ASCII message.
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def negotiate_subprotocol(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """The first of ``supported`` that the client offered, or ``None``."""
    return next((name for name in supported if name in offered), None)
