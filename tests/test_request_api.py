"""The request API FastAPI users reach for (#18 item 3): ``request.url``, ``base_url``,
``client``, ``url_for``, ``app.url_path_for``, ``HTTPConnection`` and ``exc.errors()``."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from triobg import (
    App,
    HTTPConnection,
    JSONResponse,
    NoMatchFound,
    Request,
    RequestValidationError,
    Router,
    WebSocket,
)
from triobg.testing import TestClient


@attrs.define
class Item:
    name: str
    price: float


def make_app() -> App:
    app = App()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, request: Request) -> dict[str, Any]:
        url = request.url
        return {
            "url": str(url),
            "path": url.path,
            "query": url.query,
            "scheme": url.scheme,
            "hostname": url.hostname,
            "port": url.port,
            "base_url": str(request.base_url),
            "client": [request.client.host, request.client.port] if request.client else None,
            "self": str(request.url_for("read_item", item_id=item_id)),
        }

    @app.get("/files/{rest:path}", name="file")
    async def file(rest: str) -> str:
        return rest

    @app.get("/urls")
    async def urls(request: Request) -> list[str]:
        return [
            str(request.url_for("read_item", item_id=7)),
            str(request.url_for("file", rest="a b/c.txt")),
            request.app.url_path_for("read_item", item_id="x/y"),
        ]

    return app


class TestRequestURL:
    async def test_url_parts_client_and_base_url(self) -> None:
        """``request.url`` is a URL object; ``client`` has ``host``/``port``; ``base_url`` ends
        with ``/`` (the test client's scope: ``http://testserver``, client 127.0.0.1:50000)."""
        async with TestClient(make_app()) as client:
            response = await client.get("/items/3?q=a%20b")
        assert response.json() == {
            "url": "http://testserver/items/3?q=a%20b",
            "path": "/items/3",
            "query": "q=a%20b",
            "scheme": "http",
            "hostname": "testserver",
            "port": None,
            "base_url": "http://testserver/",
            "client": ["127.0.0.1", 50000],
            "self": "http://testserver/items/3",
        }

    async def test_url_for_encodes_values(self) -> None:
        """A ``{name:path}`` value keeps its ``/``; any other value has it encoded."""
        async with TestClient(make_app()) as client:
            response = await client.get("/urls")
        assert response.json() == [
            "http://testserver/items/7",
            "http://testserver/files/a%20b/c.txt",
            "/items/x%2Fy",
        ]

    async def test_no_client_is_none(self) -> None:
        """A server that gives no client (a Unix socket) makes ``request.client`` ``None``."""
        app = App()
        seen: list[Any] = []

        @app.get("/")
        async def root(request: Request) -> None:
            seen.append(request.client)

        async def no_client(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                scope = {**scope, "client": None}
            await app(scope, receive, send)

        async with TestClient(no_client) as client:
            assert (await client.get("/")).status_code == 200
        assert seen == [None]

    async def test_root_path_is_in_the_urls(self) -> None:
        """Behind a proxy prefix (``root_path``), ``url``, ``base_url`` and ``url_for`` carry it,
        and routing works whether or not the server left the prefix in ``path``."""
        app = make_app()

        def with_root(keep: bool) -> Any:
            async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
                if scope["type"] == "http":
                    path = "/api" + scope["path"] if keep else scope["path"]
                    raw = path.encode()
                    scope = {**scope, "root_path": "/api", "path": path, "raw_path": raw}
                await app(scope, receive, send)

            return asgi

        for keep in (False, True):
            async with TestClient(with_root(keep)) as client:
                body = (await client.get("/items/3")).json()
            assert body["url"] == "http://testserver/api/items/3"
            assert body["base_url"] == "http://testserver/api/"
            assert body["self"] == "http://testserver/api/items/3"

    async def test_slash_redirect_keeps_the_root_path(self) -> None:
        """The trailing-slash 307 points at the whole path, root path included."""
        app = make_app()

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                scope = {**scope, "root_path": "/api"}
            await app(scope, receive, send)

        async with TestClient(asgi) as client:
            response = await client.get("/items/3/")
        assert response.status_code == 307
        assert response.headers["location"] == "/api/items/3"


class TestUrlPathFor:
    def test_names_default_to_the_function_name(self) -> None:
        """A route is named after its endpoint; ``name=`` overrides; routers keep names."""
        app = make_app()
        router = Router(prefix="/users")

        @router.get("/{user_id}")
        async def get_user(user_id: int) -> None: ...

        app.include_router(router, prefix="/v1")
        assert app.url_path_for("read_item", item_id=1) == "/items/1"
        assert app.url_path_for("file", rest="x/y") == "/files/x/y"
        assert app.url_path_for("get_user", user_id=5) == "/v1/users/5"

    def test_websocket_routes_have_names_too(self) -> None:
        """``url_path_for`` finds WebSocket routes."""
        app = App()

        @app.websocket("/ws/{room}")
        async def chat(websocket: WebSocket, room: str) -> None: ...

        assert app.url_path_for("chat", room="a") == "/ws/a"

    def test_unknown_name_or_wrong_parameters(self) -> None:
        """An unknown name, a missing or an extra parameter: ``NoMatchFound`` that says which."""
        app = make_app()
        with pytest.raises(NoMatchFound, match="no route named 'nope'"):
            app.url_path_for("nope")
        with pytest.raises(NoMatchFound, match=r"takes \(item_id\), not \(none\)"):
            app.url_path_for("read_item")
        with pytest.raises(NoMatchFound, match=r"not \(extra, item_id\)"):
            app.url_path_for("read_item", item_id=1, extra=2)
        assert issubclass(NoMatchFound, LookupError)


class TestHTTPConnection:
    async def test_a_dependency_typed_httpconnection_serves_http_and_websocket(self) -> None:
        """``conn: HTTPConnection`` is injected for both kinds of route, with the shared API."""
        from triobg import Depends

        seen: list[tuple[str, str]] = []

        def who(conn: HTTPConnection) -> str:
            seen.append((type(conn).__name__, str(conn.url)))
            user: str = conn.headers.get("x-user", "anonymous")
            return user

        app = App()

        @app.get("/me")
        async def me(user: str = Depends(who)) -> str:
            return user

        @app.websocket("/ws")
        async def ws(websocket: WebSocket, user: str = Depends(who)) -> None:
            await websocket.accept()
            await websocket.send_text(f"{user} {websocket.url.path} {websocket.client}")
            await websocket.close()

        async with TestClient(app) as client:
            assert (await client.get("/me", headers={"x-user": "ann"})).json() == "ann"
            async with client.websocket_connect("/ws?x=1") as session:
                text = await session.receive_text()
        assert text.startswith("anonymous /ws ")
        assert seen == [
            ("Request", "http://testserver/me"),
            ("WebSocket", "ws://testserver/ws?x=1"),
        ]


class TestValidationErrors:
    async def test_fastapi_custom_handler_pattern(self) -> None:
        """FastAPI's documented handler, ``{"detail": exc.errors(), "body": exc.body}``, ports
        unchanged: every problem, located, and the JSON body that was sent."""
        app = App()

        @app.post("/items")
        async def create(item: Item, q: int) -> None: ...

        @app.exception_handler(RequestValidationError)
        async def handler(request: Request, exc: RequestValidationError) -> JSONResponse:
            return JSONResponse({"detail": exc.errors(), "body": exc.body}, status_code=400)

        async with TestClient(app) as client:
            response = await client.post("/items?q=x", json={"name": "a", "price": "cheap"})
        assert response.status_code == 400
        detail = response.json()["detail"]
        assert sorted(tuple(e["loc"]) for e in detail) == [("body", "price"), ("query", "q")]
        assert all({"loc", "msg", "type"} <= set(e) for e in detail)
        assert response.json()["body"] == {"name": "a", "price": "cheap"}

    def test_errors_is_a_list_and_callable(self) -> None:
        """``errors`` is a list of ``ErrorDetail``; ``errors()`` the same problems as dicts."""
        from triobg import ErrorDetail

        detail = ErrorDetail(("body", "price"), "not a number", "float_parsing")
        error = RequestValidationError([detail])
        assert error.errors == [detail]
        assert error.errors() == [
            {"loc": ["body", "price"], "msg": "not a number", "type": "float_parsing"}
        ]
        assert str(error) == "body.price: not a number"
