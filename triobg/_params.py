# Parameter markers: where a handler argument comes from, and ``Depends``.
#
# The public names (``Query``, ``Depends``, ...) are functions returning ``Any``, as in FastAPI,
# so that ``q: str = Query("x")`` and ``db: Session = Depends(get_db)`` type-check under
# ``mypy --strict`` in users' code. What they return are plain frozen ``*Info`` values, read once
# when a route is declared (``_dependencies.py`` compiles them into a plan). Usable as defaults
# or inside ``Annotated[str, Query()]``.
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import attrs


class _Required:
    """Sentinel: the parameter has no default, so the request must provide it."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

Source = Literal["path", "query", "header", "cookie", "body", "form", "file"]


@attrs.frozen(kw_only=True)
class ParamInfo:
    """What a parameter marker declared: its source, default, wire name and bounds."""

    source: Source
    default: Any = REQUIRED
    alias: str | None = None
    description: str | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    convert_underscores: bool = True
    embed: bool = False
    has_bounds: bool = attrs.field(init=False)

    @has_bounds.default
    def _any_bounds(self) -> bool:
        # Read on every request value; computed once here.
        bounds = (self.gt, self.ge, self.lt, self.le, self.min_length, self.max_length)
        return any(bound is not None for bound in bounds)


@attrs.frozen
class DependsInfo:
    """What ``Depends(...)`` declared."""

    dependency: Callable[..., Any] | None = None
    use_cache: bool = attrs.field(default=True, kw_only=True)
    scope: Literal["request", "function"] = attrs.field(default="request", kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.scope not in ("request", "function"):
            raise ValueError(f"Depends scope must be 'request' or 'function', not {self.scope!r}")


def Path(
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    description: str | None = None,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
) -> Any:
    """A value from the URL path: ``/items/{item_id}``. Path values are always required.

    Args:
        default: Ignored for path values (kept for call-shape compatibility).
        alias: The name in the route template when it differs from the Python name.
        description: For documentation.
        gt, ge, lt, le: Bounds a number must respect.
        min_length, max_length: Bounds on the length of a string.
    """
    return ParamInfo(
        source="path", default=default, alias=alias, description=description, gt=gt, ge=ge,
        lt=lt, le=le, min_length=min_length, max_length=max_length,
    )  # fmt: skip


def Query(
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    description: str | None = None,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
) -> Any:
    """A value from the query string; annotate ``list[X]`` to collect repeated keys.

    Args:
        default: Used when the key is absent; omitted, the key is required.
        alias: The key on the wire when it differs from the Python name.
        description: For documentation.
        gt, ge, lt, le: Bounds a number must respect.
        min_length, max_length: Bounds on the length of a string or list.
    """
    return ParamInfo(
        source="query", default=default, alias=alias, description=description, gt=gt, ge=ge,
        lt=lt, le=le, min_length=min_length, max_length=max_length,
    )  # fmt: skip


def Header(
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    convert_underscores: bool = True,
    description: str | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
) -> Any:
    """A request header: ``user_agent`` reads ``User-Agent``.

    Args:
        default: Used when the header is absent; omitted, the header is required.
        alias: The header name when it differs from the Python name.
        convert_underscores: Read ``x_token`` as ``x-token`` (the default).
        description: For documentation.
        min_length, max_length: Bounds on the value's length.
    """
    return ParamInfo(
        source="header", default=default, alias=alias, description=description,
        convert_underscores=convert_underscores, min_length=min_length, max_length=max_length,
    )  # fmt: skip


def Cookie(
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    description: str | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
) -> Any:
    """A request cookie, by name.

    Args:
        default: Used when the cookie is absent; omitted, the cookie is required.
        alias: The cookie name when it differs from the Python name.
        description: For documentation.
        min_length, max_length: Bounds on the value's length.
    """
    return ParamInfo(
        source="cookie", default=default, alias=alias, description=description,
        min_length=min_length, max_length=max_length,
    )  # fmt: skip


def Body(
    default: Any = REQUIRED,
    *,
    embed: bool = False,
    alias: str | None = None,
    description: str | None = None,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
) -> Any:
    """The JSON body, or with ``embed=True`` (or several body parameters) one key of it.

    Args:
        default: Used when the body (or key) is absent; omitted, it is required.
        embed: Read ``{"name": value}`` instead of the bare value.
        alias: The key when it differs from the Python name.
        description: For documentation.
        gt, ge, lt, le: Bounds a number must respect.
        min_length, max_length: Bounds on the length of a string or list.
    """
    return ParamInfo(
        source="body", default=default, embed=embed, alias=alias, description=description,
        gt=gt, ge=ge, lt=lt, le=le, min_length=min_length, max_length=max_length,
    )  # fmt: skip


def Form(
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    description: str | None = None,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
) -> Any:
    """A field of a form body (urlencoded or multipart), typed like a query parameter.

    ``list[X]`` collects a repeated field. An empty value counts as absent, as browsers send
    one for every empty input. Errors are located at ``["body", name]``.

    Args:
        default: Used when the field is absent; omitted (or ``...``), it is required.
        alias: The field's name in the form when it differs from the Python name.
        description: For documentation.
        gt, ge, lt, le: Bounds a number must respect.
        min_length, max_length: Bounds on the length of a string or list.
    """
    return ParamInfo(
        source="form", default=REQUIRED if default is ... else default, alias=alias,
        description=description, gt=gt, ge=ge, lt=lt, le=le, min_length=min_length,
        max_length=max_length,
    )  # fmt: skip


def File(
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    description: str | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
) -> Any:
    """A file of a ``multipart/form-data`` body: annotate ``UploadFile``, ``list[UploadFile]``
    or ``UploadFile | None``.

    An ``UploadFile`` parameter needs no marker; ``File()`` gives it a default, an alias or a
    description. How large files may be is the app's (or the route's) ``UploadLimits``.

    Args:
        default: Used when no file was sent (``None`` for an optional file); omitted (or
            ``...``), a file is required.
        alias: The field's name in the form when it differs from the Python name.
        description: For documentation.
        min_length, max_length: How many files a ``list[UploadFile]`` takes.
    """
    return ParamInfo(
        source="file", default=REQUIRED if default is ... else default, alias=alias,
        description=description, min_length=min_length, max_length=max_length,
    )  # fmt: skip


def Depends(
    dependency: Callable[..., Any] | None = None,
    *,
    use_cache: bool = True,
    scope: Literal["request", "function"] = "request",
) -> Any:
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
    return DependsInfo(dependency, use_cache=use_cache, scope=scope)
