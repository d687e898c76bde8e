# Forms: ``FormData``, reading a form body (``await request.form()``), and handing its values
# to ``Form()``/``File()`` parameters.
#
# Where it sits: the generated solver (``_solve.py``) awaits ``read_form`` once, in pass one,
# before reading any ``Form``/``File`` parameter; ``read_form_param`` then gives each one its
# value or an error located at ``["body", name]``, exactly like a query parameter (the same
# converters and bounds). ``read_form`` picks the reader by ``Content-Type``: multipart bodies
# stream through ``_multipart.py`` (files to disk), urlencoded ones are small and read whole.
from __future__ import annotations

import typing
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote_plus

from ._convert import ConversionError, ErrorDetail
from ._exceptions import HTTPException
from ._multipart import read_multipart
from ._uploads import UploadFile, UploadLimits

if typing.TYPE_CHECKING:
    from ._dependencies import ParamSpec
    from ._requests import Request

FORM_SOURCES = ("form", "file")
MULTIPART = "multipart/form-data"
URLENCODED = "application/x-www-form-urlencoded"


class FormData(Mapping[str, "str | UploadFile"]):
    """A form's fields and files, in order; ``form["name"]`` is the last value, ``getlist`` all.

    The files in it belong to the request: they are deleted after its background tasks.
    """

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str | UploadFile]] | None = None) -> None:
        self._items: list[tuple[str, str | UploadFile]] = items if items is not None else []

    def _append(self, name: str, value: str | UploadFile) -> None:
        self._items.append((name, value))

    def __getitem__(self, key: str) -> str | UploadFile:
        for name, value in reversed(self._items):
            if name == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._items))

    def __len__(self) -> int:
        return len(dict.fromkeys(name for name, _ in self._items))

    def __repr__(self) -> str:
        return f"FormData({self._items!r})"

    def getlist(self, key: str) -> list[str | UploadFile]:
        """Every value sent under ``key``, in order."""
        return [value for name, value in self._items if name == key]

    def multi_items(self) -> list[tuple[str, str | UploadFile]]:
        return list(self._items)

    async def close(self) -> None:
        """Close (and delete) every file now, instead of at the end of the request."""
        for _, value in self._items:
            if isinstance(value, UploadFile):
                await value.close()


async def read_form(request: Request, limits: UploadLimits) -> FormData:
    """Read the request's body as a form, whichever of the two form encodings it uses.

    Raises:
        HTTPException: 415 for a body that is not a form; 400/408/413 as the readers say.
    """
    media, options = parse_content_type(request.headers.get("content-type", ""))
    if media == MULTIPART:
        boundary = options.get("boundary")
        if not boundary:
            raise HTTPException(400, "multipart/form-data without a boundary in its Content-Type")
        if len(boundary) > 200 or not boundary.isprintable():
            raise HTTPException(400, "invalid multipart boundary in the Content-Type")
        form = FormData()
        await read_multipart(request, boundary, limits, form)
        return form
    if media == URLENCODED:
        return parse_urlencoded(await request.body(), limits)
    if not media and not request._has_unread_body():
        return FormData()  # no body at all: every field is missing, said field by field
    raise HTTPException(
        415, f"expected a form ({MULTIPART} or {URLENCODED}), got {media or 'no Content-Type'!r}"
    )


def parse_content_type(header: str) -> tuple[str, dict[str, str]]:
    """``multipart/form-data; boundary="x"`` -> ``("multipart/form-data", {"boundary": "x"})``."""
    media, _, rest = header.partition(";")
    options: dict[str, str] = {}
    for part in rest.split(";"):
        name, sep, value = part.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        options.setdefault(name.strip().lower(), value)
    return media.strip().lower(), options


def parse_urlencoded(raw: bytes, limits: UploadLimits) -> FormData:
    """Split an urlencoded body into fields, within ``max_fields`` and ``max_field_size``."""
    form = FormData()
    if not raw:
        return form
    count = raw.count(b"&") + 1
    if count > limits.max_fields:
        raise HTTPException(
            413, f"too many form fields: {count} (the limit is {limits.max_fields})"
        )
    for part in raw.decode("utf-8", errors="replace").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name = unquote_plus(name, errors="replace")
        value = unquote_plus(value, errors="replace")
        # The limit is in bytes, as for multipart fields: a character is up to 4 of them
        # (encoded only when that could matter).
        limit = limits.max_field_size
        if len(value) * 4 > limit and len(value.encode("utf-8", "surrogatepass")) > limit:
            raise HTTPException(
                413, f"form field {name!r} too large: over {limits.max_field_size} bytes"
            )
        form._append(name, value)
    return form


def read_form_param(
    spec: ParamSpec,
    request: Request,
    errors: list[ErrorDetail],
) -> Any:
    """The value of one ``Form()``/``File()`` parameter from the form already read.

    An empty string counts as absent (what a browser sends for an empty input), as in FastAPI;
    so does a file part with no name and no bytes (a file input left empty). A name sent twice
    for a parameter that is not a list is a 422.
    """
    form = request._form
    assert form is not None, "the solver reads the form before its parameters"
    loc = ("body", spec.wire)
    values = form.getlist(spec.wire)
    if spec.source == "file":
        found: list[Any] = []
        for value in values:
            if not isinstance(value, UploadFile):
                errors.append(ErrorDetail(loc, "expected a file, got a plain field", "type_error"))
                return None
            if value.filename or value.size:
                found.append(value)
    else:
        found = []
        for value in values:
            if isinstance(value, UploadFile):
                errors.append(ErrorDetail(loc, "expected a plain field, got a file", "type_error"))
                return None
            if value != "":
                found.append(value)
    if not found:
        if spec.required:
            errors.append(ErrorDetail(loc, "field required", "missing"))
        return spec.default
    if len(found) > 1 and not spec.many:
        # Unlike a query string, a form repeats a name only when it means a list: taking one
        # of the values silently would drop the others.
        kind = "files" if spec.source == "file" else "values"
        errors.append(
            ErrorDetail(loc, f"expected one value, got {len(found)} {kind}", "too_many_values")
        )
        return None
    try:
        result = [spec.convert(v) for v in found] if spec.many else spec.convert(found[-1])
    except ConversionError as error:
        errors.append(ErrorDetail(loc, error.msg, error.kind))
        return None
    if spec.marker.has_bounds:
        errors.extend(spec.marker.check(result, loc))
    return result
