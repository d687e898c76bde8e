# The ASGI ``http`` adapter: one request's ``receive`` and ``send``, over the connection's h11.
#
# Where it sits: the connection loop (``_connection.py``) parses a request head, builds a
# ``RequestCycle`` and runs the app with its ``receive``/``send`` in a task of the connection's
# nursery; it then waits for ``done`` (the response is complete, or the cycle failed) before it
# reads the next request. Between the head and ``done`` only this request touches the socket:
# its ``receive`` reads the body (sending ``100 Continue`` on the first read, never earlier),
# its ``send`` writes the response. The app's task lives on after ``done`` to run the request's
# background tasks; from then on ``receive`` answers ``http.disconnect`` at once.
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import h11
import trio

from ._heads import response_head
from ._scope import date_header, reason

if TYPE_CHECKING:
    from ._connection import HTTPConnection

logger = logging.getLogger("triobg.server")

_CONTINUE: Final = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
_Data: Final = h11.Data
_EndOfMessage: Final = h11.EndOfMessage
_END: Final = h11.EndOfMessage()  # events are immutable: one serves every response
_NEED_DATA: Final = h11.NEED_DATA


class ClientGone(Exception):
    """Internal: the socket failed, timed out or closed while this request used it."""


class RequestCycle:
    """One request on a connection: its scope, its body reads and its response writes."""

    __slots__ = (
        "_body_done",
        "_conn",
        "_eof_given",
        "_head_pending",
        "_headers",
        "body_timed_out",
        "close",
        "complete",
        "done",
        "gone",
        "head",
        "scope",
        "started",
        "status",
    )

    def __init__(self, conn: HTTPConnection, scope: dict[str, Any], has_body: bool) -> None:
        self._conn = conn
        self.scope = scope
        self.head = scope["method"] == "HEAD"
        self._body_done = not has_body
        self._eof_given = False  # the app has had the message with ``more_body: False``
        self._head_pending = False  # started, and the head not yet written
        self.status = 0  # the response's status, once started
        self._headers: list[tuple[bytes, bytes]] = []
        self.started = False  # http.response.start received
        self.complete = False  # the last byte of the response has been handed to the socket
        self.gone = False  # the connection can carry nothing more (client gone, timeout, error)
        self.body_timed_out = False
        self.close = False  # the response said (or will say) ``Connection: close``
        self.done = trio.Event()  # complete, or the cycle can go no further

    # --- receive -----------------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        """The next ASGI message: body pieces, then ``http.disconnect`` once the response is
        complete or the connection is gone (waiting until then if the body is all read)."""
        if self._body_done:
            if not self._eof_given:
                # No checkpoint on the two messages every request makes (this one and the
                # response head): each would cost a pass through the scheduler. Every path that
                # can repeat without end (body pieces, streamed responses, disconnects) has one.
                self._eof_given = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.complete or self.gone:
                await trio.lowlevel.checkpoint()
                return {"type": "http.disconnect"}
            await self.done.wait()
            return {"type": "http.disconnect"}
        if self.body_timed_out:
            await trio.lowlevel.checkpoint()
            return {"type": "http.disconnect"}
        conn = self._conn
        events = conn.h11
        chunks: list[bytes] = []
        while True:
            try:
                event = events.next_event()
            except h11.RemoteProtocolError as error:
                logger.debug("bad request body: %s", error)
                self._fail()
                await trio.lowlevel.checkpoint()
                return {"type": "http.disconnect"}
            kind = type(event)
            if kind is _Data:
                chunks.append(event.data)  # type: ignore[union-attr]
                continue
            if kind is _EndOfMessage:
                self._body_done = self._eof_given = True
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                return {"type": "http.request", "body": body, "more_body": False}
            if event is _NEED_DATA:
                if chunks:
                    await trio.lowlevel.checkpoint()
                    return {"type": "http.request", "body": b"".join(chunks), "more_body": True}
                if self.complete or self.gone:
                    await trio.lowlevel.checkpoint()
                    return {"type": "http.disconnect"}
                try:
                    if events.client_is_waiting_for_100_continue and not self.started:
                        # The app asked for the body: now, and only now, invite the client.
                        await conn.send_bytes(events.send(_CONTINUE) or b"")
                    data = await conn.receive_bytes(conn.config.read_timeout)
                except ClientGone as why:
                    if isinstance(why.__cause__, trio.TooSlowError):
                        # The connection still works: the app's answer (or our 408) can go out.
                        self.body_timed_out = True
                    else:
                        self._fail()
                    return {"type": "http.disconnect"}
                events.receive_data(data)
                continue
            # ConnectionClosed (the client closed mid-body) or anything unexpected.
            self._fail()
            await trio.lowlevel.checkpoint()
            return {"type": "http.disconnect"}

    def body_unread(self) -> bool:
        """Whether the client still has body bytes this request never read."""
        return not self._body_done

    # --- send --------------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        """Write the response: the head goes out with the first body piece, the whole of a
        one-piece response in one write."""
        kind = message["type"]
        if kind == "http.response.body":
            if not self.started:
                raise RuntimeError("ASGI: http.response.body before http.response.start")
            if self.complete:
                raise RuntimeError("ASGI: http.response.body after the response was complete")
            if self.gone:
                await trio.lowlevel.checkpoint()  # the client has gone: drop, like hypercorn
                return
            body: bytes = message.get("body", b"")
            more: bool = message.get("more_body", False)
            conn = self._conn
            events = conn.h11
            send = events.send_with_data_passthrough  # pieces, joined once below
            try:
                if self._head_pending:
                    pieces = send(self._response_head(body, more)) or []
                    self._head_pending = False
                    if body and not self.head:
                        pieces += send(_Data(data=body)) or ()
                elif body and not self.head:
                    pieces = send(_Data(data=body)) or []
                else:
                    pieces = []
                if not more:
                    pieces += send(_END) or ()
            except h11.LocalProtocolError:
                self._fail()
                raise
            out = b"".join(pieces)
            if out:
                try:
                    await conn.send_bytes(out)
                except ClientGone:
                    self._fail()
                    return
            if not more:
                self.complete = True
                self.done.set()
            else:
                await trio.lowlevel.checkpoint()  # a stream to a fast client must not hog the loop
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("ASGI: http.response.start sent twice")
            self.started = self._head_pending = True
            self.status = message["status"]
            self._headers = message.get("headers", [])
        else:
            raise RuntimeError(f"ASGI: unexpected message type {kind!r} for an http request")

    def _response_head(self, body: bytes, more: bool) -> h11.Response:
        status = self.status
        headers = list(self._headers)
        if not more and not self.head and not (status < 200 or status in (204, 304)):
            # A one-piece body: say its length rather than let h11 chunk it. A 1xx, 204 or 304
            # has no body, so no length (RFC 9110 8.6: ``0`` would be wrong for a 304).
            for name, _ in headers:
                if name == b"content-length" or name.lower() == b"content-length":
                    break
            else:
                headers.append((b"content-length", b"%d" % len(body)))
        conn = self._conn
        if not self._body_done or conn.closing:
            # A body left unread is never read (the next request cannot be found after it);
            # during shutdown no further request is taken.
            self.close = True
            headers.append((b"connection", b"close"))
        headers.append((b"date", date_header()))
        if conn.server_header is not None:
            headers.append((b"server", conn.server_header))
        return response_head(status, headers)

    # --- the end -----------------------------------------------------------------------------

    def _fail(self) -> None:
        self.gone = True
        self.done.set()

    async def finish(self, status: int) -> None:
        """After the app returned: answer ``status`` if it never started a response, and make
        sure ``done`` is set either way."""
        if not self.started and not self.gone:
            if not self._body_done:
                self.close = True
            body = b"%d %s\n" % (status, reason(status))
            try:
                await self.send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                    }
                )
                await self.send({"type": "http.response.body", "body": body})
            except h11.LocalProtocolError:
                pass
        if not self.complete:
            self._fail()

    def abandon(self) -> None:
        """The app's task is being cancelled: the connection can carry nothing more unless the
        response was already complete."""
        if not self.complete:
            self._fail()
