# The connection loop: one client connection, its h11 state machine and its nursery.
#
# Where it sits: the listeners (``_listeners.py``) accept a stream and ``serve_native``
# (``_serve.py``) runs ``HTTPConnection.run`` for it in the server's connection nursery. The loop
# reads a request head, hands the request to the app in a task of *this connection's* nursery
# (``_cycle.py`` is that request's ``receive``/``send``), waits until its response is complete,
# and reads the next one: responses go out in request order, and a pipelined request waits in
# h11's buffer. The app's task outlives its response to run the request's background tasks, so
# the connection's nursery owns them: the socket is closed when the client is done, but the
# connection only ends when its last task has. Nothing is spawned detached.
#
# Who reads the socket: this loop while it waits for a request head; the request's ``receive``
# while the app reads the body; nobody while a response is being written (a client that
# half-closes after its request still gets the whole response; a client that has gone is noticed
# when a write fails).
from __future__ import annotations

import logging
import math
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import h11
import trio

from ._cycle import ClientGone, RequestCycle
from ._scope import BadTarget, build_scope, date_header, reason

if TYPE_CHECKING:
    from ._config import ServerConfig

#: What the server calls: ``await app(scope, receive, send)``.
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

logger = logging.getLogger("triobg.server")
access_logger = logging.getLogger("triobg.access")

_RECEIVE_SIZE: Final = 64 * 1024
_Request: Final = h11.Request
_NEED_DATA: Final = h11.NEED_DATA
_DONE: Final = h11.DONE
#: The name of every request's task (given, so trio need not work it out per request).
_APP_TASK: Final = f"{__name__}.HTTPConnection._run_app"


class ConnectionRegistry:
    """What the server knows of its connections: which are idle (to close them at once on
    shutdown) and whether shutdown has begun. One per ``serve_native`` call."""

    def __init__(self) -> None:
        self.closing = False
        self.idle: dict[HTTPConnection, trio.CancelScope] = {}
        self.open = 0
        self.lifespan_state: dict[str, Any] | None = None

    def begin_shutdown(self) -> None:
        """No further requests: cancel every idle wait; busy connections close after their
        current response."""
        self.closing = True
        for scope in self.idle.values():
            scope.cancel()


