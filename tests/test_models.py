"""The models FastAPI users already have: dataclasses and pydantic v2 models, in and out.

Each test is a pattern a ported FastAPI program uses, and each failed before #18 item 2: a
pydantic body was a 422 ``Register a structure hook`` for valid requests, a returned dataclass
or pydantic model was a 500, attrs validators reported only the first failing field, and a type
triobg cannot handle was found out per request instead of at declaration.
"""

import dataclasses
import datetime as dt
import decimal
import json
import pathlib
import subprocess
import sys
from typing import Any

import attrs
import pydantic
import pytest
from _support import call_asgi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triobg import App, JSONResponse
from triobg.testing import TestClient


class Address(pydantic.BaseModel):
    city: str
    postcode: str = pydantic.Field(pattern=r"^\d{5}$")


class UserIn(pydantic.BaseModel):
    name: str
    age: int = pydantic.Field(ge=0)
    address: Address
    password: str


class UserOut(pydantic.BaseModel):
    name: str
    address: Address


class Aliased(pydantic.BaseModel):
    full_name: str = pydantic.Field(alias="fullName")


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


@dataclasses.dataclass
class Invoice:
    total: decimal.Decimal
    due_in: dt.timedelta
    note: bytes
    archive: pathlib.Path
    tags: frozenset[str] = frozenset()
    points: list[Point] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Account:
    name: str
    password: str


@dataclasses.dataclass
class Public:
    name: str


@attrs.frozen
class Window:
    start: int = attrs.field(validator=attrs.validators.ge(0))
    end: int = attrs.field(validator=attrs.validators.ge(0))
    label: str = attrs.field(default="w", validator=attrs.validators.min_len(1))

    @end.validator
    def _not_before_start(self, attribute: Any, value: int) -> None:
        if value < self.start:
            raise ValueError("end must not be before start")


def _app() -> App:
    app = App()

    @app.post("/users", response_model=UserOut)
    async def create_user(user: UserIn) -> UserIn:
        return user

    @app.post("/aliased")
    async def aliased(body: Aliased) -> Aliased:
        return body

    @app.post("/points")
    async def move(point: Point) -> Point:
        return Point(point.x + 1, point.y + 1)

    @app.get("/point")
    async def point() -> Any:
        return Point(1, 2)  # no annotation to go by: the encoder knows dataclasses

    @app.get("/user")
    async def user() -> Any:
        return UserOut(name="ada", address=Address(city="London", postcode="12345"))

    @app.post("/invoices")
    async def invoice(invoice: Invoice) -> Invoice:
        return invoice

    @app.get("/accounts/me", response_model=Public)
    async def me() -> Account:
        return Account("ada", "hunter2")

    @app.post("/windows")
    async def window(window: Window) -> Window:
        return window

    return app


async def _call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with TestClient(_app()) as client:
        if method == "GET":
            response = await client.get(path)
        else:
            response = await client.post(path, json=body)
    return response.status_code, response.json()


USER = {
    "name": "ada",
    "age": 36,
    "address": {"city": "London", "postcode": "12345"},
    "password": "hunter2",
}


