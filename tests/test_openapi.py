"""The OpenAPI 3.1 document: what each route declares, described as triobg enforces it."""

# No ``from __future__ import annotations``: handlers below refer to local dependencies.

import datetime as dt
import decimal
import enum
import importlib
import pkgutil
import time
import uuid
from typing import Annotated, Any, Literal

import _openapi_models_a
import _openapi_models_b
import attrs
import pytest
import trio
from openapi_spec_validator import validate

import examples
from triobg import App, Body, Cookie, Depends, Header, Path, Query, Router
from triobg.testing import TestClient


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Tag:
    name: str


@attrs.frozen
class Item:
    """Something for sale."""

    name: str
    price: float
    id: uuid.UUID | None = None
    created: dt.datetime | None = None
    day: dt.date | None = None
    tags: list[Tag] = attrs.field(factory=list)
    color: Color = Color.RED
    kind: Literal["new", "used"] = "new"
    parent: "Item | None" = None


def _op(document: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"][path][method]
    return operation


def _params(operation: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["in"], p["name"]): p for p in operation.get("parameters", [])}


def _component(document: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    name = ref["$ref"].removeprefix("#/components/schemas/")
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


class TestDocument:
    """The document's frame: version, info, servers, and a valid 3.1 shape."""

    def test_info_and_version(self) -> None:
        """``title``, ``version``, ``description`` and ``servers`` come from ``App(...)``."""
        app = App(
            title="Shop", version="2.1", description="Buy *things*", servers=[{"url": "/api"}]
        )
        document = app.openapi()
        assert document["openapi"] == "3.1.0"
        assert document["info"] == {
            "title": "Shop",
            "version": "2.1",
            "description": "Buy *things*",
        }
        assert document["servers"] == [{"url": "/api"}]
        validate(document)

    def test_the_docs_routes_are_not_in_the_document(self) -> None:
        """``/openapi.json`` and ``/docs`` serve the description; they are not part of the API."""
        assert App().openapi()["paths"] == {}

    def test_generated_once_and_again_when_routes_change(self) -> None:
        """The same object until a route is added; then a new one that has the new route."""
        app = App()

        @app.get("/a")
        async def a() -> int:
            return 1

        first = app.openapi()
        assert app.openapi() is first

        @app.get("/b")
        async def b() -> int:
            return 2

        second = app.openapi()
        assert second is not first
        assert set(second["paths"]) == {"/a", "/b"}

    def test_regenerated_when_dependency_overrides_change(self) -> None:
        """An override can read other parameters, so the document follows it."""
        app = App()

        def real(q: int = 0) -> int:
            return q

        def fake(token: Annotated[str, Header()] = "") -> int:
            return 1

        @app.get("/x")
        async def x(value: Annotated[int, Depends(real)]) -> int:
            return value

        assert ("query", "q") in _params(_op(app.openapi(), "/x"))
        app.dependency_overrides[real] = fake
        assert set(_params(_op(app.openapi(), "/x"))) == {("header", "token")}

    async def test_served_at_openapi_url_as_json(self) -> None:
        """``GET /openapi.json`` answers the same document, as ``application/json``."""
        app = App(title="Served")

        @app.get("/ping")
        async def ping() -> str:
            return "pong"

        async with TestClient(app) as client:
            response = await client.get("/openapi.json")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == app.openapi()

    async def test_a_subclass_can_adjust_what_is_served(self) -> None:
        """``openapi_url`` serves what ``openapi()`` returns, overridden or not."""

        class LogoApp(App):
            def openapi(self) -> dict[str, Any]:
                document = super().openapi()
                document["info"]["x-logo"] = {"url": "/logo.png"}
                return document

        app = LogoApp()
        async with TestClient(app) as client:
            served = (await client.get("/openapi.json")).json()
            assert served["info"]["x-logo"] == {"url": "/logo.png"}

            @app.get("/new")
            async def new() -> int:
                return 1

            served = (await client.get("/openapi.json")).json()
        assert "/new" in served["paths"]
        assert served["info"]["x-logo"] == {"url": "/logo.png"}

    async def test_openapi_url_moves_and_turns_off(self) -> None:
        """``openapi_url="/spec"`` serves it there; ``None`` serves it nowhere."""
        async with TestClient(App(openapi_url="/spec", docs_url=None)) as client:
            assert (await client.get("/spec")).status_code == 200
            assert (await client.get("/openapi.json")).status_code == 404
        async with TestClient(App(openapi_url=None, docs_url=None)) as client:
            assert (await client.get("/openapi.json")).status_code == 404

    def test_docs_without_a_document_is_refused(self) -> None:
        """``/docs`` would have nothing to show without ``openapi_url``."""
        with pytest.raises(ValueError, match="docs_url needs an openapi_url"):
            App(openapi_url=None)


class TestParameters:
    """Path, query, header and cookie values with their types, defaults and bounds."""

    def test_every_source_with_types_defaults_and_bounds(self) -> None:
        """Each value the plan reads is a parameter, described as the solver checks it."""
        app = App()

        @app.get("/items/{item_id}")
        async def read(
            item_id: Annotated[int, Path(ge=1, description="The item")],
            q: Annotated[str | None, Query(min_length=2, max_length=5)] = None,
            limit: Annotated[int, Query(gt=0, le=100)] = 10,
            ratio: Annotated[float, Query(lt=1.5)] = 0.5,
            ids: Annotated[list[int], Query(max_length=3)] = [],  # noqa: B006
            color: Color = Color.BLUE,
            when: dt.datetime | None = None,
            flag: bool = False,
            x_token: Annotated[str, Header()] = "none",
            session: Annotated[str | None, Cookie()] = None,
        ) -> int:
            return item_id

        document = app.openapi()
        validate(document)
        params = _params(_op(document, "/items/{item_id}"))
        assert params["path", "item_id"] == {
            "name": "item_id",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
            "description": "The item",
        }
        q = params["query", "q"]
        assert q["required"] is False
        assert q["schema"] == {
            "anyOf": [{"type": "string", "minLength": 2, "maxLength": 5}, {"type": "null"}]
        }
        assert params["query", "limit"]["schema"] == {
            "type": "integer",
            "exclusiveMinimum": 0,
            "maximum": 100,
            "default": 10,
        }
        assert params["query", "ratio"]["schema"] == {
            "type": "number",
            "exclusiveMaximum": 1.5,
            "default": 0.5,
        }
        assert params["query", "ids"]["schema"] == {
            "type": "array",
            "items": {"type": "integer"},
            "maxItems": 3,
            "default": [],
        }
        color = params["query", "color"]["schema"]
        assert color["default"] == "blue"
        assert _component(document, color)["enum"] == ["red", "blue"]
        assert params["query", "when"]["schema"]["anyOf"][0] == {
            "type": "string",
            "format": "date-time",
        }
        assert params["query", "flag"]["schema"] == {"type": "boolean", "default": False}
        # Headers by their wire name (underscores to dashes, lower case).
        assert params["header", "x-token"]["schema"] == {"type": "string", "default": "none"}
        assert params["cookie", "session"]["required"] is False

    def test_a_value_read_by_two_dependencies_is_one_parameter(self) -> None:
        """OpenAPI wants (name, in) unique; the solver reads the value once anyway."""
        app = App()

        def first(q: str = "") -> str:
            return q

        def second(q: str = "") -> str:
            return q

        @app.get("/x")
        async def x(
            a: Annotated[str, Depends(first)], b: Annotated[str, Depends(second)], q: str = ""
        ) -> str:
            return a + b + q

        operation = _op(app.openapi(), "/x")
        assert [p["name"] for p in operation["parameters"]] == ["q"]

    def test_a_bounded_optional_decimal_is_a_bounded_number_or_null(self) -> None:
        """``Decimal | None`` with a numeric bound is documented as that bound on a number."""
        app = App()

        @app.get("/d")
        async def d(q: Annotated[decimal.Decimal | None, Query(gt=1)] = None) -> str:
            return str(q)

        q = _params(_op(app.openapi(), "/d"))["query", "q"]
        assert q["schema"] == {
            "anyOf": [{"type": "number", "exclusiveMinimum": 1}, {"type": "null"}]
        }

    def test_path_converters_and_unread_path_parameters(self) -> None:
        """``{rest:path}`` is ``{rest}`` in OpenAPI, and a placeholder no one reads is still
        declared (every template variable must be)."""
        app = App()

        @app.get("/files/{rest:path}")
        async def files(rest: str) -> str:
            return rest

        @app.get("/orgs/{org}/ping")
        async def ping() -> str:
            return "pong"

        document = app.openapi()
        validate(document)
        assert "/files/{rest}" in document["paths"]
        assert _params(_op(document, "/orgs/{org}/ping"))["path", "org"]["required"] is True


class TestBodies:
    """JSON request bodies from attrs models, as components with ``$ref``s."""

    def test_model_body_and_its_components(self) -> None:
        """Nested, optional, lists, enums, literals, UUIDs, dates, datetimes and recursion."""
        app = App()

        @app.post("/items", status_code=201)
        async def create(item: Item) -> Item:
            return item

        document = app.openapi()
        validate(document)
        operation = _op(document, "/items", "post")
        body = operation["requestBody"]
        assert body["required"] is True
        ref = body["content"]["application/json"]["schema"]
        schema = _component(document, ref)
        assert schema["title"] == "Item"
        assert schema["description"] == "Something for sale."
        assert schema["required"] == ["name", "price"]
        props = schema["properties"]
        assert props["name"] == {"type": "string"}
        assert props["price"] == {"type": "number"}
        assert props["id"]["anyOf"] == [{"type": "string", "format": "uuid"}, {"type": "null"}]
        assert props["created"]["anyOf"][0] == {"type": "string", "format": "date-time"}
        assert props["day"]["anyOf"][0] == {"type": "string", "format": "date"}
        assert props["tags"]["type"] == "array"
        assert _component(document, props["tags"]["items"])["required"] == ["name"]
        assert props["tags"]["default"] == []
        assert _component(document, props["color"]) == {
            "title": "Color",
            "enum": ["red", "blue"],
            "type": "string",
        }
        assert props["color"]["default"] == "red"
        assert props["kind"] == {"enum": ["new", "used"], "type": "string", "default": "new"}
        assert props["parent"]["anyOf"][0] == ref  # recursive: the model refers to itself
        success = operation["responses"]["201"]["content"]["application/json"]["schema"]
        assert success == ref

    def test_embedded_and_several_body_parameters(self) -> None:
        """Several body values (or ``embed=True``) are one JSON object with a key each."""
        app = App()

        @app.put("/items/{item_id}")
        async def update(
            item_id: int,
            item: Item,
            importance: Annotated[int, Body(ge=1)] = 1,
        ) -> int:
            return item_id

        document = app.openapi()
        validate(document)
        schema = _op(document, "/items/{item_id}", "put")["requestBody"]["content"][
            "application/json"
        ]["schema"]
        assert schema["type"] == "object"
        assert schema["required"] == ["item"]
        assert schema["properties"]["importance"] == {"type": "integer", "minimum": 1, "default": 1}

    def test_same_class_name_in_two_modules_gets_two_names(self) -> None:
        """Two ``User`` classes from different modules do not overwrite each other."""
        app = App()

        @app.post("/a")
        async def a(user: _openapi_models_a.User) -> int:
            return 1

        @app.post("/b")
        async def b(user: _openapi_models_b.User) -> int:
            return 2

        document = app.openapi()
        validate(document)
        names = set(document["components"]["schemas"])
        assert {"_openapi_models_a.User", "_openapi_models_b.User"} <= names
        a_schema = _component(
            document,
            _op(document, "/a", "post")["requestBody"]["content"]["application/json"]["schema"],
        )
        assert set(a_schema["properties"]) == {"name"}


class TestResponses:
    """Success status from ``status_code=``, the real 422 shape, and declared extras."""

    def test_422_schema_is_what_triobg_sends(self) -> None:
        """The documented 422 body matches a real one, checked with a JSON Schema validator."""
        from jsonschema import Draft202012Validator

        app = App()

        @app.get("/n")
        async def n(count: int) -> int:
            return count

        document = app.openapi()
        ref = _op(document, "/n")["responses"]["422"]["content"]["application/json"]["schema"]
        schema = {"$ref": ref["$ref"], "components": document["components"]}
        real = {"detail": [{"loc": ["query", "count"], "msg": "field required", "type": "missing"}]}
        Draft202012Validator(schema).validate(real)
        nested = {"detail": [{"loc": ["body", "items", 2, "price"], "msg": "x", "type": "y"}]}
        Draft202012Validator(schema).validate(nested)

    def test_no_422_for_routes_that_read_nothing(self) -> None:
        """A route with no inputs cannot fail validation; no 422 is promised."""
        app = App()

        @app.get("/ping")
        async def ping() -> str:
            return "pong"

        assert set(_op(app.openapi(), "/ping")["responses"]) == {"200"}

    def test_status_code_response_class_and_extra_responses(self) -> None:
        """204 has no content; HTML and streams say their media type; ``responses=`` adds."""
        from triobg import HTMLResponse, StreamingResponse

        app = App()

        @attrs.frozen
        class Message:
            detail: str

        @app.delete("/items/{item_id}", status_code=204, responses={404: {"model": Message}})
        async def delete(item_id: int) -> None:
            return None

        @app.get("/page", response_class=HTMLResponse)
        async def page() -> str:
            return "<p>hi</p>"

        @app.get("/stream")
        async def stream() -> StreamingResponse:
            raise NotImplementedError

        document = app.openapi()
        validate(document)
        responses = _op(document, "/items/{item_id}", "delete")["responses"]
        assert responses["204"] == {"description": "Successful Response"}
        not_found = responses["404"]
        assert not_found["description"] == "Additional Response"
        assert _component(document, not_found["content"]["application/json"]["schema"])[
            "properties"
        ] == {"detail": {"type": "string"}}
        page_content = _op(document, "/page")["responses"]["200"]["content"]
        assert page_content == {"text/html": {"schema": {"type": "string"}}}
        stream_content = _op(document, "/stream")["responses"]["200"]["content"]
        assert stream_content == {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
        }


class TestOperations:
    """Ids, tags, summaries, descriptions, deprecation and leaving routes out."""

    def test_metadata_options(self) -> None:
        """Each option lands in the operation; the docstring is the default description."""
        app = App()
        router = Router(prefix="/users", tags=["users"])

        @router.get("/{uid}", tags=["read"], summary="Get a user", deprecated=True)
        async def get_user(uid: int) -> int:
            """Find a user.

            Returns the id.
            \f
            Internal notes that are not published.
            """
            return uid

        @router.get(
            "/",
            operation_id="listUsers",
            description="All of them",
            response_description="The users",
        )
        async def list_users() -> list[int]:
            return []

        @router.get("/hidden", include_in_schema=False)
        async def hidden() -> int:
            return 0

        app.include_router(router, tags=["v1"])
        document = app.openapi()
        validate(document)
        get = _op(document, "/users/{uid}")
        assert get["tags"] == ["v1", "users", "read"]
        assert get["summary"] == "Get a user"
        assert get["description"] == "Find a user.\n\nReturns the id."
        assert get["deprecated"] is True
        assert get["operationId"] == "get_user"
        listing = _op(document, "/users/")
        assert listing["operationId"] == "listUsers"
        assert listing["summary"] == "List users"
        assert listing["description"] == "All of them"
        assert listing["responses"]["200"]["description"] == "The users"
        assert "/users/hidden" not in document["paths"]

    def test_openapi_extra_is_merged_last(self) -> None:
        """A raw body read from ``Request`` is invisible to triobg; ``openapi_extra`` says it."""
        app = App()
        raw_body = {"content": {"application/octet-stream": {"schema": {"type": "string"}}}}

        @app.post("/upload", openapi_extra={"requestBody": raw_body, "x-internal": True})
        async def upload() -> int:
            return 1

        operation = _op(app.openapi(), "/upload", "post")
        validate(app.openapi())
        assert operation["requestBody"] == raw_body
        assert operation["x-internal"] is True
        assert operation["operationId"] == "upload"

    def test_operation_ids_are_unique(self) -> None:
        """The same function name on two paths, and one handler for two methods."""
        app = App()

        async def handler() -> int:
            return 1

        app.add_route("/a", handler)
        app.add_route("/b", handler)
        app.add_route("/c", handler, methods=["GET", "POST"])
        document = app.openapi()
        validate(document)
        ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
        assert len(ids) == len(set(ids)) == 4

    def test_duplicate_explicit_operation_ids_are_refused(self) -> None:
        """Two operations told to use one id is a mistake in the app; it is named."""
        app = App()

        async def handler() -> int:
            return 1

        app.add_route("/a", handler, operation_id="same")
        app.add_route("/b", handler, operation_id="same")
        with pytest.raises(ValueError, match="operation_id 'same' of GET /b"):
            app.openapi()


class TestExamples:
    """Checked, not trusted: every example app's document is valid OpenAPI 3.1."""

    @pytest.mark.parametrize(
        "name", sorted(m.name for m in pkgutil.iter_modules(examples.__path__))
    )
    def test_example_documents_validate(self, name: str) -> None:
        module = importlib.import_module(f"examples.{name}")
        app = getattr(module, "app", None)
        if name == "embedded":  # built by a function, around the program's queue
            send, receive = trio.open_memory_channel[Any](1)
            with send, receive:
                app = module.build_app(send, module.Progress())
        assert isinstance(app, App), f"examples.{name} has no app"
        document = app.openapi()
        validate(document)
        assert document["paths"], f"examples.{name} documents no route"

    def test_a_larger_app_validates(self) -> None:
        """The kitchen-sink app the fuzz tests serve, every feature at once."""
        from _openapi_app import build_app

        validate(build_app().openapi())


class TestScale:
    """Generation cost grows with routes; 1,000 routes take well under a second."""

    def test_a_thousand_routes(self) -> None:
        app = App()
        for index in range(1000):

            async def handler(
                item_id: int,
                q: Annotated[str | None, Query(max_length=9)] = None,
                item: Item | None = None,
            ) -> Item:
                raise NotImplementedError

            app.add_route(f"/r{index}/{{item_id}}", handler, methods=["POST"], name=f"h{index}")
        start = time.perf_counter()
        document = app.openapi()
        elapsed = time.perf_counter() - start
        assert len(document["paths"]) == 1000
        assert elapsed < 1.0, f"{elapsed:.3f} s for 1,000 routes"
