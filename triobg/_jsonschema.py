# JSON Schema (2020-12, as OpenAPI 3.1 uses it) for the Python types a route declares.
#
# Part of the OpenAPI generation (``_openapi.py``), which asks this module for the schema of each
# parameter, body and response type. Pure: no I/O. attrs classes, dataclasses, pydantic models
# (described by pydantic itself) and enums become named entries in ``components/schemas`` and
# are referred to with ``$ref``; everything else is written inline. The
# schemas describe what triobg's own converters (``_convert.py``) accept and produce, so a client
# generated from them sends what the server takes.
from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import decimal
import enum
import inspect
import json
import pathlib
import types
import typing
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Union

import attrs

from ._convert import (
    DECIMAL_PATTERN,
    DURATION_PATTERN,
    MAX_DURATION_SECONDS,
    pydantic_model_class,
    strip_optional,
)
from ._params import ParamInfo

Schema = dict[str, Any]

_SCALARS: dict[Any, Schema] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    uuid.UUID: {"type": "string", "format": "uuid"},
    dt.datetime: {"type": "string", "format": "date-time"},
    dt.date: {"type": "string", "format": "date"},
    dt.time: {"type": "string", "format": "time"},
    bytes: {"type": "string", "format": "binary"},
    # Read from a number or a numeric string (every digit kept), written as a number.
    decimal.Decimal: {
        "anyOf": [{"type": "number"}, {"type": "string", "pattern": DECIMAL_PATTERN}]
    },
    # Read from seconds or an ISO 8601 duration, written as seconds.
    dt.timedelta: {
        "anyOf": [
            {"type": "number", "minimum": -MAX_DURATION_SECONDS, "maximum": MAX_DURATION_SECONDS},
            {"type": "string", "pattern": DURATION_PATTERN},
        ]
    },
}

_REF_PREFIX = "#/components/schemas/"


