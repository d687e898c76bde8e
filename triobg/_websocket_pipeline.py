# The WebSocket pipeline, top to bottom, and the registry of open sockets:
#
#   match route -> read & validate handshake values -> solve dependencies -> call handler
#     -> close the socket (1000 if the handler left it open) -> run background tasks
#     -> tear down ``yield`` dependencies -> run tasks added in teardown
#
# It mirrors the HTTP pipeline (``_pipeline.py``), and runs, like it, in the one trio task the
# server started for this connection: the handler, the tasks the handler starts in
# ``websocket.open_nursery()``, the background tasks and the teardown are all owned by that
# task, so by the server's connection nursery. Nothing is spawned detached.
#
# Before ``accept`` a failure rejects the handshake: with an HTTP response (404, 403, 422...)
# where the server offers ASGI's ``websocket.http.response`` extension (hypercorn does), else
# with a close (1008 policy violation; hypercorn answers that with a bare 403). After
# ``accept`` an ``HTTPException`` closes with 1008 and its detail as reason; any other error is
# logged and closes with 1011. An exception handler the app registered for the error's class
# runs first, given the WebSocket, and may close it its own way. The client leaving
# (``WebSocketDisconnect``) is the normal end.
#
# Shutdown: ``WebSocketSessions`` listens for the start of the app's background drain. Then
# every open socket's handler is cancelled and the socket closed with 1001 ("going away"), each
# one named in the log, and its background tasks run under the same drain deadline as HTTP's.
from __future__ import annotations

import contextlib
import inspect
import logging
import typing
from collections.abc import Mapping
from typing import Any, final

import attrs
import trio

from ._background import BackgroundRunner, BackgroundTasks, callable_name
from ._encode import dump_json
from ._errors import ExceptionHandler, registered_handler
from ._exceptions import HTTPException, RequestValidationError
from ._routing import PathTable
from ._solve import Teardown
from ._url import split_root
from ._websocket_routes import WebSocketRoute
from ._websockets import (
    Receive,
    Send,
    WebSocket,
    WebSocketClose,
    WebSocketDisconnect,
    WebSocketState,
    clip_reason,
)

if typing.TYPE_CHECKING:
    from ._app import App
    from ._routes import Router

logger = logging.getLogger("triobg.websocket")
error_logger = logging.getLogger("triobg.error")

#: Seconds a close frame may take to go out while the connection's task is being cancelled.
CLOSE_GRACE = 0.5

_WEBSOCKET = frozenset({"WEBSOCKET"})


@attrs.frozen
class WebSocketStatistics:
    """A snapshot of an app's WebSockets.

    Attributes:
        open: Sockets whose handler is running now.
        opened: Sockets ever opened (handshakes that reached a route).
        going_away: Sockets closed with 1001 because the server shut down.
    """

    open: int
    opened: int
    going_away: int


@final
class _Session:
    __slots__ = ("cut", "label", "scope", "websocket")

    def __init__(self, websocket: WebSocket, label: str) -> None:
        self.websocket = websocket
        self.label = label
        self.scope = trio.CancelScope()
        self.cut = False  # closed by the shutdown


class WebSocketSessions:
    """The open WebSockets of one app (``app.websockets``): counted, and closed at shutdown."""

    def __init__(self, runner: BackgroundRunner) -> None:
        self._runner = runner
        self._open: set[_Session] = set()
        self._opened = 0
        self._going_away = 0
        self._table: PathTable[WebSocketRoute] | None = None
        self._table_version = -1
        runner._drain_listeners.append(self._drain_began)

    def statistics(self) -> WebSocketStatistics:
        """How many sockets are open, were opened, and were closed by a shutdown."""
        return WebSocketStatistics(len(self._open), self._opened, self._going_away)

    def _drain_began(self, deadline: float) -> None:
        # Sync, from ``BackgroundRunner.begin_drain``: cancel each handler; its pipeline then
        # closes the socket with 1001 and runs its tasks within the drain.
        for session in self._open:
            if not session.cut:
                session.cut = True
                session.scope.cancel()

    @property
    def _closing(self) -> bool:
        # From the start of the drain until the next lifespan startup resets it.
        return self._runner.drain_deadline is not None

    def _find(self, router: Router, scope: Mapping[str, Any]) -> tuple[WebSocketRoute, Any] | None:
        table = self._table
        if table is None or self._table_version != router.version:
            table = self._table = PathTable()
            for route in router.websocket_routes:
                table.add(route.path, _WEBSOCKET, route)
            self._table_version = router.version
        # Routed on the path below the root path, as HTTP is (a mount, a proxy prefix).
        found = table.match(*split_root(scope))
        if found is None:
            return None
        endpoints, params, _ = found
        return endpoints["WEBSOCKET"], params


