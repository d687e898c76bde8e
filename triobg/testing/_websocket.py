# The in-process WebSocket client: ``TestClient.websocket_connect`` drives the app's
# ``websocket`` scope through two bounded memory channels, inside the test's own trio run.
#
# Where it sits: beside ``_client.py``'s HTTP calls. The app runs in a task of the client's
# nursery (so its tasks and background tasks have the same owner as a request's), and the
# client's drain at the end of ``async with TestClient(app)`` closes open sockets with 1001
# exactly as a server's shutdown does. Both channels are bounded, as a socket is: a test that
# stops reading makes the app's sends wait, which is how a slow client looks to the app.
from __future__ import annotations

import json as jsonlib
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import trio

from .._headers import Headers
from .._websockets import WebSocketDisconnect

if TYPE_CHECKING:
    from ._client import ASGIApp

#: Messages either side may have in flight before the sender waits (a socket's buffers).
BUFFER = 16


class WebSocketDenied(Exception):
    """The app refused the handshake with an HTTP response (ASGI's denial extension).

    Attributes:
        status_code: The response status, e.g. 403 or 404.
        headers: Its headers.
        content: Its body.
    """

    def __init__(self, status_code: int, headers: Headers, content: bytes) -> None:
        super().__init__(status_code, content)
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class WebSocketTestSession:
    """One WebSocket to the app, from ``async with client.websocket_connect(path) as ws:``.

    Attributes:
        subprotocol: What the app accepted with, if anything.
        accept_headers: Extra headers the app sent with its accept.
        close_code: The code the app closed with (``None`` while open).
        close_reason: Its reason.
    """

    def __init__(self, app: ASGIApp, scope: dict[str, Any]) -> None:
        self._app = app
        self._scope = scope
        self._to_app, self._app_inbox = trio.open_memory_channel[dict[str, Any]](BUFFER)
        self._to_client, self._from_app = trio.open_memory_channel[dict[str, Any]](BUFFER)
        self.app_done = trio.Event()  # the app returned (background tasks and teardown done)
        self.scope = trio.CancelScope()  # the owner's handle, cancelled at the drain deadline
        self.error: BaseException | None = None
        self.subprotocol: str | None = None
        self.accept_headers = Headers([])
        self.close_code: int | None = None
        self.close_reason = ""
        self._client_closed = False

    # --- the app's side ------------------------------------------------------------------------

    async def _receive(self) -> dict[str, Any]:
        try:
            return await self._app_inbox.receive()
        except trio.EndOfChannel:
            # Asked again after the disconnect: say it again rather than hang.
            return {"type": "websocket.disconnect", "code": self.close_code or 1000}

    async def _send(self, message: dict[str, Any]) -> None:
        try:
            await self._to_client.send(message)
        except trio.BrokenResourceError:
            # The test has left: as a server does for a closed connection, drop what is sent.
            await trio.lowlevel.checkpoint()

    async def run_app(self) -> None:
        try:
            with self.scope:
                async with self._to_client:
                    try:
                        await self._app(self._scope, self._receive, self._send)
                    except Exception as error:
                        # Recorded before the channel closes (a checkpoint), or the test
                        # waking at its end would see a 1006 instead of the app's exception.
                        self.error = error
                        raise
        except Exception as error:  # surfaced to the test, not as a nursery crash
            self.error = error
        finally:
            self.app_done.set()

    # --- the test's side -----------------------------------------------------------------------

    async def _connect(self) -> None:
        await self._to_app.send({"type": "websocket.connect"})
        message = await self._next()
        kind = message["type"]
        if kind == "websocket.accept":
            self.subprotocol = message.get("subprotocol")
            self.accept_headers = Headers(list(message.get("headers", [])))
            return
        if kind == "websocket.close":
            self._leave()
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason") or "")
        if kind == "websocket.http.response.start":
            body = b""
            while True:
                part = await self._next()
                body += part.get("body", b"")
                if not part.get("more_body", False):
                    break
            self._leave()
            raise WebSocketDenied(message["status"], Headers(list(message["headers"])), body)
        self._leave()
        raise RuntimeError(f"the app sent {kind!r} in answer to the handshake")

    async def _next(self) -> dict[str, Any]:
        try:
            return await self._from_app.receive()
        except trio.EndOfChannel:
            if self.error is not None:
                raise self.error from None
            raise WebSocketDisconnect(self.close_code or 1006, self.close_reason) from None

    async def receive(self) -> str | bytes:
        """The app's next message: ``str`` for text, ``bytes`` for binary.

        Raises:
            WebSocketDisconnect: the app closed the socket (``code`` as it sent it).
        """
        if self.close_code is not None:
            raise WebSocketDisconnect(self.close_code, self.close_reason)
        message = await self._next()
        if message["type"] == "websocket.close":
            self.close_code = int(message.get("code", 1000))
            self.close_reason = message.get("reason") or ""
            raise WebSocketDisconnect(self.close_code, self.close_reason)
        if message["type"] != "websocket.send":
            raise RuntimeError(f"unexpected message from the app: {message['type']!r}")
        text = message.get("text")
        return text if text is not None else bytes(message["bytes"])

    async def receive_text(self) -> str:
        data = await self.receive()
        if not isinstance(data, str):
            raise TypeError(f"expected a text message, got {len(data)} bytes")
        return data

    async def receive_bytes(self) -> bytes:
        data = await self.receive()
        if not isinstance(data, bytes):
            raise TypeError(f"expected a binary message, got text {data!r}")
        return data

    async def receive_json(self) -> Any:
        return jsonlib.loads(await self.receive())

    async def send_text(self, data: str) -> None:
        await self._deliver({"type": "websocket.receive", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        await self._deliver({"type": "websocket.receive", "bytes": data})

    async def send_json(self, data: Any) -> None:
        await self.send_text(jsonlib.dumps(data))

    async def _deliver(self, message: dict[str, Any]) -> None:
        if self._client_closed:
            raise RuntimeError("this WebSocket was closed by the test")
        try:
            await self._to_app.send(message)
        except trio.BrokenResourceError:
            raise WebSocketDisconnect(self.close_code or 1006, self.close_reason) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Leave, as a client sending a close frame: the app receives the disconnect."""
        if self._client_closed:
            return
        self._client_closed = True
        message = {"type": "websocket.disconnect", "code": code, "reason": reason}
        with trio.move_on_after(5):  # an app that stopped reading has a full inbox
            await self._to_app.send(message)
        self._to_app.close()

    def _leave(self) -> None:
        self._client_closed = True
        self._to_app.close()
        self._from_app.close()

    async def wait_closed(self) -> int:
        """Read and drop messages until the app closes; return its close code."""
        try:
            while True:
                await self.receive()
        except WebSocketDisconnect as closed:
            return closed.code

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
        self._from_app.close()  # the app's further sends are dropped, as by a server
