# The open-redirect rule: a redirect to another site is refused when its target came from the
# request.
#
# Where it sits: in the pipeline, between building the response and sending it, for the rare
# response that needs it (a ``RedirectResponse`` to another site that the application did not
# vouch for with ``allow_external=True``). The application may write any target it likes
# (``RedirectResponse("https://accounts.example/login")``, as in FastAPI); what it must not do
# is send a client wherever the request says (``?next=https://evil.example``), which turns the
# site into a trusted-looking link to a phishing page. The check compares the target with what
# the client sent: query and path parameters, and the body (as raw bytes, JSON-escaped and
# form-encoded). A match is answered 400, a client error, never a 500.
from __future__ import annotations

import typing
from urllib.parse import quote, quote_plus

from ._exceptions import HTTPException

if typing.TYPE_CHECKING:
    from ._requests import Request
    from ._responses import RedirectResponse


def check_redirect_origin(request: Request, response: RedirectResponse) -> None:
    """Refuse an off-site redirect whose target the client supplied.

    Raises:
        HTTPException: 400, naming where the target came from.
    """
    target = response.url
    where = _sent_by_client(request, target)
    if where is not None:
        raise HTTPException(
            400,
            f"refusing to redirect to another site with a target taken from the request "
            f"({where}); only paths on this site are followed",
        )


def _sent_by_client(request: Request, target: str) -> str | None:
    """Where in the request ``target`` appears, or ``None``."""
    # ``query_params`` may refuse a flood of parameters (400); this runs only for off-site
    # redirects, after the handler has run, so the parsed query is usually cached already.
    for name, value in request.query_params.multi_items():
        if value.strip() == target.strip():
            return f"query parameter {name!r}"
    for name, value in request.path_params.items():
        if value == target:
            return f"path parameter {name!r}"
    body = request._body
    if body:
        forms = {target, target.replace("/", "\\/"), quote_plus(target), quote(target, safe="")}
        for form in forms:
            encoded = form.encode("utf-8", "surrogatepass")
            if encoded and encoded in body:
                return "the request body"
    return None
