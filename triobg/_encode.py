# Encoding handler return values as JSON.
#
# The fast path is ``json.dumps`` on plain dicts and lists; values json cannot encode (attrs
# instances, dataclasses, pydantic models, datetimes, UUIDs, enums, sets, ``Decimal``,
# ``timedelta``, ``bytes``, paths) go through one ``default`` hook that uses the same cattrs
# converter that structures request bodies, so a model round-trips the same way in and out. The
# choices for types JSON lacks follow FastAPI's ``jsonable_encoder``: ``Decimal`` -> number,
# ``timedelta`` -> seconds as a float, ``bytes`` -> UTF-8 text, paths -> text, sets -> arrays.
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import pathlib
import uuid
from typing import Any

import attrs

from ._convert import bytes_to_json, decimal_to_json, make_body_converter, pydantic_model_class

converter = make_body_converter()


def _default(value: Any) -> Any:
    cls = type(value)
    if attrs.has(cls) or dataclasses.is_dataclass(cls) or pydantic_model_class(cls):
        return converter.unstructure(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, decimal.Decimal):
        return decimal_to_json(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return bytes_to_json(value)
    if isinstance(value, pathlib.PurePath):
        return str(value)
    raise TypeError(f"cannot encode a {cls.__name__} as JSON")


_encoder = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
)

# ``JSONEncoder.encode`` builds a new C encoder, through two Python layers, on every call;
# one built here serves every response. ``markers=None`` skips the circular-reference check:
# a handler returning a cycle is a server bug and fails as one (RecursionError, a 500).
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encode = (
    _c_make_encoder(
        None, _default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    if _c_make_encoder is not None
    else None
)


def dump_json(value: Any) -> bytes:
    """Encode ``value`` as compact UTF-8 JSON.

    A string holding a lone surrogate (no UTF-8 form) makes the whole value come out with
    ASCII escapes instead of failing.

    Raises:
        TypeError: a value has no JSON form.
        ValueError: a float is NaN or infinite (not valid JSON).
    """
    if _c_encode is None or isinstance(value, str):
        text = _encoder.encode(value)
    else:
        text = "".join(_c_encode(value, 0))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (request bodies are refused with one, but a handler may build such a
        # string, e.g. from a file name decoded with ``surrogateescape``) has no UTF-8 form;
        # JSON's ``\\udXXX`` escape is still valid JSON, so this value is sent escaped.
        return _ascii_encoder.encode(value).encode("ascii")


_ascii_encoder = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=_default
)