class TestPydantic:
    async def test_pydantic_body_and_response_model(self) -> None:
        """A pydantic body is validated by pydantic; ``response_model`` drops the password."""
        status, body = await _call("POST", "/users", USER)
        assert (status, body) == (200, {"name": "ada", "address": USER["address"]})

    async def test_every_pydantic_error_is_reported_located(self) -> None:
        """pydantic's errors keep their locations, under ``body``, all of them."""
        bad = {"name": "ada", "age": -1, "address": {"postcode": "x"}}
        status, body = await _call("POST", "/users", bad)
        assert status == 422
        assert [(e["loc"], e["type"]) for e in body["detail"]] == [
            (["body", "age"], "greater_than_equal"),
            (["body", "address", "city"], "missing"),
            (["body", "address", "postcode"], "string_pattern_mismatch"),
            (["body", "password"], "missing"),
        ]

    async def test_aliases_in_and_out(self) -> None:
        """Fields are read and written by their alias, as FastAPI does by default."""
        assert await _call("POST", "/aliased", {"fullName": "Ada L"}) == (
            200, {"fullName": "Ada L"}
        )  # fmt: skip

    async def test_returned_model_without_annotation(self) -> None:
        """A pydantic model returned from an ``-> Any`` handler is JSON, not a 500."""
        assert await _call("GET", "/user") == (
            200, {"name": "ada", "address": {"city": "London", "postcode": "12345"}}
        )  # fmt: skip

    def test_triobg_never_imports_pydantic(self) -> None:
        """pydantic is optional: importing triobg and declaring routes does not import it."""
        code = (
            "import sys, triobg\n"
            "app = triobg.App()\n"
            "@app.post('/')\n"
            "async def h(x: dict[str, int]) -> dict[str, int]: return x\n"
            "assert 'pydantic' not in sys.modules, 'pydantic was imported'\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

    def test_openapi_uses_pydantics_schema(self) -> None:
        """pydantic describes its models; nested ones land in ``components/schemas``."""
        document = _app().openapi()
        schemas = document["components"]["schemas"]
        assert schemas["Address"]["properties"]["postcode"]["pattern"] == r"^\d{5}$"
        assert schemas["UserIn"]["properties"]["address"] == {
            "$ref": "#/components/schemas/Address"
        }
        body = document["paths"]["/users"]["post"]["requestBody"]["content"]
        assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/UserIn"}

    def test_same_named_pydantic_models_get_distinct_schemas(self) -> None:
        """Two ``Item`` models (nested in others too) keep apart, each ``$ref`` to its own."""

        def shop() -> tuple[type[pydantic.BaseModel], type[pydantic.BaseModel]]:
            class Item(pydantic.BaseModel):
                sku: str

            class Cart(pydantic.BaseModel):
                items: list[Item]

            return Item, Cart

        def library() -> type[pydantic.BaseModel]:
            class Item(pydantic.BaseModel):
                isbn: str

            return Item

        (first, cart), second = shop(), library()

        class Node(pydantic.BaseModel):
            value: int
            children: list["Node"] = []

        app = App()

        @app.post("/a")
        async def a(item: first, cart: cart) -> None:  # type: ignore[valid-type]
            pass

        @app.post("/b")
        async def b(item: second, node: Node) -> None:  # type: ignore[valid-type]
            pass

        document = app.openapi()
        schemas = document["components"]["schemas"]

        def target(path: str, name: str) -> dict[str, Any]:
            body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
            ref = body["schema"]["properties"][name]["$ref"]
            return schemas[ref.rpartition("/")[2]]  # type: ignore[no-any-return]

        assert set(target("/a", "item")["properties"]) == {"sku"}
        assert set(target("/b", "item")["properties"]) == {"isbn"}
        nested = target("/a", "cart")["properties"]["items"]["items"]["$ref"]
        assert set(schemas[nested.rpartition("/")[2]]["properties"]) == {"sku"}
        recursive = target("/b", "node")["properties"]["children"]["items"]["$ref"]
        assert schemas[recursive.rpartition("/")[2]] == target("/b", "node")


class TestDataclasses:
    async def test_dataclass_body_and_return(self) -> None:
        """A dataclass is read from JSON and written back, defaults filled in."""
        assert await _call("POST", "/points", {"x": 1}) == (200, {"x": 2, "y": 1})

    async def test_returned_dataclass_without_annotation(self) -> None:
        """A dataclass returned from an ``-> Any`` handler is JSON, not a 500."""
        assert await _call("GET", "/point") == (200, {"x": 1, "y": 2})

    async def test_response_model_filters_a_dataclass(self) -> None:
        """``response_model=Public`` on a handler returning a dataclass with a password."""
        assert await _call("GET", "/accounts/me") == (200, {"name": "ada"})

    async def test_dataclass_errors_are_all_located(self) -> None:
        """Every bad field of a dataclass body, nested ones by index."""
        bad = {
            "total": "1.5",
            "due_in": 1,
            "note": "n",
            "archive": "/a",
            "points": [{}, {"x": "1"}],
        }
        status, body = await _call("POST", "/invoices", bad)
        assert status == 422
        assert [e["loc"] for e in body["detail"]] == [
            ["body", "points", 0, "x"],
            ["body", "points", 1, "x"],
        ]

    def test_openapi_describes_dataclasses(self) -> None:
        """A dataclass gets a named schema with its required fields and defaults."""
        schemas = _app().openapi()["components"]["schemas"]
        assert schemas["Point"] == {
            "title": "Point",
            "type": "object",
            "properties": {"x": {"type": "integer"}, "y": {"type": "integer", "default": 0}},
            "required": ["x"],
        }


class TestTypesJSONLacks:
    async def test_decimal_timedelta_bytes_set_and_path_round_trip(self) -> None:
        """In as FastAPI clients send them, out as FastAPI's ``jsonable_encoder`` writes them."""
        sent = {
            "total": "12.50",
            "due_in": "P1DT2H",
            "note": "héllo",
            "archive": "/srv/a.tar",
            "tags": ["b", "a", "b"],
        }
        status, body = await _call("POST", "/invoices", sent)
        assert status == 200
        assert body["total"] == 12.5
        assert body["due_in"] == 93600.0
        assert body["note"] == "héllo"
        assert body["archive"] == "/srv/a.tar"
        assert sorted(body["tags"]) == ["a", "b"]

    async def test_a_string_is_not_a_set_of_characters(self) -> None:
        """``"ab"`` for a ``frozenset[str]`` is a 422, not ``{"a", "b"}``."""
        sent = {"total": 1, "due_in": 1, "note": "", "archive": "/", "tags": "ab"}
        status, body = await _call("POST", "/invoices", sent)
        assert (status, body["detail"][0]["loc"]) == (422, ["body", "tags"])


class TestAttrsValidators:
    async def test_every_failing_validator_is_reported_at_its_field(self) -> None:
        """attrs stops at the first validator; triobg reports each failing field."""
        status, body = await _call("POST", "/windows", {"start": -1, "end": -5, "label": ""})
        assert status == 422
        assert [e["loc"] for e in body["detail"]] == [
            ["body", "start"],
            ["body", "end"],
            ["body", "label"],
        ]

    async def test_a_validator_reading_another_field_is_located(self) -> None:
        """A method validator that compares with ``self.start`` still runs, at ``end``."""
        status, body = await _call("POST", "/windows", {"start": 5, "end": 1})
        assert (status, body["detail"]) == (
            422,
            [
                {
                    "loc": ["body", "end"],
                    "msg": "end must not be before start",
                    "type": "value_error",
                }
            ],
        )


class Opaque:
    """A class triobg knows nothing about."""

    def __init__(self, value: int) -> None:
        self.value = value


@dataclasses.dataclass
class Holder:
    inner: Opaque


class TestRefusedAtDeclaration:
    def test_an_unknown_body_type_fails_at_declaration(self) -> None:
        """A body triobg cannot read is a TypeError naming the field, not a 422 per request."""
        app = App()
        with pytest.raises(TypeError, match=r"cannot read .*Opaque \(at Holder\.inner\)"):

            @app.post("/")
            async def handler(holder: Holder) -> None:
                pass

    def test_an_unknown_return_type_fails_at_declaration(self) -> None:
        """A return annotation triobg cannot write is refused, as FastAPI does."""
        app = App()
        with pytest.raises(TypeError, match=r"cannot write .*Opaque"):

            @app.get("/")
            async def handler() -> Opaque:
                return Opaque(1)

    def test_response_model_none_opts_out(self) -> None:
        """``response_model=None`` keeps an unusual return annotation, unchecked."""
        app = App()

        @app.get("/", response_model=None)
        async def handler() -> Opaque:
            return Opaque(1)

    async def test_a_union_with_a_response_class_checks_only_the_rest(self) -> None:
        """``-> Public | JSONResponse``: the dataclass is filtered, a Response passes as is."""
        app = App()

        @app.get("/{who}")
        async def handler(who: str) -> Public | JSONResponse:
            if who == "nobody":
                return JSONResponse({"error": "nobody"}, status_code=404)
            return Account(who, "hunter2")  # type: ignore[return-value]  # filtered to Public

        async with TestClient(app) as client:
            found = await client.get("/ada")
            missing = await client.get("/nobody")
        assert found.json() == {"name": "ada"}
        assert (missing.status_code, missing.json()) == (404, {"error": "nobody"})

    def test_pydantic_v1_models_are_refused_by_name(self) -> None:
        """A ``pydantic.v1`` model is named as such, not left to fail per request."""
        import pydantic.v1

        class Old(pydantic.v1.BaseModel):
            name: str

        app = App()
        with pytest.raises(TypeError, match="pydantic v1 model"):

            @app.post("/")
            async def handler(old: Old) -> None:
                pass

    def test_json_object_keys_must_be_strings(self) -> None:
        """``dict[int, str]`` as a body cannot be read (JSON keys are strings)."""
        app = App()
        with pytest.raises(TypeError, match="JSON object keys are strings"):

            @app.post("/")
            async def handler(body: dict[int, str]) -> None:
                pass


_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
_VALID: dict[str, dict[str, Any]] = {
    "/users": USER,
    "/invoices": {"total": 1, "due_in": "PT1M", "note": "n", "archive": "/a", "points": [{"x": 1}]},
    "/windows": {"start": 1, "end": 2},
    "/points": {"x": 1, "y": 2},
}
_FUZZ_APP = _app()


@st.composite
def _bodies(draw: st.DrawFn) -> tuple[str, Any]:
    """A model endpoint and a body whose every field is either valid or any JSON value."""
    path = draw(st.sampled_from(sorted(_VALID)))
    body = {name: draw(st.just(value) | _ANY_JSON) for name, value in _VALID[path].items()}
    body |= draw(st.dictionaries(st.text(max_size=6), _ANY_JSON, max_size=2))  # unknown keys
    return path, draw(st.just(body) | _ANY_JSON)


class TestAnyBody:
    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(_bodies())
    async def test_a_model_body_is_a_value_or_located_422s_never_a_500(
        self, case: tuple[str, Any]
    ) -> None:
        """Whatever JSON arrives for a pydantic, dataclass or attrs body: 200, or 422s in body."""
        path, body = case
        answer = await call_asgi(
            _FUZZ_APP,
            "POST",
            path,
            headers=[(b"content-type", b"application/json")],
            body=json.dumps(body).encode(),
        )
        assert answer.status in (200, 422), answer.body
        if answer.status == 422:
            details = answer.json()["detail"]
            assert details and all(d["loc"][0] == "body" for d in details), details
