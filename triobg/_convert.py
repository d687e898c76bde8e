# Turning untyped request data into the types a handler declares, and typed results back into JSON.
#
# Sits between the request (strings, bytes, parsed JSON) and dependency solving: path, query,
# header and cookie values are strings converted by small compiled functions, one per declared
# annotation; JSON bodies are structured with a strict cattrs converter (attrs classes,
# dataclasses, pydantic v2 models through pydantic's own validation, and the types JSON lacks).
# Every failure carries a location (``["body", "items", 2, "price"]``) and a message meant for
# the person who sent the request. ``json_type_problem`` checks, when a route is declared, that
# every part of a body or response type is one of these. Pure: no I/O.
from __future__ import annotations

import collections.abc
import dataclasses
import datetime as dt
import decimal
import enum
import math
import pathlib
import re
import sys
import types
import typing
import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, Union

import attrs
import cattrs
from cattrs.cols import list_structure_factory
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

Loc = tuple[str | int, ...]


@attrs.frozen
class ErrorDetail:
    """One problem with one input: where, what, and a machine-readable kind."""

    loc: Loc
    msg: str
    type: str

    def as_json(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}


class ConversionError(ValueError):
    """A single value could not be converted; the caller adds the location."""

    def __init__(self, msg: str, kind: str) -> None:
        super().__init__(msg)
        self.msg = msg
        self.kind = kind


# --- scalars from strings (path, query, header, cookie) -------------------------------------

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_MAX_INT_DIGITS = 1000


def _to_str(value: str) -> str:
    return value


def _to_int(value: str) -> int:
    text = value.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()):
        raise ConversionError(f"{value!r} is not a valid integer", "int_parsing")
    if len(digits) > _MAX_INT_DIGITS:
        raise ConversionError(f"integer has more than {_MAX_INT_DIGITS} digits", "int_too_long")
    return int(text)


# A number as JSON and the OpenAPI document write it (an optional sign, ASCII digits, an
# optional fraction and exponent), surrounded by optional whitespace as for integers. Python's
# ``float()`` also takes ``1_0``, ``nan``, ``infinity`` and non-ASCII digits (``١٢``); none is a
# number to a client, and integers already refuse them.
_FLOAT = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)


def _number(value: str) -> float | None:
    """``value`` as a float if it is written as a number (maybe not a finite one), else None."""
    return float(value) if _FLOAT.fullmatch(value) is not None else None


def _to_float(value: str) -> float:
    result = _number(value)
    if result is None:
        raise ConversionError(f"{value!r} is not a valid number", "float_parsing")
    if not math.isfinite(result):  # ``1e999``
        raise ConversionError(f"{value!r} is not a finite number", "finite_number")
    return result


def _to_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConversionError(
        f"{value!r} is not a valid boolean (use true/false, 1/0, yes/no or on/off)",
        "bool_parsing",
    )


def _to_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ConversionError(f"{value!r} is not a valid UUID", "uuid_parsing") from None


