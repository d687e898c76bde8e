"""Conversion of strings and JSON into declared types, with readable, located errors."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import pathlib
import uuid
from typing import Any, Literal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triobg._convert import (
    ConversionError,
    errors_from_structuring,
    is_scalar,
    json_type_problem,
    make_body_converter,
    scalar_converter,
)
from triobg._encode import dump_json


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class TestScalars:
    @pytest.mark.parametrize(
        ("annotation", "text", "expected"),
        [
            (int, "42", 42),
            (int, "-7", -7),
            (float, "2.5", 2.5),
            (bool, "yes", True),
            (bool, "0", False),
            (str, "x", "x"),
            (
                uuid.UUID,
                "12345678-1234-5678-1234-567812345678",
                uuid.UUID(int=0x12345678123456781234567812345678),
            ),
            (
                dt.datetime,
                "2024-05-01T12:30:00+00:00",
                dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC),
            ),
            (dt.date, "2024-05-01", dt.date(2024, 5, 1)),
            (Color, "blue", Color.BLUE),
            (Literal["a", "b"], "b", "b"),
            (int | None, "3", 3),
        ],
    )
    def test_valid_values_convert(self, annotation: object, text: str, expected: object) -> None:
        """Each supported annotation reads its canonical string form."""
        assert scalar_converter(annotation)(text) == expected

    @pytest.mark.parametrize(
        ("annotation", "text", "message"),
        [
            (int, "1.5", "not a valid integer"),
            (int, "١٢", "not a valid integer"),  # non-ASCII digits are not accepted
            (int, "9" * 2000, "more than"),
            (float, "1e999", "finite"),
            (float, "abc", "not a valid number"),
            (bool, "maybe", "not a valid boolean"),
            (uuid.UUID, "nope", "not a valid UUID"),
            (dt.datetime, "yesterday", "ISO 8601"),
            (Color, "green", "'red', 'blue'"),
        ],
    )
    def test_invalid_values_say_what_was_wrong(
        self, annotation: object, text: str, message: str
    ) -> None:
        """The message quotes the bad value and, where useful, what would be accepted."""
        with pytest.raises(ConversionError, match=message):
            scalar_converter(annotation)(text)

    @pytest.mark.parametrize(
        "text", ["1_0", "1_000.5", "nan", "NaN", "inf", "-Infinity", "١٢", "0x1", "1.5.2", "", "."]
    )
    @pytest.mark.parametrize("annotation", [float, decimal.Decimal, dt.timedelta])
    def test_numbers_are_as_strict_as_integers(self, annotation: object, text: str) -> None:
        """Underscores, nan/inf and non-ASCII digits, which ``float()`` takes, are 422s."""
        with pytest.raises(ConversionError):
            scalar_converter(annotation)(text)
        with pytest.raises(ConversionError, match="not a valid integer"):
            scalar_converter(int)(text)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [("1", 1.0), ("-2.5", -2.5), (" +3 ", 3.0), (".5", 0.5), ("5.", 5.0), ("1E-3", 0.001)],
    )
    def test_numbers_as_json_writes_them_are_floats(self, text: str, expected: float) -> None:
        """A sign, digits, a fraction and an exponent are all a float may be written with."""
        assert scalar_converter(float)(text) == expected

    def test_unreadable_annotations_fail_at_declaration(self) -> None:
        """A dict cannot come from a query string; that is known before any request."""
        with pytest.raises(TypeError, match="cannot read"):
            scalar_converter(dict)
        assert not is_scalar(dict[str, int])
        assert is_scalar(list[int])


@attrs.define
class Item:
    name: str
    price: float
    tags: list[str] = attrs.Factory(list)


@attrs.define
class Order:
    items: list[Item]
    when: dt.date | None = None
    color: Color = Color.RED


class TestBodies:
    converter = make_body_converter()

    def errors(self, payload: object) -> list[tuple[tuple[str | int, ...], str]]:
        with pytest.raises(Exception) as info:  # noqa: PT011 - cattrs raises groups
            self.converter.structure(payload, Order)
        return [(e.loc, e.msg) for e in errors_from_structuring(info.value, ("body",))]

    def test_nested_models_round_trip(self) -> None:
        """Nested attrs classes, lists, enums and dates structure and unstructure cleanly."""
        payload = {"items": [{"name": "a", "price": 1}], "when": "2024-01-02", "color": "blue"}
        order = self.converter.structure(payload, Order)
        assert order == Order([Item("a", 1.0)], dt.date(2024, 1, 2), Color.BLUE)
        assert self.converter.unstructure(order)["when"] == "2024-01-02"

    def test_every_error_is_reported_with_its_location(self) -> None:
        """All problems at once, each with a path a person can follow."""
        errors = self.errors(
            {"items": [{"name": "a", "price": 1}, {"name": 2, "price": "x"}, {"price": 3}]}
        )
        assert (("body", "items", 1, "name"), "expected a string, got a number") in errors
        assert (("body", "items", 1, "price"), "expected a finite number, got a string") in errors
        assert (("body", "items", 2, "name"), "field required") in errors

    @pytest.mark.parametrize(
        ("payload", "loc", "message"),
        [
            ([], ("body",), "expected an object, got an array"),
            ({"items": "abc"}, ("body", "items"), "expected an array, got a string"),
            ({"items": [{"name": "a", "price": True}]}, ("body", "items", 0, "price"), "boolean"),
            ({"items": [], "color": "green"}, ("body", "color"), "allowed values"),
            ({"items": [], "when": 5}, ("body", "when"), "expected a string"),
        ],
    )
    def test_no_silent_coercion(
        self, payload: object, loc: tuple[str | int, ...], message: str
    ) -> None:
        """Strings are not numbers, booleans are not numbers, strings are not lists."""
        found = self.errors(payload)
        assert any(where == loc and message in m for where, m in found), found

    def test_integral_floats_are_accepted_as_ints_but_fractions_are_not(self) -> None:
        """``2.0`` is the integer 2 (JSON has one number type); ``2.5`` is an error."""

        @attrs.define
        class Count:
            n: int

        assert self.converter.structure({"n": 2.0}, Count) == Count(2)
        with pytest.raises(Exception):  # noqa: B017, PT011 - cattrs raises a group
            self.converter.structure({"n": 2.5}, Count)


_converter = make_body_converter()
_JSON_SCALARS = st.none() | st.booleans() | st.floats() | st.integers() | st.text()
# No per-example deadline (the machine is shared) and no example database between runs.
PROPERTY = settings(max_examples=100, deadline=None, database=None)
# Within a century a duration in microseconds fits a float's 53 bits exactly.
_DURATIONS = st.timedeltas(min_value=-dt.timedelta(days=36500), max_value=dt.timedelta(days=36500))


def _through_json(value: Any, annotation: Any) -> Any:
    """Write ``value`` as a response would, parse it as a client would, read it back."""
    return _converter.structure(json.loads(dump_json(value)), annotation)


class TestTypesJSONLacks:
    @pytest.mark.parametrize(
        ("annotation", "text", "expected"),
        [
            (decimal.Decimal, "12.50", decimal.Decimal("12.50")),
            (dt.timedelta, "90", dt.timedelta(seconds=90)),
            (dt.timedelta, "PT1H30M", dt.timedelta(hours=1, minutes=30)),
            (dt.timedelta, "-P1W", dt.timedelta(weeks=-1)),
            (dt.timedelta, "P1Y2M", dt.timedelta(days=365 + 60)),  # as pydantic counts them
            (dt.time, "12:30", dt.time(12, 30)),
        ],
    )
    def test_query_strings(self, annotation: object, text: str, expected: object) -> None:
        """Decimals, durations and times read from a query or path string."""
        assert scalar_converter(annotation)(text) == expected

    @pytest.mark.parametrize(
        ("annotation", "text"),
        [
            (decimal.Decimal, "NaN"),
            (decimal.Decimal, "1e"),
            (dt.timedelta, "P"),
            (dt.timedelta, "PT"),
            (dt.timedelta, "pt1h"),
            (dt.timedelta, "1e400"),
            (dt.timedelta, "nan"),
            (dt.timedelta, "P99999999999D"),
            (decimal.Decimal, "1e999999999"),  # never a billion-digit integer on the way out
        ],
    )
    def test_bad_strings_are_conversion_errors(self, annotation: object, text: str) -> None:
        """Not-a-number, malformed durations and overflows are 422s, never 500s (or a hang)."""
        with pytest.raises(ConversionError):
            scalar_converter(annotation)(text)

    @PROPERTY
    @given(_DURATIONS)
    def test_timedeltas_round_trip_as_seconds(self, value: dt.timedelta) -> None:
        """A duration written as float seconds reads back exactly."""
        assert _through_json(value, dt.timedelta) == value

    @PROPERTY
    @given(
        st.integers(min_value=-(10**14), max_value=10**14),
        st.integers(min_value=0, max_value=2),
    )
    def test_decimals_round_trip_through_json_numbers(self, digits: int, places: int) -> None:
        """A decimal of up to 15 significant digits survives being written as a JSON number."""
        value = decimal.Decimal(digits).scaleb(-places)
        assert _through_json(value, decimal.Decimal) == value

    @PROPERTY
    @given(st.frozensets(st.text()), st.binary().filter(lambda b: _is_utf8(b)))
    def test_sets_bytes_and_paths_round_trip(self, tags: frozenset[str], data: bytes) -> None:
        """Sets go out as arrays, UTF-8 bytes as text, paths as text; all read back equal."""
        assert _through_json(tags, frozenset[str]) == tags
        assert _through_json(data, bytes) == data
        path = pathlib.PurePosixPath("/srv", *sorted(tags - {"", ".", ".."}))
        assert _through_json(path, pathlib.PurePosixPath) == path

    def test_bytes_that_are_not_utf8_are_a_clear_server_error(self) -> None:
        """Binary data has no JSON form: the message says what to do instead."""
        with pytest.raises(TypeError, match="not UTF-8"):
            dump_json({"data": b"\xff"})

    @PROPERTY
    @given(
        st.one_of(
            _JSON_SCALARS,
            st.lists(_JSON_SCALARS, max_size=3),
            st.lists(st.lists(_JSON_SCALARS, max_size=2), max_size=2),
            st.dictionaries(st.text(max_size=3), _JSON_SCALARS, max_size=2),
        )
    )
    def test_any_json_value_gives_located_errors_or_a_value(self, value: Any) -> None:
        """Whatever JSON arrives for a set or a duration, the outcome is a value or 422s."""
        unexplained = []
        for annotation in (frozenset[int], tuple[int, str], dt.timedelta, decimal.Decimal):
            try:
                _converter.structure(value, annotation)
            except Exception as error:
                if not errors_from_structuring(error, ("body",)):
                    unexplained.append(error)
        assert unexplained == []


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class TestDeclarationCheck:
    @pytest.mark.parametrize(
        "annotation",
        [dict[str, list[int]], decimal.Decimal | None, tuple[int, ...], set[Color], Literal["a"]],
    )
    def test_supported_types_have_no_problem(self, annotation: object) -> None:
        """Containers, optionals and the extra scalars are readable."""
        assert json_type_problem(annotation, reading=True) is None

    def test_writing_allows_integer_keys_reading_does_not(self) -> None:
        """``dict[int, str]`` can be written (json makes the keys strings), not read."""
        assert json_type_problem(dict[int, str], reading=False) is None
        assert "keys" in (json_type_problem(dict[int, str], reading=True) or "")