class SchemaRegistry:
    """Collects named schemas (attrs classes, enums) while a document is generated.

    A ``$ref`` is handed out before its target's name is final: the name of a class depends on
    whether another class with the same ``__name__`` turns up later (then both are qualified with
    their module). ``finish`` fixes the names and rewrites every ``$ref`` handed out.
    """

    def __init__(self) -> None:
        self._schemas: dict[type, Schema] = {}
        self._refs: dict[type, list[Schema]] = {}
        self._fixed: dict[type, str] = {}  # hand-written schemas keep their own names
        self._pydantic: dict[type, list[Schema]] = {}  # pydantic models, described at the end

    def ref(self, cls: type) -> Schema:
        """A ``{"$ref": ...}`` to ``cls``'s named schema, generating that schema the first time."""
        ref: Schema = {"$ref": ""}
        known = cls in self._schemas
        self._refs.setdefault(cls, []).append(ref)
        if not known:
            self._schemas[cls] = {}  # placed first, so a recursive model refers to itself
            self._schemas[cls].update(self._named_schema(cls))
        return ref

    def finish(self) -> dict[str, Schema]:
        """Name every collected schema uniquely and return ``components/schemas``."""
        result = self._pydantic_schemas()  # pydantic's names come first: its refs use them
        counts: dict[str, int] = dict.fromkeys(result, 1)
        for cls in self._schemas:
            base = self._base_name(cls)
            counts[base] = counts.get(base, 0) + 1
        for cls, schema in self._schemas.items():
            name = self._base_name(cls)
            if counts[name] > 1 and cls not in self._fixed:
                name = f"{cls.__module__}.{cls.__qualname__}".replace("<", "").replace(">", "")
            base, number = name, 2
            while name in result:  # same module and qualname (classes made in a function)
                name = f"{base}{number}"
                number += 1
            result[name] = schema
            for ref in self._refs[cls]:
                ref["$ref"] = _REF_PREFIX + name
        return dict(sorted(result.items()))

    def _pydantic_schemas(self) -> dict[str, Schema]:
        """Every pydantic model met, described by pydantic in one pass (as FastAPI does), so
        that pydantic names them uniquely across modules; the refs handed out are filled in."""
        if not self._pydantic:
            return {}
        # Only an app with pydantic models gets here, so pydantic is imported already.
        from pydantic.json_schema import models_json_schema

        models = [(cls, "validation") for cls in self._pydantic]
        refs, document = models_json_schema(models, ref_template=_REF_PREFIX + "{model}")  # type: ignore[arg-type]
        for cls, handed_out in self._pydantic.items():
            for ref in handed_out:
                ref["$ref"] = refs[cls, "validation"]["$ref"]
        return dict(document.get("$defs", {}))

    def _base_name(self, key: type) -> str:
        return self._fixed.get(key, key.__name__)

    def _pydantic_ref(self, cls: Any) -> Schema:
        """A ``$ref`` to a pydantic model's schema, which pydantic writes in ``finish``."""
        ref: Schema = {"$ref": ""}
        self._pydantic.setdefault(cls, []).append(ref)
        return ref

    def has(self, cls: type) -> bool:
        return cls in self._schemas

    def add_raw(self, cls: type, schema: Schema) -> None:
        """Register a hand-written schema (such as the 422 error body) under ``cls``, named by
        its ``title``; ``ref(cls)`` then refers to it."""
        self._schemas[cls] = schema
        self._fixed[cls] = schema["title"]
        self._refs.setdefault(cls, [])

    # --- schemas ---------------------------------------------------------------------------

    def schema(self, annotation: Any) -> Schema:
        """The JSON Schema of values of ``annotation``, as triobg reads and writes them as JSON.

        A type with no JSON form that triobg knows of is described as ``{}`` (any value): an
        honest "unconstrained" beats failing to document the whole app.
        """
        if typing.get_origin(annotation) is Annotated:
            return self.schema(typing.get_args(annotation)[0])
        found = _SCALARS.get(annotation)
        if found is not None:
            return copy.deepcopy(found)  # ``bounds`` adds to it in place
        if annotation is Any or annotation is object:
            return {}
        if isinstance(annotation, type) and (
            attrs.has(annotation)
            or dataclasses.is_dataclass(annotation)
            or issubclass(annotation, enum.Enum)
        ):
            return self.ref(annotation)
        if isinstance(annotation, type) and issubclass(annotation, pathlib.PurePath):
            return {"type": "string", "format": "path"}
        if pydantic_model_class(annotation):
            return self._pydantic_ref(annotation)
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is Union or origin is types.UnionType:
            inner, nullable = strip_optional(annotation)
            options = (
                typing.get_args(inner)
                if typing.get_origin(inner) in (Union, types.UnionType)
                else (inner,)
            )
            schemas = [self.schema(a) for a in options]
            if nullable:
                schemas.append({"type": "null"})
            return {"anyOf": schemas}
        if origin is Literal:
            return _literal_schema(args)
        if origin in (list, Sequence) or annotation in (list, Sequence):
            return {"type": "array", "items": self.schema(args[0]) if args else {}}
        if origin in (set, frozenset) or annotation in (set, frozenset):
            # No ``uniqueItems``: duplicates are accepted and merged, as pydantic does, so the
            # document does not promise a uniqueness the server would not check.
            return {"type": "array", "items": self.schema(args[0]) if args else {}}
        if origin is tuple or annotation is tuple:
            if not args or args[-1:] == (Ellipsis,):
                return {"type": "array", "items": self.schema(args[0]) if args else {}}
            return {
                "type": "array",
                "prefixItems": [self.schema(a) for a in args],
                "minItems": len(args),
                "maxItems": len(args),
            }
        if origin in (dict, Mapping) or annotation in (dict, Mapping):
            value = self.schema(args[1]) if len(args) == 2 else {}
            return {"type": "object", "additionalProperties": value}
        return {}

    def _named_schema(self, cls: type) -> Schema:
        if issubclass(cls, enum.Enum):
            values = [member.value for member in cls]
            schema: Schema = {"title": cls.__name__, "enum": values}
            kinds = {_json_kind(v) for v in values}
            if len(kinds) == 1 and None not in kinds:
                schema["type"] = kinds.pop()
            return schema
        try:
            hints = typing.get_type_hints(cls, include_extras=True)
        except Exception:  # unresolvable forward references: fall back to the fields' record
            hints = {}
        properties: dict[str, Schema] = {}
        required: list[str] = []
        for name, field_type, default in _model_fields(cls):
            annotation = hints.get(name, field_type if field_type is not None else Any)
            if isinstance(annotation, str):
                annotation = Any  # never resolved: documented as any value
            prop = self.schema(annotation)
            if default is attrs.NOTHING:
                required.append(name)
            else:
                found = _json_default(default)
                if found is not _NO_DEFAULT:
                    prop = _with(prop, default=found)
            properties[name] = prop
        schema = {"title": cls.__name__, "type": "object", "properties": properties}
        if required:
            schema["required"] = required
        doc = cls.__doc__
        if doc and not doc.startswith(f"{cls.__name__}("):  # attrs' and dataclasses' own doc
            schema["description"] = _clean_doc(doc)
        return schema


def _model_fields(cls: Any) -> list[tuple[str, Any, Any]]:
    """``(name, type, default)`` of each field a client sends, for attrs classes and dataclasses
    alike (``attrs.NOTHING`` for no default; a dataclass factory as an ``attrs.Factory``)."""
    if attrs.has(cls):
        return [(f.name, f.type, f.default) for f in attrs.fields(cls) if f.init]
    found: list[tuple[str, Any, Any]] = []
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        default: Any = attrs.NOTHING
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = attrs.Factory(field.default_factory)
        found.append((field.name, field.type, default))
    return found