def _to_datetime(value: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConversionError(
            f"{value!r} is not a valid ISO 8601 datetime (e.g. 2024-05-01T12:30:00Z)",
            "datetime_parsing",
        ) from None


def _to_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConversionError(
            f"{value!r} is not a valid ISO 8601 date (e.g. 2024-05-01)", "date_parsing"
        ) from None


def _to_time(value: str) -> dt.time:
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise ConversionError(
            f"{value!r} is not a valid ISO 8601 time (e.g. 12:30:00)", "time_parsing"
        ) from None


# The strings read as a ``Decimal`` and as a duration, written so that the same text is the
# ``pattern`` of their JSON Schema (``_jsonschema.py``): what the document allows is exactly what
# is accepted. Digits are bounded, so no accepted value is beyond a float when written out, and
# no exponent makes a giant integer (``1e999999999``).
DECIMAL_PATTERN = r"^[+-]?(?:\d{1,200}(?:\.\d{0,100})?|\.\d{1,100})(?:[eE][+-]?\d{1,2})?$"
_NUMBER = r"(\d{1,6}(?:\.\d{1,6})?)"
# ISO 8601 durations, read as pydantic reads them: a year is 365 days, a month 30.
DURATION_PATTERN = (
    rf"^[+-]?P(?!$)(?:{_NUMBER}Y)?(?:{_NUMBER}M)?(?:{_NUMBER}W)?(?:{_NUMBER}D)?"
    rf"(?:T(?!$)(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?$"
)
_DECIMAL = re.compile(DECIMAL_PATTERN, re.ASCII)
_DURATION = re.compile(DURATION_PATTERN, re.ASCII)
_DURATION_UNITS = ("days", "days", "weeks", "days", "hours", "minutes", "seconds")
_DURATION_SCALE = (365.0, 30.0, 1.0, 1.0, 1.0, 1.0, 1.0)
#: Durations given in seconds are bounded by what ``timedelta`` holds, symmetrically.
MAX_DURATION_SECONDS = -int(dt.timedelta.min.total_seconds())


def _decimal_string(value: str) -> decimal.Decimal:
    # A JSON string: exactly ``DECIMAL_PATTERN``, what the document says.
    if _DECIMAL.match(value) is None:
        raise ConversionError(f"{value!r} is not a valid decimal number", "decimal_parsing")
    return decimal.Decimal(value)


def _to_decimal(value: str) -> decimal.Decimal:
    # In a query or a path the text may also be any number a float holds (``5e-251``): the
    # document's number form, written out. ``1e999999999`` is neither, so never a giant integer.
    if _DECIMAL.match(value) is not None:
        return decimal.Decimal(value)
    number = _number(value)
    if number is None or not math.isfinite(number):
        raise ConversionError(f"{value!r} is not a valid decimal number", "decimal_parsing")
    return decimal.Decimal(value.strip())


def _seconds(value: float) -> dt.timedelta:
    if math.isfinite(value) and abs(value) <= MAX_DURATION_SECONDS:
        return dt.timedelta(seconds=value)
    raise ConversionError(
        f"{value!r} seconds is not a duration (at most {MAX_DURATION_SECONDS} either way)",
        "duration",
    )


def _iso_duration(value: str) -> dt.timedelta:
    found = _DURATION.match(value)
    if found is None:
        raise ConversionError(
            f"{value!r} is not an ISO 8601 duration (e.g. PT1H30M or P2DT3H)", "duration"
        )
    result = dt.timedelta()
    for unit, scale, number in zip(_DURATION_UNITS, _DURATION_SCALE, found.groups(), strict=True):
        if number is not None:
            result += dt.timedelta(**{unit: float(number) * scale})
    return -result if value.startswith("-") else result


def _to_timedelta(value: str) -> dt.timedelta:
    # In a query or a path: seconds (``90``, ``1.5``) or an ISO 8601 duration.
    number = _number(value)
    return _iso_duration(value) if number is None else _seconds(number)


def _enum_converter(cls: type[enum.Enum]) -> Callable[[str], Any]:
    by_text = {str(member.value): member for member in cls}
    allowed = ", ".join(repr(k) for k in by_text)

    def convert(value: str) -> Any:
        try:
            return by_text[value]
        except KeyError:
            raise ConversionError(
                f"{value!r} is not one of the allowed values: {allowed}", "enum"
            ) from None

    return convert


def _literal_converter(choices: tuple[Any, ...]) -> Callable[[str], Any]:
    by_text = {str(c).lower() if isinstance(c, bool) else str(c): c for c in choices}
    allowed = ", ".join(repr(k) for k in by_text)

    def convert(value: str) -> Any:
        try:
            return by_text[value]
        except KeyError:
            raise ConversionError(
                f"{value!r} is not one of the allowed values: {allowed}", "literal_error"
            ) from None

    return convert


_SCALARS: dict[Any, Callable[[str], Any]] = {
    str: _to_str,
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
    uuid.UUID: _to_uuid,
    dt.datetime: _to_datetime,
    dt.date: _to_date,
    dt.time: _to_time,
    dt.timedelta: _to_timedelta,
    decimal.Decimal: _to_decimal,
    Any: _to_str,
}


def strip_optional(annotation: Any) -> tuple[Any, bool]:
    """Split ``X | None`` into ``(X, True)``; anything else is ``(annotation, False)``."""
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        allows_none = len(args) != len(typing.get_args(annotation))
        if len(args) == 1:
            return args[0], allows_none
        return Union[tuple(args)], allows_none  # noqa: UP007 - rebuilding a runtime union
    return annotation, False


def sequence_item(annotation: Any) -> Any | None:
    """The item type of ``list[X]``, ``tuple[X, ...]``, ``set[X]`` and the like, else ``None``."""
    origin = typing.get_origin(annotation)
    if origin in (list, set, frozenset, Sequence) or (
        origin is tuple and typing.get_args(annotation)[-1:] == (Ellipsis,)
    ):
        args = typing.get_args(annotation)
        return args[0] if args else str
    if annotation in (list, set, frozenset, tuple):
        return str
    return None


def scalar_converter(annotation: Any) -> Callable[[str], Any]:
    """Compile the string converter for a scalar annotation.

    Raises:
        TypeError: the annotation is not a type triobg can read from a string; raised when the
            route is declared, so that a mistake shows up at import time, not per request.
    """
    inner, _ = strip_optional(annotation)
    found = _SCALARS.get(inner)
    if found is not None:
        return found
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        return _enum_converter(inner)
    if typing.get_origin(inner) is Literal:
        return _literal_converter(typing.get_args(inner))
    if typing.get_origin(inner) is Union or typing.get_origin(inner) is types.UnionType:
        options = [scalar_converter(a) for a in typing.get_args(inner)]

        def first_fit(value: str) -> Any:
            errors = []
            for option in options:
                try:
                    return option(value)
                except ConversionError as error:
                    errors.append(error.msg)
            raise ConversionError("; ".join(errors), "union")

        return first_fit
    raise TypeError(f"cannot read a {annotation!r} from a path, query, header or cookie string")


def is_scalar(annotation: Any) -> bool:
    """Whether ``annotation`` (or its list form) can be read from strings."""
    inner, _ = strip_optional(annotation)
    item = sequence_item(inner)
    try:
        scalar_converter(item if item is not None else inner)
    except TypeError:
        return False
    return True


# --- JSON bodies -----------------------------------------------------------------------------


class _StrictError(TypeError):
    """Raised by the strict hooks; its text is already a message for people."""


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _strict_int(value: Any, _: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _StrictError(f"expected an integer, got {_json_type(value)}")


def _strict_float(value: Any, _: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
        if math.isfinite(result):
            return result
    raise _StrictError(f"expected a finite number, got {_json_type(value)}")


def _strict_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    raise _StrictError(f"expected a string, got {_json_type(value)}")


def _strict_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _StrictError(f"expected true or false, got {_json_type(value)}")


def _from_string(convert: Callable[[str], Any]) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _: Any) -> Any:
        if not isinstance(value, str):
            raise _StrictError(f"expected a string, got {_json_type(value)}")
        try:
            return convert(value)
        except ConversionError as error:
            raise _StrictError(error.msg) from None

    return hook


def _strict_decimal(value: Any, _: Any) -> decimal.Decimal:
    # A JSON number arrives as a float; its shortest repr is the text the client sent (up to a
    # float's 17 digits). A string keeps every digit, so clients that care send strings.
    if isinstance(value, int) and not isinstance(value, bool):
        return decimal.Decimal(value)
    if isinstance(value, float) and math.isfinite(value):
        return decimal.Decimal(repr(value))
    if isinstance(value, str):
        try:
            return _decimal_string(value)
        except ConversionError as error:
            raise _StrictError(error.msg) from None
    raise _StrictError(f"expected a number or a numeric string, got {_json_type(value)}")


def _strict_timedelta(value: Any, _: Any) -> dt.timedelta:
    # In JSON: a number of seconds, or an ISO 8601 duration string (not seconds as a string).
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _seconds(value)
        if isinstance(value, str):
            return _iso_duration(value)
    except ConversionError as error:
        raise _StrictError(error.msg) from None
    raise _StrictError(f"expected seconds or an ISO 8601 duration, got {_json_type(value)}")


def _strict_bytes(value: Any, _: Any) -> bytes:
    # As pydantic and FastAPI: a JSON string, as UTF-8.
    if isinstance(value, str):
        return value.encode("utf-8")
    raise _StrictError(f"expected a string, got {_json_type(value)}")


def _path_hook(value: Any, cls: type[pathlib.PurePath]) -> pathlib.PurePath:
    if isinstance(value, str):
        return cls(value)
    raise _StrictError(f"expected a string (a path), got {_json_type(value)}")


def decimal_to_json(value: decimal.Decimal) -> int | float:
    """A ``Decimal`` as FastAPI's ``jsonable_encoder`` writes it: an integer when it has no
    fractional digits, else a float (JSON has no decimal type; a float is what clients parse)."""
    if not value.is_finite():
        raise ValueError(f"{value} has no JSON form")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(value)
    return float(value)


def bytes_to_json(value: bytes) -> str:
    """``bytes`` as FastAPI writes them: decoded as UTF-8.

    Raises:
        TypeError: they are not UTF-8 (binary data needs an encoding the handler chooses,
            such as base64, or a ``Response`` with a binary media type).
    """
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise TypeError(
            "bytes that are not UTF-8 have no JSON form: encode them (e.g. base64) or return "
            "a Response"
        ) from None


class LocatedErrors(Exception):
    """Errors another validator already located (a pydantic model's), each under the value's
    own location: ``(sub_location, message, type)`` triples."""

    def __init__(self, errors: list[tuple[Loc, str, str]]) -> None:
        super().__init__("; ".join(message for _, message, _ in errors))
        self.errors = errors


def pydantic_model_class(annotation: Any) -> bool:
    """Whether ``annotation`` is a pydantic v2 model class. pydantic is never imported here: a
    program that defines a model has imported it already."""
    pydantic = sys.modules.get("pydantic")
    return (
        pydantic is not None
        and isinstance(annotation, type)
        and issubclass(annotation, pydantic.BaseModel)
    )


def _pydantic_v1_model_class(annotation: Any) -> bool:
    v1 = sys.modules.get("pydantic.v1")
    return v1 is not None and isinstance(annotation, type) and issubclass(annotation, v1.BaseModel)


def _pydantic_structure(value: Any, cls: Any) -> Any:
    # The model's own validation, with its own configuration: a FastAPI user's model behaves
    # as it did there (pydantic's lax mode unless the model asks for strict).
    pydantic: Any = sys.modules["pydantic"]
    try:
        return cls.model_validate(value)
    except pydantic.ValidationError as error:
        raise LocatedErrors(
            [(tuple(e["loc"]), e["msg"], e["type"]) for e in error.errors(include_url=False)]
        ) from None


def _pydantic_unstructure(value: Any) -> Any:
    # FastAPI's defaults for responses: JSON-compatible values, fields by their alias.
    return value.model_dump(mode="json", by_alias=True)


def model_class(annotation: Any) -> bool:
    """Whether ``annotation`` is a model class: attrs, a dataclass or a pydantic v2 model."""
    return isinstance(annotation, type) and (
        attrs.has(annotation)
        or dataclasses.is_dataclass(annotation)
        or pydantic_model_class(annotation)
    )


def _enum_hook(value: Any, cls: type[enum.Enum]) -> enum.Enum:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in cls)
        raise _StrictError(f"{value!r} is not one of the allowed values: {allowed}") from None


def _attrs_hook_factory(
    converter: cattrs.Converter,
) -> Callable[[type[Any]], Callable[[Any, type[Any]], Any]]:
    def factory(cls: type[Any]) -> Callable[[Any, type[Any]], Any]:
        inner = cattrs.gen.make_dict_structure_fn(cls, converter)

        def structure(value: Any, target: type[Any]) -> Any:
            if not isinstance(value, dict):
                raise _StrictError(f"expected an object, got {_json_type(value)}")
            try:
                return inner(value, target)
            except ClassValidationError as error:
                with_notes, _ = error.group_exceptions()
                if with_notes:
                    raise  # some fields did not structure: already located
                # Every field structured, then the class refused the values (an attrs
                # validator, ``__post_init__``): report each failing field where possible.
                raise _field_validator_errors(converter, cls, value) or error from None

        return structure

    return factory


def _field_validator_errors(
    converter: cattrs.Converter, cls: type[Any], raw: dict[str, Any]
) -> ClassValidationError | None:
    """Run each attrs field validator on its own, to report *every* failing field.

    attrs stops at the first validator that raises, and cattrs reports that at the model's
    location. This error path (only taken once the class has refused) builds a bare instance
    holding the structured values, so validators that read other fields (``self.start``) work,
    and calls each field's validator. Fields with converters are skipped (their validator sees
    the converted value); if no validator fails on its own (a check across fields, in
    ``__attrs_post_init__`` or a dataclass's ``__post_init__``), ``None``: the caller reports
    the original error at the model's location.
    """
    if not attrs.has(cls):
        return None
    fields = [f for f in attrs.fields(cls) if f.init]
    shell = object.__new__(cls)
    values: dict[str, Any] = {}
    try:
        for field in fields:
            if field.name in raw:
                values[field.name] = converter.structure(raw[field.name], field.type)
            elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
                factory: Any = field.default
                values[field.name] = (
                    factory.factory(shell) if factory.takes_self else factory.factory()
                )
            elif field.default is not attrs.NOTHING:
                values[field.name] = field.default
            if field.name in values:
                object.__setattr__(shell, field.name, values[field.name])
    except Exception:
        return None
    failures: list[Exception] = []
    for field in fields:
        if field.validator is None or field.converter is not None or field.name not in values:
            continue
        try:
            field.validator(shell, field, values[field.name])
        except Exception as error:
            error.__notes__ = [
                AttributeValidationNote(f"validating {field.name}", field.name, field.type)
            ]
            failures.append(error)
    if not failures:
        return None
    return ClassValidationError(f"While structuring {cls.__name__}", failures, cls)


def _collection_guard(
    converter: cattrs.Converter,
) -> Callable[[Any], Callable[[Any, Any], Any]]:
    """Sets, frozensets, tuples and abstract sequences from JSON arrays only (cattrs would turn
    the string ``"abc"`` into ``{"a", "b", "c"}``), every bad item reported by index."""

    def factory(annotation: Any) -> Callable[[Any, Any], Any]:
        origin = typing.get_origin(annotation) or annotation
        args = typing.get_args(annotation)
        fixed = origin is tuple and bool(args) and args[-1] is not Ellipsis and args != ((),)
        item_types: tuple[Any, ...] = args if fixed else (args[0] if args else Any,)
        build: Callable[[list[Any]], Any]
        if origin in (set, collections.abc.Set, collections.abc.MutableSet):
            build = set
        elif origin is frozenset:
            build = frozenset
        elif origin is tuple:
            build = tuple
        else:
            build = list
        structure_item = converter.structure

        def structure(value: Any, _: Any) -> Any:
            if not isinstance(value, list):
                raise _StrictError(f"expected an array, got {_json_type(value)}")
            if fixed and len(value) != len(item_types):
                raise _StrictError(
                    f"expected an array of {len(item_types)} items, got {len(value)}"
                )
            result: list[Any] = []
            failures: list[Exception] = []
            for index, item in enumerate(value):
                item_type = item_types[index] if fixed else item_types[0]
                try:
                    result.append(item if item_type is Any else structure_item(item, item_type))
                except Exception as error:
                    error.__notes__ = [IterableValidationNote(f"item {index}", index, item_type)]
                    failures.append(error)
            if failures:
                raise IterableValidationError(f"While structuring {annotation!r}", failures, origin)
            try:
                return build(result)
            except TypeError:  # an unhashable item in a set
                raise _StrictError("the items of a set must be distinct plain values") from None

        return structure

    return factory


_COLLECTIONS = (
    set,
    frozenset,
    tuple,
    collections.abc.Set,
    collections.abc.MutableSet,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
)


def _is_guarded_collection(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    return origin in _COLLECTIONS and not _is_namedtuple(annotation)


def _is_namedtuple(annotation: Any) -> bool:
    return (
        isinstance(annotation, type) and issubclass(annotation, tuple) and annotation is not tuple
    )


def _sequence_guard(
    converter: cattrs.Converter,
) -> Callable[[Any], Callable[[Any, Any], Any]]:
    # cattrs would happily iterate a string into a list of characters; JSON arrays only.
    def factory(annotation: Any) -> Callable[[Any, Any], Any]:
        inner = list_structure_factory(annotation, converter)

        def structure(value: Any, target: Any) -> Any:
            if not isinstance(value, list):
                raise _StrictError(f"expected an array, got {_json_type(value)}")
            return inner(value, target)

        return structure

    return factory


def _is_list_type(annotation: Any) -> bool:
    origin: Any = typing.get_origin(annotation)
    return origin is list


def make_body_converter() -> cattrs.Converter:
    """A cattrs converter that refuses to guess: ``"5"`` is not an int, ``1.5`` is not an int.

    cattrs' defaults are lenient (``int("5")``, ``int(1.7) == 1``), which silently changes what
    a client sent; for request bodies a clear 422 is better.
    """
    converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(uuid.UUID, _from_string(_to_uuid))
    converter.register_structure_hook(dt.datetime, _from_string(_to_datetime))
    converter.register_structure_hook(dt.date, _from_string(_to_date))
    converter.register_structure_hook(dt.time, _from_string(_to_time))
    converter.register_structure_hook(dt.timedelta, _strict_timedelta)
    converter.register_structure_hook(decimal.Decimal, _strict_decimal)
    converter.register_structure_hook(bytes, _strict_bytes)
    for path_class in (pathlib.PurePath, pathlib.Path, pathlib.PosixPath, pathlib.WindowsPath):
        converter.register_structure_hook(path_class, _path_hook)  # before cattrs' own
    converter.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), _enum_hook
    )
    converter.register_structure_hook_factory(
        lambda t: attrs.has(t) or dataclasses.is_dataclass(t), _attrs_hook_factory(converter)
    )
    converter.register_structure_hook_func(pydantic_model_class, _pydantic_structure)
    converter.register_structure_hook_factory(
        _is_list_type,
        _sequence_guard(converter),
    )
    converter.register_structure_hook_factory(_is_guarded_collection, _collection_guard(converter))
    converter.register_unstructure_hook(dt.datetime, dt.datetime.isoformat)
    converter.register_unstructure_hook(dt.date, dt.date.isoformat)
    converter.register_unstructure_hook(dt.time, dt.time.isoformat)
    converter.register_unstructure_hook(dt.timedelta, dt.timedelta.total_seconds)
    converter.register_unstructure_hook(decimal.Decimal, decimal_to_json)
    converter.register_unstructure_hook(bytes, bytes_to_json)
    converter.register_unstructure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, pathlib.PurePath), str
    )
    converter.register_unstructure_hook(uuid.UUID, str)
    converter.register_unstructure_hook_func(pydantic_model_class, _pydantic_unstructure)
    return converter