async def handle_websocket(app: App, scope: dict[str, Any], receive: Receive, send: Send) -> None:
    sessions = app.websockets
    websocket = WebSocket(scope, receive, send, app)
    found = sessions._find(app.router, scope)
    if found is None:
        await _reject(websocket, HTTPException(404, f"no WebSocket route for {scope['path']}"))
        return
    if sessions._closing:
        await _reject(websocket, HTTPException(503, "the server is shutting down"))
        return
    route, path_params = found
    websocket.path_params = path_params
    label = f"WEBSOCKET {scope['path']}"
    runner = app.background
    tasks = BackgroundTasks._for_request(runner, {"method": "WEBSOCKET", "path": scope["path"]})
    teardown: Teardown | None = None
    failure: BaseException | None = None
    session = _Session(websocket, label)
    sessions._open.add(session)
    sessions._opened += 1
    try:
        with session.scope:
            try:
                overrides = app.dependency_overrides
                solver = route._solver
                if solver is None or route._solver_version != overrides.version:
                    solver = route.solver(overrides)
                if solver.needs_teardown:
                    teardown = Teardown()
                limiter = app.sync_limiter
                if solver.plan.function_teardown:
                    async with contextlib.AsyncExitStack() as stack:
                        await solver.solve(
                            websocket, path_params, tasks, None, teardown, stack, limiter
                        )
                else:
                    await solver.solve(websocket, path_params, tasks, None, teardown, None, limiter)
            except WebSocketDisconnect:
                pass  # the client left: the normal end of a session
            except Exception as error:
                if _only_disconnects(error):
                    pass  # the same, from tasks in a nursery the handler opened
                else:
                    failure = error
                    await _fail(websocket, error, route, app.exception_handlers)
                    runner._discard(tasks, f"the WebSocket handler failed ({type(error).__name__})")
        if session.cut:
            sessions._going_away += 1
            logger.warning(
                "WebSocket %s (%s, client %s) closed with 1001: the server is shutting down",
                scope["path"],
                callable_name(route.endpoint),
                _client(websocket),
                extra={"websocket": scope["path"], "outcome": "going away"},
            )
            with trio.move_on_after(CLOSE_GRACE):
                await _close_quietly(websocket, WebSocketClose.GOING_AWAY, "server shutting down")
        elif not websocket.closed:
            await _close_quietly(websocket, WebSocketClose.NORMAL, "")
        if websocket.application_state is WebSocketState.CLOSED and not websocket._receiving:
            with trio.move_on_after(CLOSE_GRACE):
                await websocket._wait_close_reply()
        if tasks._tasks:
            await runner.run(tasks)
    except BaseException as error:  # cancelled from outside: say so, and try a close frame
        failure = failure or error
        if not session.cut and not websocket.closed:
            logger.warning(
                "WebSocket %s (%s, client %s) cut off: its task was cancelled",
                scope["path"],
                callable_name(route.endpoint),
                _client(websocket),
                extra={"websocket": scope["path"], "outcome": "cancelled"},
            )
            with trio.CancelScope(shield=True) as grace:
                grace.deadline = trio.current_time() + CLOSE_GRACE
                await _close_quietly(websocket, WebSocketClose.GOING_AWAY, "server shutting down")
        raise
    finally:
        sessions._open.discard(session)
        if tasks._next < len(tasks._tasks):
            runner._lose(tasks)
        if teardown is not None and teardown.stack is not None:
            await _tear_down(teardown, failure, label)
            if tasks._next < len(tasks._tasks):
                try:
                    await runner.run(tasks)
                finally:
                    runner._lose(tasks)
        tasks._closed = True