def _with(schema: Schema, **extra: Any) -> Schema:
    # ``$ref`` may have siblings in OpenAPI 3.1 (JSON Schema 2020-12), so no ``allOf`` wrapper.
    # In place: a ``$ref`` dict is rewritten by ``finish``, so it must not be copied.
    schema.update(extra)
    return schema


def _json_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _literal_schema(choices: tuple[Any, ...]) -> Schema:
    values = [c.value if isinstance(c, enum.Enum) else c for c in choices]
    schema: Schema = {"enum": values} if len(values) != 1 else {"const": values[0]}
    kinds = {_json_kind(v) for v in values}
    if len(kinds) == 1 and None not in kinds:
        schema["type"] = kinds.pop()
    return schema


_NO_DEFAULT: Any = object()
_SAFE_FACTORIES: tuple[Any, ...] = (list, dict, set, frozenset, tuple)
_FACTORY: Any = attrs.Factory  # a class at run time; typed as an overloaded function


def _json_default(default: Any) -> Any:
    """``default`` as JSON, or ``_NO_DEFAULT`` when it has no plain JSON form.

    Factories are called only when they are the builtin empty containers: calling a user's
    factory could have side effects, and its result is per instance anyway.
    """
    if isinstance(default, _FACTORY):
        factory: Any = default.factory
        if factory in _SAFE_FACTORIES and not default.takes_self:
            return [] if factory is not dict else {}
        return _NO_DEFAULT
    return json_value(default)


def json_value(value: Any) -> Any:
    """``value`` as a JSON-compatible value, or ``_NO_DEFAULT`` when there is none."""
    if isinstance(value, enum.Enum):
        value = value.value
    elif isinstance(value, dt.datetime | dt.date | dt.time):
        value = value.isoformat()
    elif isinstance(value, uuid.UUID):
        value = str(value)
    elif isinstance(value, set | frozenset | tuple):
        value = list(value)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return _NO_DEFAULT
    return value


def has_json_value(value: Any) -> bool:
    return json_value(value) is not _NO_DEFAULT


def _clean_doc(doc: str) -> str:
    return inspect.cleandoc(doc).split("\f")[0].strip()


def clean_doc(doc: str | None) -> str | None:
    """A docstring as a description: dedented, cut at a form feed (as FastAPI does)."""
    return _clean_doc(doc) if doc else None


def bounds(schema: Schema, marker: ParamInfo, annotation: Any) -> Schema:
    """``schema`` with the numeric and length bounds and the ``pattern`` ``marker`` declares.

    Bounds apply to the value, so for ``int | None`` they go on the ``int`` branch. Length
    bounds are ``minLength``/``maxLength`` on strings and ``minItems``/``maxItems`` on arrays, as
    triobg checks ``len()`` of either. Changes ``schema`` in place (it is always a fresh one).
    """
    if not marker.has_bounds:
        return schema
    numeric = (marker.gt, marker.ge, marker.lt, marker.le)
    inner, nullable = strip_optional(annotation)
    if inner is decimal.Decimal and any(bound is not None for bound in numeric):
        # A numeric string's value cannot be bounded in JSON Schema: a bounded decimal is
        # documented as a number only (strings within the bounds are still accepted).
        # Built whole and returned: recursing into the ``anyOf`` with the same annotation would
        # come back here for each branch, without end.
        number = bounds({"type": "number"}, marker, float)
        schema.clear()
        schema.update({"anyOf": [number, {"type": "null"}]} if nullable else number)
        return schema
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            bounds(option, marker, annotation)
        return schema
    result = schema
    kind = schema.get("type")
    if kind in ("integer", "number"):
        for key, value in (
            ("exclusiveMinimum", marker.gt),
            ("minimum", marker.ge),
            ("exclusiveMaximum", marker.lt),
            ("maximum", marker.le),
        ):
            if value is not None:
                result[key] = value
    elif kind == "string":
        if marker.min_length is not None:
            result["minLength"] = marker.min_length
        if marker.max_length is not None:
            result["maxLength"] = marker.max_length
        if marker.pattern is not None:
            result["pattern"] = marker.pattern  # unanchored in JSON Schema too
    elif kind == "array":
        if marker.min_length is not None:
            result["minItems"] = marker.min_length
        if marker.max_length is not None:
            result["maxItems"] = marker.max_length
        items = result.get("items")
        if marker.pattern is not None and isinstance(items, dict) and items.get("type") == "string":
            items["pattern"] = marker.pattern  # checked on each string of the list
    return result
