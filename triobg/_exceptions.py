# The exceptions a handler or dependency raises to produce an error response.
#
# The pipeline (``_pipeline.py``) turns them into responses through the app's exception handlers;
# the default handlers live in ``_errors.py``. A request that ends in one of these never runs the
# background tasks it added (see the design notes on errors before the response).
from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from ._convert import ErrorDetail


class HTTPException(Exception):
    """Stop handling the request and answer with ``status_code``.

    Args:
        status_code: The HTTP status of the response.
        detail: Anything JSON-serialisable; sent as ``{"detail": ...}``. Defaults to the status
            code's reason phrase.
        headers: Extra response headers, e.g. ``WWW-Authenticate`` for a 401.
    """

    def __init__(
        self,
        status_code: int,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if detail is None:
            try:
                detail = HTTPStatus(status_code).phrase
            except ValueError:
                detail = "Error"
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = dict(headers) if headers else None

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, detail={self.detail!r})"


class ErrorList(list[ErrorDetail]):
    """The problems of a ``RequestValidationError``: a list of ``ErrorDetail``, and callable.

    ``error.errors`` is the list (``error.errors[0].loc``); ``error.errors()`` is the same
    problems as JSON-ready dicts (``loc``, ``msg``, ``type``), which is what FastAPI's
    ``exc.errors()`` returns, so its documented custom handlers port unchanged.
    """

    def __call__(self) -> list[dict[str, Any]]:
        return [error.as_json() for error in self]


class RequestValidationError(Exception):
    """The request's path, query, headers, cookies or body do not fit the handler's signature.

    Answered with 422 and every problem found, not only the first, each with its location.

    Attributes:
        errors: Every problem: a list of ``ErrorDetail``; call it (``errors()``) for dicts.
        body: The request's JSON body, when it was parsed before the problem was found
            (``None`` otherwise), as FastAPI's ``exc.body``.
    """

    def __init__(self, errors: Sequence[ErrorDetail], *, body: Any = None) -> None:
        super().__init__(errors)
        self.errors = ErrorList(errors)
        self.body = body

    def __str__(self) -> str:
        return "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in self.errors)
