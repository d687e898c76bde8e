"""The claims of docs/howto/migrate-from-fastapi.rst: what ports as it is, and what changes.

Each test names the table row it checks. The "not supported yet" rows are not tested here:
they are being worked on, and each is marked ``.. pending-merge:`` in the page.
"""

from __future__ import annotations

import datetime
import enum
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import attrs
import pytest

import triobg
from triobg import (
    App,
    Body,
    Depends,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
    Router,
    StreamingResponse,
)
from triobg.testing import SyncTestClient


class Color(enum.Enum):
    RED = "red"


@attrs.define
class Item:
    name: str
    price: float
    count: int = 0
    sold: bool = False


def real_user() -> str:
    return "real"


def make_app() -> App:
    app = App()
    router = Router(prefix="/r", tags=["r"])

    @router.get("/headers")
    async def headers(x_token: Annotated[str, Header()], response: Response) -> str:
        response.headers["x-seen"] = x_token
        response.status_code = 201
        return x_token

    app.include_router(router, prefix="/api")

    @app.route("/any", methods=["GET", "PUT"])
    async def any_method(request: Request) -> str:
        return request.method

    @app.get("/query")
    async def query(
        q: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI's spelling)
        limit: int | None = Query(None, le=10),
        flag: bool = False,
        ratio: float = 0.0,
    ) -> dict[str, Any]:
        return {"q": q, "limit": limit, "flag": flag, "ratio": ratio}

    @app.post("/items")
    async def create(item: Item) -> Item:
        return item

    @app.post("/embedded")
    async def embedded(item: Annotated[Item, Body(embed=True)]) -> str:
        return item.name

    @app.get("/user")
    async def user(name: str = Depends(real_user)) -> str:
        return name

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(418, "short and stout", headers={"x-kind": "teapot"})

    @app.get("/slash/")
    async def slash() -> str:
        return "slash"

    @app.get("/stream")
    def stream() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            yield b"a"
            yield b"b"

        return StreamingResponse(chunks())

    @app.get("/cookies")
    async def cookies(response: Response) -> None:
        response.set_cookie("session", "s")
        response.set_cookie("theme", "dark", httponly=False)

    @app.get("/encoded")
    async def encoded() -> dict[str, Any]:
        return {
            "when": datetime.datetime(2024, 1, 2, 3, 4, 5),
            "id": uuid.UUID(int=1),
            "color": Color.RED,
        }

    return app


@pytest.fixture(scope="module")
def client() -> Iterator[SyncTestClient]:
    app = make_app()
    app.dependency_overrides[real_user] = lambda: "fake"
    with SyncTestClient(app) as client:
        yield client


class TestPortsByChangingImports:
    def test_the_names_fastapi_code_imports(self) -> None:
        """Row "Depends, Query, ...": the same names, from ``triobg``."""
        for name in [
            "Depends",
            "Query",
            "Path",
            "Header",
            "Cookie",
            "Body",
            "HTTPException",
            "BackgroundTasks",
            "Request",
            "Response",
            "WebSocket",
            "WebSocketDisconnect",
            "JSONResponse",
            "HTMLResponse",
            "PlainTextResponse",
            "StreamingResponse",
            "RedirectResponse",
        ]:
            assert hasattr(triobg, name), name

    def test_an_unknown_route_option_is_refused_by_name(self) -> None:
        """Row "@app.get(...)": a typo is a TypeError at declaration, never ignored."""
        with pytest.raises(TypeError, match="status="):
            App().get("/", status=202)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="FastAPI option that triobg does not support"):
            App().get("/", response_model_exclude_unset=True)  # type: ignore[call-arg]

    def test_routers_route_headers_and_the_injected_response(self, client: SyncTestClient) -> None:
        """Rows "APIRouter", "api_route", headers with underscores, ``Response`` changes."""
        response = client.get("/api/r/headers", headers={"X-Token": "t"})
        assert (response.status_code, response.headers["x-seen"], response.json()) == (
            201,
            "t",
            "t",
        )
        assert client.put("/any").json() == "PUT"

    def test_parameters_bodies_and_overrides(self, client: SyncTestClient) -> None:
        """Rows on parameters, ``Body(embed=True)`` and ``dependency_overrides``."""
        got = client.get("/query", params=[("q", "a"), ("q", "b"), ("limit", "3")]).json()
        assert got == {"q": ["a", "b"], "limit": 3, "flag": False, "ratio": 0.0}
        assert client.get("/query", params={"limit": 11}).status_code == 422
        assert client.post("/embedded", json={"item": {"name": "n", "price": 1}}).json() == "n"
        assert client.get("/user").json() == "fake"

    def test_http_exceptions_slashes_and_streams(self, client: SyncTestClient) -> None:
        """Rows on ``HTTPException``, trailing-slash redirects and ``StreamingResponse``."""
        teapot = client.get("/teapot")
        assert (teapot.status_code, teapot.json(), teapot.headers["x-kind"]) == (
            418,
            {"detail": "short and stout"},
            "teapot",
        )
        moved = client.get("/slash", follow_redirects=False)
        assert (moved.status_code, moved.headers["location"]) == (307, "/slash/")
        assert client.get("/stream").content == b"ab"

    def test_values_a_handler_returns_are_encoded(self, client: SyncTestClient) -> None:
        """Row ``jsonable_encoder``: datetimes, UUIDs and enums need no helper."""
        assert client.get("/encoded").json() == {
            "when": "2024-01-02T03:04:05",
            "id": "00000000-0000-0000-0000-000000000001",
            "color": "red",
        }


