# From an exception to an error response: the default handlers and the lookup of user ones.
#
# Called by the pipeline when a handler or dependency raises. User handlers registered with
# ``@app.exception_handler(SomeError)`` win over the defaults; the most specific class in the
# exception's MRO is used. An unhandled exception is logged with its traceback (logger
# ``triobg.error``) and answered with a 500 whose body says nothing about the internals.
from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ._exceptions import HTTPException, RequestValidationError
from ._requests import Request
from ._responses import JSONResponse, Response, UnsafeRedirect

logger = logging.getLogger("triobg.error")

# Given the ``Request`` (an HTTP route) or the ``WebSocket`` (a WebSocket route, where what it
# returns is ignored), hence ``Any`` for both: a handler annotated for either one type-checks.
ExceptionHandler = Callable[[Any, Any], Response | Awaitable[Response] | Awaitable[None] | None]


def http_exception_handler(request: Request, error: HTTPException) -> Response:
    """``{"detail": ...}`` with the exception's status and headers."""
    if error.status_code in (204, 304) or error.status_code < 200:
        return Response(status_code=error.status_code, headers=error.headers)
    return JSONResponse({"detail": error.detail}, error.status_code, error.headers)


def validation_error_handler(request: Request, error: RequestValidationError) -> Response:
    """422 listing every problem: ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``."""
    return JSONResponse({"detail": error.errors()}, 422)


def unsafe_redirect_handler(request: Request, error: UnsafeRedirect) -> Response:
    """400: a redirect target with a control character came, in practice, from the client."""
    logger.warning("%s %s: %s", request.method, request.path, error)
    return JSONResponse(
        {"detail": "refusing to redirect to a target with a control character"}, 400
    )


def server_error_handler(request: Request, error: Exception) -> Response:
    """Log the traceback; tell the client only that something went wrong on our side."""
    logger.error(
        "unhandled %s in %s %s", type(error).__name__, request.method, request.path, exc_info=error
    )
    return JSONResponse({"detail": "Internal Server Error"}, 500)


DEFAULT_HANDLERS: dict[type[BaseException], ExceptionHandler] = {
    HTTPException: http_exception_handler,
    RequestValidationError: validation_error_handler,
    UnsafeRedirect: unsafe_redirect_handler,
    Exception: server_error_handler,
}


_BUILT_IN = frozenset(DEFAULT_HANDLERS.values())


def registered_handler(
    handlers: dict[type[BaseException], ExceptionHandler], error: BaseException
) -> ExceptionHandler | None:
    """The handler registered by the app for ``error`` (the most specific class in its MRO),
    or ``None`` when that one is triobg's own default (WebSockets have their own defaults)."""
    handler = next((handlers[c] for c in type(error).__mro__ if c in handlers), None)
    return None if handler is None or handler in _BUILT_IN else handler


async def error_response(
    handlers: dict[type[BaseException], ExceptionHandler], request: Request, error: Exception
) -> Response:
    """The response for ``error``: from the most specific handler, else a logged 500."""
    if isinstance(error, RequestValidationError) and error.body is None:
        error.body = request._parsed_json()  # FastAPI's ``exc.body``, for custom handlers
    handler = next((handlers[c] for c in type(error).__mro__ if c in handlers), None)
    if handler is None:
        return server_error_handler(request, error)
    try:
        result: Any = handler(request, error)
        if inspect.isawaitable(result):
            result = await result
    except Exception as handler_error:
        logger.exception(
            "exception handler %r failed (%s) while handling %s",
            handler,
            type(handler_error).__name__,
            type(error).__name__,
        )
        return server_error_handler(request, error)
    if not isinstance(result, Response):
        logger.error("exception handler %r returned %r, not a Response", handler, result)
        return server_error_handler(request, error)
    return result
