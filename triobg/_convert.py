# Turning untyped request data into the types a handler declares, and typed results back into JSON.
#
# Sits between the request (strings, bytes, parsed JSON) and dependency solving: path, query,
# header and cookie values are strings converted by small compiled functions, one per declared
# annotation; JSON bodies are structured with a strict cattrs converter. Every failure carries a
# location (``["body", "items", 2, "price"]``) and a message meant for the person who sent the
# request. Pure: no I/O.
from __future__ import annotations

import datetime as dt
import enum
import math
import types
import typing
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal, Union

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


def _to_float(value: str) -> float:
    try:
        result = float(value)
    except ValueError:
        raise ConversionError(f"{value!r} is not a valid number", "float_parsing") from None
    if not math.isfinite(result):
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
            return inner(value, target)

        return structure

    return factory


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
    converter.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), _enum_hook
    )
    converter.register_structure_hook_factory(attrs.has, _attrs_hook_factory(converter))
    converter.register_structure_hook_factory(
        _is_list_type,
        _sequence_guard(converter),
    )
    converter.register_unstructure_hook(dt.datetime, dt.datetime.isoformat)
    converter.register_unstructure_hook(dt.date, dt.date.isoformat)
    converter.register_unstructure_hook(uuid.UUID, str)
    return converter


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
    return [ErrorDetail(loc, str(error) or type(error).__name__, "value_error")]


def _note_name(note: AttributeValidationNote | IterableValidationNote) -> str | int:
    if isinstance(note, AttributeValidationNote):
        return note.name
    return note.index