class TestWorksDifferently:
    def test_cookies_are_httponly_unless_asked(self, client: SyncTestClient) -> None:
        """Row "Cookies": ``HttpOnly; SameSite=Lax`` by default, ``httponly=False`` to opt out."""
        session, theme = client.get("/cookies").headers.getlist("set-cookie")
        assert "HttpOnly" in session and "SameSite=Lax" in session
        assert "HttpOnly" not in theme

    @pytest.mark.parametrize(
        ("query", "status"),
        [
            ("limit=+3", 200),
            ("limit=1.0", 422),
            ("limit=1_000", 422),
            ("ratio=nan", 422),
            ("ratio=1_0", 422),
            ("ratio=-1.5e3", 200),
            ("ratio=inf", 422),
            ("flag=YES", 200),
            ("flag=on", 200),
            ("flag=t", 422),
            ("flag=y", 422),
        ],
    )
    def test_numbers_and_booleans_in_the_query_are_strict(
        self, client: SyncTestClient, query: str, status: int
    ) -> None:
        """Row "Numbers in the query ...": what pydantic's lax mode accepts and triobg does not."""
        assert client.get(f"/query?{query}").status_code == status

    @pytest.mark.parametrize(
        ("body", "status"),
        [
            ({"name": "a", "price": 1, "count": 1.0}, 200),
            ({"name": "a", "price": 1, "unknown": 1}, 200),
            ({"name": "a", "price": "1"}, 422),
            ({"name": "a", "price": 1, "count": True}, 422),
            ({"name": "a", "price": 1, "sold": 1}, 422),
            ({"name": 1, "price": 1}, 422),
        ],
    )
    def test_json_bodies_are_strict(
        self, client: SyncTestClient, body: dict[str, Any], status: int
    ) -> None:
        """Row "JSON bodies": a string is never a number, a number never a boolean."""
        assert client.post("/items", json=body).status_code == status

    def test_error_items_have_loc_msg_and_type(self, client: SyncTestClient) -> None:
        """Row "Error details": the same ``loc``, three keys."""
        detail = client.post("/items", json={"price": 1}).json()["detail"]
        assert detail == [{"loc": ["body", "name"], "msg": "field required", "type": "missing"}]

    def test_request_limits_and_content_types(self, client: SyncTestClient) -> None:
        """Row "Request limits": 413 past 1 MiB, 415 for a non-JSON type, none taken as JSON."""
        raw = b'{"name": "a", "price": 1}'
        assert client.post("/items", content=raw).status_code == 200
        plain = client.post("/items", content=raw, headers={"content-type": "text/plain"})
        assert plain.status_code == 415 and "text/plain" in plain.text
        big = b"[" + b" " * (1024 * 1024) + b"]"
        json_type = {"content-type": "application/json"}
        assert client.post("/items", content=big, headers=json_type).status_code == 413

    def test_there_is_no_status_module(self) -> None:
        """Row "HTTP status names": numbers or ``http.HTTPStatus``."""
        assert not hasattr(triobg, "status")
