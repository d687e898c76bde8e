# The request pipeline, top to bottom, in one place:
#
#   match route -> read & validate inputs -> solve dependencies -> call handler
#     -> build response (a redirect off-site: refused if the request named the target)
#     -> unread body: drain it, or refuse it and close
#     -> store the durable tasks -> send response (flush)
#     -> run background tasks -> tear down ``yield`` dependencies -> run tasks added in teardown
#
# A request body nobody read: after an error response (4xx/5xx: an unknown route, a wrong content
# type, a body over the limit, a failed check) it is refused, never read, and the response says
# ``Connection: close``; after a successful response it is drained up to ``max_body_size`` so the
# connection stays usable, and past that limit refused the same way. See ``_closing_send``.
#
# All of it runs in the single trio task the server started for this request. Under hypercorn
# that task is a child of the connection's nursery, so the background tasks are owned by the
# connection (which outlives them: a client closing its socket does not cancel them) and the
# server's graceful shutdown reaches them; see ``_background.py`` for the drain.
#
# Errors: a handler or dependency exception becomes an error response through the app's
# exception handlers. Tasks added before that error are discarded and named in the log (the
# operation failed; its follow-up work should not pretend it succeeded), but tasks attached to
# the error response itself (``background=``) do run.
from __future__ import annotations

import contextlib
import logging
import typing
from typing import Any

import trio

from ._background import DURABLE_CLOSED, BackgroundTasks, _discard_durable
from ._errors import error_response
from ._exceptions import HTTPException
from ._redirects import check_redirect_origin
from ._requests import Receive, Request
from ._responses import ClientDisconnected, RedirectResponse, Send
from ._routes import new_injected_response
from ._solve import Teardown

if typing.TYPE_CHECKING:
    from ._app import App

logger = logging.getLogger("triobg.error")


async def handle_http(app: App, scope: dict[str, Any], receive: Receive, send: Send) -> None:
    request = Request(scope, receive, app)
    runner = app.background
    tasks = BackgroundTasks._for_request(runner, scope)
    teardown: Teardown | None = None  # only routes with ``yield`` dependencies need one
    failure: BaseException | None = None
    try:
        try:
            _check_framing(scope["headers"])
            route, path_params = app._find_route(scope)
            request.path_params = path_params
            if route.upload_limits is not None:
                request._upload_limits = route.upload_limits
            overrides = app.dependency_overrides
            solver = route._solver  # compiled at declaration; again only if overrides changed
            if solver is None or route._solver_version != overrides.version:
                solver = route.solver(overrides)
            plan = solver.plan
            if solver.needs_teardown:
                teardown = Teardown()
            injected = new_injected_response() if plan.needs_response else None
            limiter = app.sync_limiter
            if plan.function_teardown:
                # ``Depends(..., scope="function")`` generators close here, before the response.
                async with contextlib.AsyncExitStack() as stack:
                    result = await solver.solve(
                        request, path_params, tasks, injected, teardown, stack, limiter
                    )
            else:
                result = await solver.solve(
                    request, path_params, tasks, injected, teardown, None, limiter
                )
            response = route.make_response(result, injected)
            if isinstance(response, RedirectResponse) and response._check_origin:
                check_redirect_origin(request, response)  # an open redirect is a 400
        except Exception as error:
            failure = error
            response = await error_response(app.exception_handlers, request, error)
            runner._discard(
                tasks, f"the request failed ({type(error).__name__}) before its response was sent"
            )
        refuse_body = False
        if request._has_unread_body():
            refuse_body = response.status_code >= 400 or not await request._drain()
        if request._disconnected:
            # Gone while we read its upload: nobody will get this response (and a stream would
            # otherwise run on, unwatched, since the disconnect message is already used up).
            runner._discard(tasks, "the client disconnected before the response was sent")
            return
        if response.background is not None:
            runner._merge(tasks, response.background)
        if tasks._durable is not None:  # committed before the first byte, or a 503 instead
            response = await app.tasks._store_for(tasks, response)
        try:
            await response._send(
                _closing_send(send, receive, scope) if refuse_body else send,
                scope["method"] == "HEAD",
                receive,
            )
        except ClientDisconnected:
            runner._discard(tasks, "the client disconnected before the whole response was sent")
        except Exception:
            logger.exception("sending the response to %s %s failed", request.method, request.path)
            runner._discard(tasks, "the response could not be delivered")
        # The client now has the whole response; what follows cannot delay it.
        if tasks._after_response is not None:  # the local worker starts the stored tasks now
            start, tasks._after_response = tasks._after_response, None
            start()
        tasks._durable = DURABLE_CLOSED
        if tasks._tasks:
            await runner.run(tasks)
    except BaseException as error:  # cancellation: teardown must see it, not a clean exit
        failure = failure or error
        raise
    finally:
        # Also on cancellation: name the tasks that will never run, then tear down. (The
        # checks are inline because most requests have no tasks and no teardown.)
        if tasks._durable:  # durable tasks never stored (cancelled before the store step)
            _discard_durable(tasks, "the request was cancelled before its response was sent")
        tasks._durable = DURABLE_CLOSED
        if tasks._after_response is not None:  # stored, response cut short: they run anyway
            start, tasks._after_response = tasks._after_response, None
            start()
        if tasks._next < len(tasks._tasks):
            runner._lose(tasks)
        try:
            if teardown is not None and teardown.stack is not None:
                await _tear_down(teardown, failure, request)
                if tasks._next < len(tasks._tasks):
                    # A teardown added tasks (after the first batch ran): run them, never drop
                    # them.
                    try:
                        await runner.run(tasks)
                    finally:
                        runner._lose(tasks)
        finally:
            tasks._closed = True
            if request._uploads:  # uploaded files live until the request's last task is done
                await request._delete_uploads()