def _only_disconnects(error: Exception) -> bool:
    if not isinstance(error, BaseExceptionGroup):
        return False
    _, rest = error.split(WebSocketDisconnect)
    return rest is None


async def _close_quietly(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state is WebSocketState.CONNECTING:
        with contextlib.suppress(WebSocketDisconnect, OSError, trio.BrokenResourceError):
            await websocket._wait_connect()
            await websocket._send({"type": "websocket.close", "code": code, "reason": reason})
        websocket.application_state = WebSocketState.CLOSED
        websocket._gone.set()
        return
    with contextlib.suppress(OSError, trio.BrokenResourceError):
        await websocket.close(code, reason)


async def _fail(
    websocket: WebSocket,
    error: Exception,
    route: WebSocketRoute,
    handlers: dict[type[BaseException], ExceptionHandler],
) -> None:
    """Answer a handler or dependency failure: reject the handshake, or close the socket.

    An exception handler the app registered for the error's class is called first, with the
    WebSocket (as Starlette does): it may close it with a code and reason of its choosing,
    before or after ``accept``. What it returns is ignored; if it leaves the socket open (or
    fails itself, which is logged), the default below applies.
    """
    handler = registered_handler(handlers, error)
    if handler is not None:
        try:
            result: Any = handler(websocket, error)
            if inspect.isawaitable(result):
                await result
        except Exception as handler_error:
            error_logger.exception(
                "exception handler %r failed (%s) while handling %s in WebSocket %s",
                handler,
                type(handler_error).__name__,
                type(error).__name__,
                websocket.path,
            )
        if websocket.application_state is WebSocketState.CLOSED or websocket.closed:
            return
    if websocket.application_state is WebSocketState.CONNECTING:
        if not isinstance(error, HTTPException | RequestValidationError):
            _log_error(websocket, error, route)
        await _reject(websocket, error)
        return
    if isinstance(error, HTTPException):
        code, reason = WebSocketClose.POLICY_VIOLATION, str(error.detail)
    else:
        _log_error(websocket, error, route)
        code, reason = WebSocketClose.INTERNAL_ERROR, "Internal Server Error"
    await _close_quietly(websocket, code, reason)


def _log_error(websocket: WebSocket, error: BaseException, route: WebSocketRoute) -> None:
    error_logger.error(
        "unhandled %s in WebSocket %s (%s)",
        type(error).__name__,
        websocket.path,
        callable_name(route.endpoint),
        exc_info=error,
    )


async def _reject(websocket: WebSocket, error: Exception) -> None:
    """Refuse the handshake: an HTTP response when the server can send one, else a close."""
    if isinstance(error, HTTPException):
        status, detail, headers = error.status_code, error.detail, error.headers or {}
    elif isinstance(error, RequestValidationError):
        status, detail, headers = 422, error.errors(), {}
    else:
        status, detail, headers = 500, "Internal Server Error", {}
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        body = dump_json({"detail": detail})
        raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        raw.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
        with contextlib.suppress(WebSocketDisconnect, OSError, trio.BrokenResourceError):
            await websocket._wait_connect()
            await websocket._send(
                {"type": "websocket.http.response.start", "status": status, "headers": raw}
            )
            await websocket._send({"type": "websocket.http.response.body", "body": body})
        websocket.application_state = WebSocketState.CLOSED
        websocket._gone.set()
        return
    code = WebSocketClose.INTERNAL_ERROR if status >= 500 else WebSocketClose.POLICY_VIOLATION
    reason = detail if isinstance(detail, str) else str(error)
    await _close_quietly(websocket, code, clip_reason(f"{status}: {reason}"))


async def _tear_down(teardown: Teardown, failure: BaseException | None, label: str) -> None:
    try:
        await teardown.close(failure)
    except Exception as error:
        if error is not failure:
            error_logger.exception("dependency teardown failed after %s", label)


def _client(websocket: WebSocket) -> str:
    client = websocket.client
    return f"{client[0]}:{client[1]}" if client else "unknown"
