# Parameter markers: where a handler argument comes from, and ``Depends``.
#
# These are plain frozen values read once, when a route is declared (``_dependencies.py``
# compiles them into a plan). Usable as defaults (``q: str = Query("x")``) or inside
# ``Annotated[str, Query()]``, as in FastAPI.
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import attrs


class _Required:
    """Sentinel: the parameter has no default, so the request must provide it."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@attrs.frozen
class Param:
    """Common options of every request parameter marker.

    Args:
        default: Used when the request does not carry the value; ``REQUIRED`` when omitted.
        alias: The name on the wire when it differs from the Python name.
        description: For documentation.
        gt, ge, lt, le: Bounds a number must respect.
        min_length, max_length: Bounds on the length of a string or list.
    """

    default: Any = REQUIRED
    alias: str | None = attrs.field(default=None, kw_only=True)
    description: str | None = attrs.field(default=None, kw_only=True)
    gt: float | None = attrs.field(default=None, kw_only=True)
    ge: float | None = attrs.field(default=None, kw_only=True)
    lt: float | None = attrs.field(default=None, kw_only=True)
    le: float | None = attrs.field(default=None, kw_only=True)
    min_length: int | None = attrs.field(default=None, kw_only=True)
    max_length: int | None = attrs.field(default=None, kw_only=True)

    source: Literal["path", "query", "header", "cookie", "body"] = attrs.field(
        default="query", init=False
    )


@attrs.frozen
class Path(Param):
    """A value from the URL path: ``/items/{item_id}``."""

    source: Literal["path"] = attrs.field(default="path", init=False)


@attrs.frozen
class Query(Param):
    """A value from the query string; annotate ``list[X]`` for repeated keys."""

    source: Literal["query"] = attrs.field(default="query", init=False)


@attrs.frozen
class Header(Param):
    """A request header; ``user_agent`` reads ``User-Agent`` (``convert_underscores=False``
    turns that off)."""

    convert_underscores: bool = attrs.field(default=True, kw_only=True)
    source: Literal["header"] = attrs.field(default="header", init=False)


@attrs.frozen
class Cookie(Param):
    """A request cookie."""

    source: Literal["cookie"] = attrs.field(default="cookie", init=False)


@attrs.frozen
class Body(Param):
    """A JSON body, or with ``embed=True`` (or several body parameters) a field of it."""

    embed: bool = attrs.field(default=False, kw_only=True)
    source: Literal["body"] = attrs.field(default="body", init=False)


@attrs.frozen
class Depends:
    """Declare a dependency: ``db: Session = Depends(get_db)``.

    Args:
        dependency: The callable; omitted, the parameter's annotation is called.
        use_cache: Call it once per request and share the result with every other place that
            depends on it (the default), or call it afresh here.
        scope: For dependencies that ``yield``: ``"request"`` (default) tears down after the
            response has been sent and the request's background tasks have finished, so tasks
            can use the resource; ``"function"`` tears down as soon as the handler returns,
            before the response is sent.
    """

    dependency: Callable[..., Any] | None = None
    use_cache: bool = attrs.field(default=True, kw_only=True)
    scope: Literal["request", "function"] = attrs.field(default="request", kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.scope not in ("request", "function"):
            raise ValueError(f"Depends scope must be 'request' or 'function', not {self.scope!r}")
