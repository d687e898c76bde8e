# Parameter markers: where a handler argument comes from, and ``Depends``.
#
# The public names (``Query``, ``Depends``, ...) are functions returning ``Any``, as in FastAPI,
# so that ``q: str = Query("x")`` and ``db: Session = Depends(get_db)`` type-check under
# ``mypy --strict`` in users' code. What they return are plain frozen ``*Info`` values, read once
# when a route is declared (``_dependencies.py`` compiles them into a plan). Usable as defaults
# or inside ``Annotated[str, Query()]``.
from __future__ import annotations

import decimal
import re
from collections.abc import Callable
from typing import Any, Literal

import attrs

from ._convert import ErrorDetail, Loc, sequence_item, strip_optional


def _end_means_end(pattern: str) -> str:
    """``pattern`` with each ``$`` meaning the end of the value, as in JSON Schema and pydantic.

    Python's ``$`` also matches before a final newline, so ``^[a-z]+$`` would accept
    ``"abc\\n"``, which the OpenAPI document (ECMA-262) and FastAPI (pydantic's regex engine)
    refuse. A ``$`` outside a character class becomes ``\\Z``; patterns in multiline mode are
    left alone.
    """
    if "$" not in pattern or "(?m" in pattern:
        return pattern
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":  # an escape: copied as it is (``\\$`` stays a literal dollar)
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if char == "[":  # a character class, where ``$`` is a literal: copied as it is
            j = i + 1
            j += pattern[j : j + 1] == "^"
            j += pattern[j : j + 1] == "]"  # a ``]`` first in the class is a literal
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            out.append(pattern[i : j + 1])
            i = j + 1
            continue
        out.append(r"\Z" if char == "$" else char)
        i += 1
    return "".join(out)