def _check_framing(headers: list[tuple[bytes, bytes]]) -> None:
    """Refuse a request that carries both ``Transfer-Encoding`` and ``Content-Length``.

    h11 goes by ``Transfer-Encoding`` and serves such a request, but a proxy in front may have
    gone by ``Content-Length``: the two then disagree on where this request ends and the next
    begins (request smuggling). RFC 9112 section 6.3 says to treat it as an error and close the
    connection; the 400 does the first, the refused body (never read) the second.

    Raises:
        HTTPException: 400 when both are present.
    """
    chunked = counted = False
    for name, _ in headers:
        if name == b"transfer-encoding":
            chunked = True
        elif name == b"content-length":
            counted = True
    if chunked and counted:
        raise HTTPException(
            400, "Transfer-Encoding and Content-Length together: where the body ends is ambiguous"
        )


async def _tear_down(teardown: Teardown, failure: BaseException | None, request: Request) -> None:
    try:
        await teardown.close(failure)
    except Exception as error:
        if error is not failure:
            logger.exception("dependency teardown failed after %s %s", request.method, request.path)


def _closing_send(send: Send, receive: Receive, scope: dict[str, Any]) -> Send:
    """``send`` for a response to a request whose body is refused: close, and never read it.

    The response start gains ``Connection: close`` (HTTP/1.x; HTTP/2 has no such header), so
    the server closes the connection after it instead of reading on to find the next request.
    The one catch is hypercorn#314: when its per-request queue is already full of body the app
    did not read, hypercorn's end-of-stream notice to the app waits for a free place, and the
    last ``send`` would block forever. So during that last ``send`` only, queued messages are
    taken off and dropped; that frees the queue without reading the body to its end (hypercorn
    ignores the rest of it once the response is complete, and closes). ``receive`` is never
    called before the response has started, so no server sends ``100 Continue`` because of it.
    """
    http1 = scope.get("http_version") in ("1.0", "1.1")
    # triobg's own server never queues an unread body, and reading would only invite one.
    queues_body = "triobg.unread_body_closes" not in scope.get("extensions", ())

    async def send_then_close(message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start" and http1:
            headers = [*message.get("headers", ()), (b"connection", b"close")]
            try:
                await send({**message, "headers": headers})
            except trio.BusyResourceError:
                # hypercorn 0.18 closing underneath us: bytes the client sent after a complete
                # request (pipelined, or smuggled) become a protocol error once our response
                # says ``close``, and its reader closes the socket while this start is being
                # written. The connection is gone, the response with it; not a server fault.
                raise ClientDisconnected from None
        elif kind == "http.response.body" and not message.get("more_body", False) and queues_body:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_drop_queued, receive)
                await send(message)
                nursery.cancel_scope.cancel()
        else:
            await send(message)

    return send_then_close


async def _drop_queued(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