# --- what a JSON body (or a response) can hold, checked at declaration -----------------------

_JSON_LEAVES = frozenset(
    {str, int, float, bool, type(None), None, uuid.UUID, dt.datetime, dt.date, dt.time,
     dt.timedelta, decimal.Decimal, bytes, Any, object}
)  # fmt: skip
_SEQUENCES = frozenset({list, *_COLLECTIONS})
_MAPPINGS = frozenset({dict, collections.abc.Mapping, collections.abc.MutableMapping})


def json_type_problem(annotation: Any, *, reading: bool) -> str | None:
    """What in ``annotation`` triobg cannot read from JSON (``reading``) or write as JSON, or
    ``None`` when every part is supported.

    Walked once, when a route is declared, so that a model triobg cannot handle is a clear
    error at import time instead of a 422 (or a 500) on every request. Model classes are
    walked field by field; pydantic models are trusted to have checked their own fields.
    """
    return _problem(annotation, reading, set(), "")


def _problem(annotation: Any, reading: bool, seen: set[Any], where: str) -> str | None:
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    at = f" (at {where})" if where else ""
    if isinstance(annotation, str | typing.ForwardRef):
        return f"the unresolved name {annotation!r}{at}"
    try:
        if annotation in _JSON_LEAVES:
            return None
    except TypeError:  # unhashable: not a type at all
        return f"{annotation!r}{at}"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return None
    if origin is Union or origin is types.UnionType:
        return next((p for a in args if (p := _problem(a, reading, seen, where))), None)
    supertype = getattr(annotation, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return _problem(supertype, reading, seen, where)
    if (origin or annotation) in _SEQUENCES and not _is_namedtuple(annotation):
        items = [a for a in args if a is not Ellipsis]
        return next((p for a in items if (p := _problem(a, reading, seen, f"{where}[]"))), None)
    if (origin or annotation) in _MAPPINGS:
        if not args:
            return None
        key, value = args
        if reading and _problem(key, reading, seen, where) is None and not _string_like(key):
            return f"object keys of type {key!r}{at}: JSON object keys are strings"
        return _problem(value, reading, seen, f"{where}[...]")
    if not isinstance(annotation, type):
        return f"{annotation!r}{at}"
    if issubclass(annotation, enum.Enum | pathlib.PurePath) or pydantic_model_class(annotation):
        return None
    if _pydantic_v1_model_class(annotation):
        return f"the pydantic v1 model {annotation.__qualname__}{at} (use pydantic v2's BaseModel)"
    if typing.is_typeddict(annotation):
        name = annotation.__qualname__
        try:
            hints = typing.get_type_hints(annotation)
        except Exception as error:
            return f"{name}, whose annotations do not resolve ({error}){at}"
        return next(
            (p for k, t in hints.items() if (p := _problem(t, reading, seen, f"{name}.{k}"))), None
        )
    if attrs.has(annotation) or dataclasses.is_dataclass(annotation):
        if annotation in seen:
            return None
        seen.add(annotation)
        model: Any = annotation
        fields = attrs.fields(model) if attrs.has(model) else dataclasses.fields(model)
        for field in fields:
            if reading and not field.init:
                continue
            found = _problem(field.type, reading, seen, f"{annotation.__qualname__}.{field.name}")
            if found is not None:
                return found
        return None
    return f"{annotation.__module__}.{annotation.__qualname__}{at}"


def _string_like(key: Any) -> bool:
    inner, _ = strip_optional(key)
    if inner in (str, Any) or typing.get_origin(inner) is Literal:
        return True
    return (
        isinstance(inner, type)
        and issubclass(inner, enum.Enum)
        and all(isinstance(member.value, str) for member in inner)
    )


def errors_from_structuring(error: BaseException, loc: Loc) -> list[ErrorDetail]:
    """Flatten cattrs' nested validation errors into located, readable details."""
    if isinstance(error, ClassValidationError):
        found: list[ErrorDetail] = []
        with_notes, without = error.group_exceptions()
        for sub, attr_note in with_notes:
            found.extend(errors_from_structuring(sub, (*loc, _note_name(attr_note))))
        for sub in without:
            found.extend(errors_from_structuring(sub, loc))
        return found
    if isinstance(error, IterableValidationError):
        found = []
        items, rest = error.group_exceptions()
        for sub, item_note in items:
            found.extend(errors_from_structuring(sub, (*loc, item_note.index)))
        for sub in rest:
            found.extend(errors_from_structuring(sub, loc))
        return found
    if isinstance(error, BaseExceptionGroup):
        return [d for sub in error.exceptions for d in errors_from_structuring(sub, loc)]
    if isinstance(error, KeyError):
        return [ErrorDetail(loc, "field required", "missing")]
    if isinstance(error, ForbiddenExtraKeysError):
        names = ", ".join(sorted(error.extra_fields))
        return [ErrorDetail(loc, f"unexpected field(s): {names}", "extra_forbidden")]
    if isinstance(error, _StrictError):
        return [ErrorDetail(loc, str(error), "type_error")]
    if isinstance(error, LocatedErrors):
        return [ErrorDetail((*loc, *sub), msg, kind) for sub, msg, kind in error.errors]
    return [ErrorDetail(loc, str(error) or type(error).__name__, "value_error")]


def _note_name(note: AttributeValidationNote | IterableValidationNote) -> str | int:
    if isinstance(note, AttributeValidationNote):
        return note.name
    return note.index