class _Required:
    """Sentinel: the parameter has no default, so the request must provide it."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


def _required_if_ellipsis(default: Any) -> Any:
    """``...`` as a marker's default means "required", as FastAPI users write it.

    Read as a value, ``Query(...)`` would make ``Ellipsis`` the default of an optional
    parameter: a missing key would reach the handler as ``...`` and the OpenAPI document would
    call a required parameter optional.
    """
    return REQUIRED if default is ... else default


Source = Literal["path", "query", "header", "cookie", "body", "form", "file"]


@attrs.frozen(kw_only=True)
class ParamInfo:
    """What a parameter marker declared: its source, default, wire name and bounds."""

    source: Source
    default: Any = attrs.field(default=REQUIRED, converter=_required_if_ellipsis)
    alias: str | None = None
    description: str | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    convert_underscores: bool = True
    embed: bool = False
    #: ``pattern`` compiled once, here: a bad expression fails where the marker is written.
    regex: re.Pattern[str] | None = attrs.field(init=False, repr=False, eq=False)
    has_bounds: bool = attrs.field(init=False)

    @regex.default
    def _compile_pattern(self) -> re.Pattern[str] | None:
        if self.pattern is None:
            return None
        try:
            return re.compile(_end_means_end(self.pattern))
        except re.error as error:
            raise ValueError(
                f"pattern {self.pattern!r} is not a valid regular expression: {error}"
            ) from None

    @has_bounds.default
    def _any_bounds(self) -> bool:
        # Read on every request value; computed once here.
        bounds = (self.gt, self.ge, self.lt, self.le, self.min_length, self.max_length)
        return self.pattern is not None or any(bound is not None for bound in bounds)

    def check(self, value: Any, loc: Loc) -> list[ErrorDetail]:
        """Every constraint ``value`` breaks, located at ``loc``.

        The one place constraints are checked, for every source (path, query, header, cookie,
        body fields, form fields). Numbers (``Decimal`` too) are checked against ``gt``, ``ge``,
        ``lt``, ``le``; ``min_length``/``max_length`` bound the length of a string or of a
        list; ``pattern`` is searched for in a string (anywhere, as pydantic v2 and JSON Schema
        do: anchor it with ``^...$`` to match the whole value), or in each string of a list,
        located by index.
        """
        problems: list[ErrorDetail] = []
        if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
            message = None
            if self.gt is not None and not value > self.gt:
                message = f"must be greater than {self.gt}"
            elif self.ge is not None and not value >= self.ge:
                message = f"must be greater than or equal to {self.ge}"
            elif self.lt is not None and not value < self.lt:
                message = f"must be less than {self.lt}"
            elif self.le is not None and not value <= self.le:
                message = f"must be less than or equal to {self.le}"
            if message is not None:
                problems.append(ErrorDetail(loc, message, "bounds"))
        if isinstance(value, str | list | tuple | set | frozenset):
            if self.min_length is not None and len(value) < self.min_length:
                message = f"must have at least {self.min_length} characters or items"
                problems.append(ErrorDetail(loc, message, "bounds"))
            elif self.max_length is not None and len(value) > self.max_length:
                message = f"must have at most {self.max_length} characters or items"
                problems.append(ErrorDetail(loc, message, "bounds"))
        if self.regex is not None:
            if isinstance(value, str):
                if self.regex.search(value) is None:
                    problems.append(self._mismatch(loc))
            elif isinstance(value, list | tuple):
                problems.extend(
                    self._mismatch((*loc, index))
                    for index, item in enumerate(value)
                    if isinstance(item, str) and self.regex.search(item) is None
                )
        return problems

    def _mismatch(self, loc: Loc) -> ErrorDetail:
        return ErrorDetail(
            loc, f"must match the pattern {self.pattern!r}", "string_pattern_mismatch"
        )

    def check_applies(self, annotation: Any, what: str) -> None:
        """Refuse, at declaration, a ``pattern`` on a parameter that is not a string.

        Raises:
            TypeError: ``pattern`` given for a non-string annotation (``what`` names it).
        """
        if self.pattern is None:
            return
        inner, _ = strip_optional(annotation)
        item = sequence_item(inner)
        if (item if item is not None else inner) not in (str, Any):
            raise TypeError(f"{what}: pattern= applies to strings, not to {annotation!r}")


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
    pattern: str | None = None,
) -> Any:
    """A value from the URL path: ``/items/{item_id}``. Path values are always required.

    Args:
        default: Ignored for path values (kept for call-shape compatibility).
        alias: The name in the route template when it differs from the Python name.
        description: For documentation.
        gt, ge, lt, le: Bounds a number must respect.
        min_length, max_length: Bounds on the length of a string.
        pattern: A regular expression the value must contain a match for; anchor it
            (``^[a-z]+$``) to match the whole value.
    """
    return ParamInfo(
        source="path", default=default, alias=alias, description=description, gt=gt, ge=ge,
        lt=lt, le=le, min_length=min_length, max_length=max_length, pattern=pattern,
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
    pattern: str | None = None,
) -> Any:
    """A value from the query string; annotate ``list[X]`` to collect repeated keys.

    Args:
        default: Used when the key is absent; omitted (or ``...``), the key is required.
        alias: The key on the wire when it differs from the Python name.
        description: For documentation.
        gt, ge, lt, le: Bounds a number must respect.
        min_length, max_length: Bounds on the length of a string or list.
        pattern: A regular expression the string (or each string of a list) must contain a
            match for; anchor it (``^[a-z]+$``) to match the whole value.
    """
    return ParamInfo(
        source="query", default=default, alias=alias, description=description, gt=gt, ge=ge,
        lt=lt, le=le, min_length=min_length, max_length=max_length, pattern=pattern,
    )  # fmt: skip


def Header(
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    convert_underscores: bool = True,
    description: str | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
) -> Any:
    """A request header: ``user_agent`` reads ``User-Agent``.

    Args:
        default: Used when the header is absent; omitted (or ``...``), the header is required.
        alias: The header name when it differs from the Python name.
        convert_underscores: Read ``x_token`` as ``x-token`` (the default).
        description: For documentation.
        min_length, max_length: Bounds on the value's length.
        pattern: A regular expression the value must contain a match for; anchor it
            (``^[a-z]+$``) to match the whole value.
    """
    return ParamInfo(
        source="header", default=default, alias=alias, description=description,
        convert_underscores=convert_underscores, min_length=min_length, max_length=max_length,
        pattern=pattern,
    )  # fmt: skip


def Cookie(
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    description: str | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
) -> Any:
    """A request cookie, by name.

    Args:
        default: Used when the cookie is absent; omitted (or ``...``), the cookie is required.
        alias: The cookie name when it differs from the Python name.
        description: For documentation.
        min_length, max_length: Bounds on the value's length.
        pattern: A regular expression the value must contain a match for; anchor it
            (``^[a-z]+$``) to match the whole value.
    """
    return ParamInfo(
        source="cookie", default=default, alias=alias, description=description,
        min_length=min_length, max_length=max_length, pattern=pattern,
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
    pattern: str | None = None,
) -> Any:
    """The JSON body, or with ``embed=True`` (or several body parameters) one key of it.

    Args:
        default: Used when the body (or key) is absent; omitted (or ``...``), it is required.
        embed: Read ``{"name": value}`` instead of the bare value.
        alias: The key when it differs from the Python name.
        description: For documentation.
        gt, ge, lt, le: Bounds a number must respect.
        min_length, max_length: Bounds on the length of a string or list.
        pattern: A regular expression the string (or each string of a list) must contain a
            match for; anchor it (``^[a-z]+$``) to match the whole value.
    """
    return ParamInfo(
        source="body", default=default, embed=embed, alias=alias, description=description,
        gt=gt, ge=ge, lt=lt, le=le, min_length=min_length, max_length=max_length, pattern=pattern,
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
    pattern: str | None = None,
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
        pattern: A regular expression the string (or each string of a list) must contain a
            match for; anchor it (``^[a-z]+$``) to match the whole value.
    """
    return ParamInfo(
        source="form", default=default, alias=alias,
        description=description, gt=gt, ge=ge, lt=lt, le=le, min_length=min_length,
        max_length=max_length, pattern=pattern,
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
    or ``UploadFile | None``; or ``bytes`` (``list[bytes]``, ``bytes | None``) for the whole
    content of a small file, read into memory in a worker thread before the handler runs.

    An ``UploadFile`` parameter needs no marker; ``File()`` gives it a default, an alias or a
    description (a ``bytes`` one needs the marker, as in FastAPI). How large files may be is the
    app's (or the route's) ``UploadLimits``.

    Args:
        default: Used when no file was sent (``None`` for an optional file); omitted (or
            ``...``), a file is required.
        alias: The field's name in the form when it differs from the Python name.
        description: For documentation.
        min_length, max_length: How many files a ``list[UploadFile]`` takes.
    """
    return ParamInfo(
        source="file", default=default, alias=alias,
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
