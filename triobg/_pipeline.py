# The request pipeline, top to bottom, in one place:
#
#   match route -> read & validate inputs -> solve dependencies -> call handler
#     -> build response -> drain unread body -> store the durable tasks -> send response (flush)
#     -> run background tasks -> tear down ``yield`` dependencies -> run tasks added in teardown
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

from ._background import DURABLE_CLOSED, BackgroundTasks, _discard_durable
from ._errors import error_response
from ._requests import Receive, Request
from ._responses import ClientDisconnected, Send
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
            route, path_params = app._find_route(scope)
            request.path_params = path_params
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
        except Exception as error:
            failure = error
            response = await error_response(app.exception_handlers, request, error)
            runner._discard(
                tasks, f"the request failed ({type(error).__name__}) before its response was sent"
            )
        if request._has_unread_body():
            await request._drain()
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
            await response._send(send, scope["method"] == "HEAD", receive)
        except ClientDisconnected:
            runner._discard(tasks, "the client disconnected before the whole response was sent")
        except Exception:
            logger.exception("sending the response to %s %s failed", request.method, request.path)
            runner._discard(tasks, "the response could not be delivered")
        # The client now has the whole response; what follows cannot delay it.
        if tasks._durable is not None:
            app.tasks._wake()  # the local worker starts the stored tasks now
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
        if tasks._next < len(tasks._tasks):
            runner._lose(tasks)
        if teardown is not None and teardown.stack is not None:
            await _tear_down(teardown, failure, request)
            if tasks._next < len(tasks._tasks):
                # A teardown added tasks (after the first batch ran): run them, never drop them.
                try:
                    await runner.run(tasks)
                finally:
                    runner._lose(tasks)
        tasks._closed = True


async def _tear_down(teardown: Teardown, failure: BaseException | None, request: Request) -> None:
    try:
        await teardown.close(failure)
    except Exception as error:
        if error is not failure:
            logger.exception("dependency teardown failed after %s %s", request.method, request.path)