class HTTPConnection:
    """One client connection (see the module comment)."""

    def __init__(
        self,
        app: ASGIApp,
        stream: trio.abc.Stream,
        config: ServerConfig,
        registry: ConnectionRegistry,
        *,
        scheme: str,
        client: tuple[str, int] | None,
        server: tuple[str, int | None] | None,
    ) -> None:
        self.app = app
        self.stream = stream
        self.config = config
        self.registry = registry
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_header_size)
        self.scheme = scheme
        self.client = client
        self.server = server
        header = config.server_header
        self.server_header = header.encode("latin-1") if header is not None else None
        # The stdlib socket under trio's (TCP and unix, not TLS), for the I/O fast paths.
        raw = stream.socket if isinstance(stream, trio.SocketStream) else None
        self._sock: socket.socket | None = getattr(raw, "_sock", None)
        self._refusal: tuple[int, str] | None = None  # answered as the connection closes
        self._loop_scope = trio.CancelScope()  # see ``_receive_idle``
        self._in_flight = 0  # app tasks of this connection still running
        self._slot_freed = trio.lowlevel.ParkingLot()

    @property
    def closing(self) -> bool:
        """Whether the server is shutting down (no further request is taken)."""
        return self.registry.closing

    # --- I/O, bounded in time ----------------------------------------------------------------

    async def receive_bytes(self, timeout: float) -> bytes:
        """Up to 64 KiB from the client (``b""`` at EOF).

        Raises:
            ClientGone: nothing came within ``timeout`` seconds, or the socket failed.
        """
        sock = self._sock
        if sock is not None:
            # Bytes already waiting need no timeout, no cancel scope and no trip through trio's
            # wait machinery: take them directly (trio's sockets are non-blocking).
            try:
                return sock.recv(_RECEIVE_SIZE)
            except BlockingIOError:
                pass
            except OSError as error:
                raise ClientGone from error
        try:
            with trio.fail_after(timeout):
                return bytes(await self.stream.receive_some(_RECEIVE_SIZE))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
            raise ClientGone from error
        except trio.TooSlowError as error:
            raise ClientGone from error

    async def send_bytes(self, data: bytes) -> None:
        """Write ``data``; a client that takes longer than ``send_timeout`` is dropped.

        Raises:
            ClientGone: the write failed or took too long (the stream is then unusable).
        """
        sock = self._sock
        if sock is not None:
            # A response that fits in the kernel's buffer (nearly all of them) is written in one
            # call, without a cancel scope; only the rest waits, bounded by ``send_timeout``.
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as error:
                raise ClientGone from error
            if sent == len(data):
                return
            data = data[sent:]
        timeout = self.config.send_timeout
        try:
            with trio.fail_after(timeout if timeout is not None else math.inf):
                await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
            raise ClientGone from error
        except trio.TooSlowError as error:
            raise ClientGone from error

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve requests until the client is done, a limit is hit or the server shuts down;
        then close the socket and wait for this connection's tasks."""
        self.registry.open += 1
        try:
            async with trio.open_nursery() as nursery:
                linger = False
                try:
                    with self._loop_scope:
                        linger = await self._serve(nursery)
                except ClientGone:
                    pass
                except Exception:
                    # A bug here must cost one connection, never the server's nursery.
                    logger.exception("connection from %s failed", self.client)
                finally:
                    await self._close(linger)
        finally:
            self.registry.open -= 1

    async def _serve(self, nursery: trio.Nursery) -> bool:
        # Returns whether the client may still be sending a body nobody will read.
        events = self.h11
        config = self.config
        first = True
        while True:
            request = await self._next_request(first)
            first = False
            if request is None:
                return False
            cycle = self._start_cycle(request)
            if cycle is None:
                return False
            while self._in_flight >= config.max_requests_in_flight:
                await self._slot_freed.park()
            self._in_flight += 1
            nursery.start_soon(self._run_app, cycle, name=_APP_TASK)
            await cycle.done.wait()
            if config.access_log:
                self._log_access(cycle)
            if cycle.gone or cycle.body_timed_out:
                return False
            if cycle.body_unread():
                return True
            ours = events.our_state  # a property: read once
            if cycle.close or ours is not _DONE or self.registry.closing:
                return False  # MUST_CLOSE, or anything but a finished exchange, ends it
            if events.their_state is not _DONE:
                return False
            events.start_next_cycle()

    async def _next_request(self, first: bool) -> h11.Request | None:
        # The next request head, or None when the connection should end (after answering any
        # error). A keep-alive connection waiting with nothing buffered is idle: it gets
        # ``keep_alive_timeout`` and is closed at once on shutdown. Once bytes of a head have
        # come, the rest of it gets ``header_timeout``; that deadline is only worked out if the
        # head did not come whole, which at load it nearly always does.
        events = self.h11
        deadline: float | None = None
        idle = not first
        while True:
            try:
                event = events.next_event()
            except h11.RemoteProtocolError as error:
                await self._refuse(error.error_status_hint, str(error))
                return None
            if type(event) is _Request:
                return event
            if event is not _NEED_DATA:
                return None  # ConnectionClosed, or a stray event after an error
            if self.registry.closing:
                return None
            try:
                if idle and not events.trailing_data[0]:
                    data = await self._receive_idle()
                    if data is None:
                        return None
                else:
                    if deadline is None:
                        deadline = trio.current_time() + self.config.header_timeout
                    data = await self.receive_bytes(max(deadline - trio.current_time(), 0))
            except ClientGone as why:
                if isinstance(why.__cause__, trio.TooSlowError) and events.trailing_data[0]:
                    await self._refuse(408, "the request head did not arrive in time")
                return None
            idle = False
            events.receive_data(data)

    async def _receive_idle(self) -> bytes | None:
        # Wait for the first byte of the next request; None when the wait ends without one.
        sock = self._sock
        if sock is not None:
            try:
                return sock.recv(_RECEIVE_SIZE)
            except BlockingIOError:
                pass
            except OSError:
                return None
        registry = self.registry
        # The keep-alive deadline and the shutdown both end the wait by cancelling the loop's
        # own scope (``run``), which ends the connection: re-arming one long-lived scope costs
        # less than a new scope per request.
        scope = self._loop_scope
        scope.deadline = trio.current_time() + self.config.keep_alive_timeout
        registry.idle[self] = scope
        try:
            return bytes(await self.stream.receive_some(_RECEIVE_SIZE))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return None
        finally:
            del registry.idle[self]
            scope.deadline = math.inf

    def _log_access(self, cycle: RequestCycle) -> None:
        scope = cycle.scope
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
        access_logger.info(
            '%s "%s %s HTTP/%s" %s',
            client,
            scope["method"],
            scope["raw_path"].decode("latin-1"),
            scope["http_version"],
            cycle.status if cycle.complete else "-",
        )

    def _start_cycle(self, request: h11.Request) -> RequestCycle | None:
        # (name, value) pairs, names lower-cased as h11 does (``raw_items`` is a plain list;
        # iterating h11's ``Headers`` costs a Python call per header).
        headers = [(name.lower(), value) for name, value in request.headers.raw_items()]
        length: bytes | None = None
        chunked = False
        for name, value in headers:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if len(headers) > self.config.max_header_count:
            self._refuse_soon(431, f"more than {self.config.max_header_count} header lines")
            return None
        if length is not None and chunked:
            # RFC 9112 §6.3: a sender of both may be smuggling a request past a proxy.
            self._refuse_soon(400, "Transfer-Encoding and Content-Length together")
            return None
        registry = self.registry
        try:
            scope = build_scope(
                request.method,
                request.target,
                request.http_version,
                headers,
                scheme=self.scheme,
                client=self.client,
                server=self.server,
                root_path=self.config.root_path,
                state=registry.lifespan_state,
            )
        except BadTarget as error:
            self._refuse_soon(400, str(error))
            return None
        has_body = chunked or (length is not None and int(length) != 0)
        if not has_body:
            self.h11.next_event()  # the EndOfMessage h11 has ready for a bodiless request
        return RequestCycle(self, scope, has_body)

    def _refuse_soon(self, status: int, why: str) -> None:
        # Answered by ``_close`` (the response is the last thing on the connection).
        self._refusal = (status, why)

    async def _refuse(self, status: int, why: str) -> None:
        """Answer an error the client caused, then the connection closes (h11 has no way to
        find the next request after a broken one)."""
        logger.debug("refusing a request from %s: %d %s", self.client, status, why)
        events = self.h11
        if events.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f"{status} {reason(status).decode()}: {why}\n".encode()
        head = h11.Response(
            status_code=status,
            headers=[
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
                (b"connection", b"close"),
                (b"date", date_header()),
            ],
            reason=reason(status),
        )
        try:
            data = events.send(head) or b""
            data += events.send(h11.Data(data=body)) or b""
            data += events.send(h11.EndOfMessage()) or b""
            await self.send_bytes(data)
        except (h11.LocalProtocolError, ClientGone):
            pass

    async def _run_app(self, cycle: RequestCycle) -> None:
        status = 500
        try:
            try:
                await self.app(cycle.scope, cycle.receive, cycle.send)
            except Exception:
                logger.exception(
                    "the app raised while serving %s %s",
                    cycle.scope["method"],
                    cycle.scope["path"],
                )
            except BaseException:
                cycle.abandon()
                raise
            else:
                if cycle.body_timed_out:
                    status = 408
                elif cycle.gone:
                    status = 400
            if not cycle.complete:
                if cycle.started:
                    logger.error(
                        "the app returned before its response to %s %s was complete",
                        cycle.scope["method"],
                        cycle.scope["path"],
                    )
                await cycle.finish(status)
        finally:
            self._in_flight -= 1
            if self._in_flight + 1 >= self.config.max_requests_in_flight:
                self._slot_freed.unpark()  # the connection may be parked waiting for this slot

    async def _close(self, linger: bool) -> None:
        refusal = self._refusal
        stream = self.stream
        try:
            if refusal is not None:
                await self._refuse(*refusal)
            if linger:
                await self._linger()
        except trio.BusyResourceError:
            pass  # the app is still reading the body it answered early: closing ends that read
        finally:
            if isinstance(stream, trio.SSLStream):
                with trio.move_on_after(1) as scope:  # close_notify, bounded like any write
                    await stream.aclose()
                if scope.cancelled_caught:
                    await trio.aclose_forcefully(stream)
            else:
                await stream.aclose()

    async def _linger(self) -> None:
        # The client may still be sending the body we refused. Closing now would make the kernel
        # answer with a reset, which can destroy the response before the client reads it; so
        # close our side, discard a bounded amount, and only then close.
        stream = self.stream
        if isinstance(stream, trio.abc.HalfCloseableStream):
            try:
                await stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
        left = self.config.linger_bytes
        with trio.move_on_after(self.config.linger_timeout):
            while left > 0:
                try:
                    data = await stream.receive_some(min(left, _RECEIVE_SIZE))
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    return
                if not data:
                    return
                left -= len(data)
