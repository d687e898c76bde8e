"""Conversion of strings and JSON into declared types, with readable, located errors."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Literal

import attrs
import pytest

from triobg._convert import (
    ConversionError,
    errors_from_structuring,
    is_scalar,
    make_body_converter,
    scalar_converter,
)


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
            (float, "nan", "finite"),
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
