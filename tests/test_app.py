"""The request pipeline through the ASGI interface: parameters, errors, responses, lifespan,
middleware. Everything here runs in-process through ``TestClient``."""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import attrs
import pytest
import trio

from triobg import (
    App,
    Body,
    Cookie,
    Header,
    HTMLResponse,
    HTTPException,
    Path,
    PlainTextResponse,
    Query,
    RedirectResponse,
    Request,
    Response,
    Router,
    StreamingResponse,
)
from triobg.testing import TestClient


class Kind(enum.Enum):
    BOOK = "book"
    TOOL = "tool"


@attrs.define
class Item:
    name: str
    price: float
    tags: list[str] = attrs.Factory(list)


def make_app() -> App:
    app = App(max_body_size=1000, max_query_params=20)

    @app.get("/items/{item_id}")
    async def read_item(
        item_id: int,
        q: str | None = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        tags: list[str] = Query([]),
        kind: Kind = Kind.BOOK,
        since: dt.datetime | None = None,
        ref: uuid.UUID | None = None,
        flag: bool = False,
    ) -> dict[str, Any]:
        return {
            "item_id": item_id,
            "q": q,
            "limit": limit,
            "tags": tags,
            "kind": kind,
            "since": since,
            "ref": ref,
            "flag": flag,
        }

    @app.put("/items/{item_id}", status_code=201)
    def replace_item(item_id: int, item: Item) -> Item:
        return attrs.evolve(item, name=f"{item.name}#{item_id}")

    @app.post("/pair")
    async def pair(left: Item, right: Item, note: str = Body("none")) -> list[Any]:
        return [left.name, right.name, note]

    @app.get("/whoami")
    async def whoami(
        user_agent: str = Header(), session: str | None = Cookie(None)
    ) -> dict[str, Any]:
        return {"ua": user_agent, "session": session}

    return app


class TestParameters:
    async def test_typed_path_query_values(self) -> None:
        """Path and query values arrive converted to their annotations; JSON renders them."""
        async with TestClient(make_app()) as client:
            response = await client.get(
                "/items/5?q=x&limit=3&tags=a&tags=b&kind=tool&since=2024-01-02T03:04:05Z"
                "&ref=12345678-1234-5678-1234-567812345678&flag=on"
            )
        assert response.status_code == 200
        assert response.json() == {
            "item_id": 5,
            "q": "x",
            "limit": 3,
            "tags": ["a", "b"],
            "kind": "tool",
            "since": "2024-01-02T03:04:05+00:00",
            "ref": "12345678-1234-5678-1234-567812345678",
            "flag": True,
        }

    async def test_every_invalid_input_is_listed_with_its_location(self) -> None:
        """One 422 lists all problems, not only the first."""
        async with TestClient(make_app()) as client:
            response = await client.get("/items/x?limit=0&kind=car&flag=perhaps")
        assert response.status_code == 422
        by_loc = {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}
        assert set(by_loc) == {
            ("path", "item_id"),
            ("query", "limit"),
            ("query", "kind"),
            ("query", "flag"),
        }
        assert "greater than or equal to 1" in by_loc[("query", "limit")]
        assert "'book', 'tool'" in by_loc[("query", "kind")]

    async def test_attrs_body_and_status_code(self) -> None:
        """An attrs model is read from JSON and returned as JSON with the route's status."""
        async with TestClient(make_app()) as client:
            response = await client.put("/items/3", json={"name": "pen", "price": 2})
        assert response.status_code == 201
        assert response.json() == {"name": "pen#3", "price": 2.0, "tags": []}

    async def test_body_errors_point_into_the_json(self) -> None:
        """Locations go down into the body: ``["body", "tags", 1]``."""
        async with TestClient(make_app()) as client:
            response = await client.put("/items/3", json={"price": "2", "tags": ["a", 1]})
        locs = [tuple(e["loc"]) for e in response.json()["detail"]]
        assert response.status_code == 422
        assert set(locs) == {("body", "name"), ("body", "price"), ("body", "tags", 1)}

    async def test_several_body_parameters_are_embedded_by_name(self) -> None:
        """Two models and a scalar: each under its own key of one JSON object."""
        pen = {"name": "pen", "price": 1}
        async with TestClient(make_app()) as client:
            ok = await client.post("/pair", json={"left": pen, "right": pen, "note": "n"})
            missing = await client.post("/pair", json={"left": pen})
        assert ok.json() == ["pen", "pen", "n"]
        assert missing.status_code == 422
        assert missing.json()["detail"][0]["loc"] == ["body", "right"]

    async def test_headers_and_cookies(self) -> None:
        """``user_agent`` reads ``User-Agent``; cookies by name."""
        async with TestClient(make_app(), cookies={"session": "s1"}) as client:
            response = await client.get("/whoami", headers={"User-Agent": "probe/1"})
            missing = await client.get("/whoami", headers={"User-Agent": ""})
        assert response.json() == {"ua": "probe/1", "session": "s1"}
        assert missing.status_code == 200  # an empty header is present, just empty

    async def test_request_is_injectable(self) -> None:
        """Handlers may take the ``Request`` itself."""
        app = App()

        @app.post("/echo/{name}")
        async def echo(request: Request) -> dict[str, Any]:
            return {
                "method": request.method,
                "path": request.path,
                "params": request.path_params,
                "query": dict(request.query_params),
                "body": (await request.body()).decode(),
            }

        async with TestClient(app) as client:
            response = await client.post("/echo/x?a=1", content="hello")
        assert response.json() == {
            "method": "POST",
            "path": "/echo/x",
            "params": {"name": "x"},
            "query": {"a": "1"},
            "body": "hello",
        }


class TestBadInput:
    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b'{"name": "a", ', "invalid JSON"),
            (b"\xff\xfe", "not valid UTF-8"),
            (b"[" * 100 + b"]" * 100, "nested deeper than 64"),
            (b"[" * 100000 + b"]" * 100000, "nested deeper than 64"),
        ],
    )
    async def test_malformed_json_is_a_422_that_says_why(self, body: bytes, message: str) -> None:
        """Never a 500: broken, mis-encoded or absurdly nested JSON gets a clear 422."""
        app = make_app()
        app.limits = attrs.evolve(app.limits, max_body_size=10**6)
        async with TestClient(app) as client:
            response = await client.put(
                "/items/1", content=body, headers={"content-type": "application/json"}
            )
        assert response.status_code == 422
        assert message in response.json()["detail"][0]["msg"]

    async def test_wrong_content_type_is_415(self) -> None:
        """A form post to a JSON endpoint is refused with the type named."""
        async with TestClient(make_app()) as client:
            response = await client.put("/items/1", data={"name": "a"})
        assert response.status_code == 415
        assert "application/x-www-form-urlencoded" in response.json()["detail"]

    async def test_oversized_body_is_413(self) -> None:
        """Over ``max_body_size``: 413, whether or not Content-Length announced it."""
        async with TestClient(make_app()) as client:
            response = await client.put("/items/1", content=b"x" * 5000)
        assert response.status_code == 413
        assert "limit 1000" in response.json()["detail"]

    async def test_too_many_query_parameters_is_400(self) -> None:
        """A flood of query parameters is refused before conversion."""
        async with TestClient(make_app()) as client:
            response = await client.get("/items/1?" + "&".join(f"k{i}=1" for i in range(50)))
        assert response.status_code == 400
        assert "too many query parameters" in response.json()["detail"]

    async def test_unknown_route_and_method(self) -> None:
        """404 for an unknown path; 405 with ``Allow`` for a known one."""
        async with TestClient(make_app()) as client:
            missing = await client.get("/nowhere")
            wrong = await client.delete("/items/1")
        assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "GET, HEAD, PUT"

    async def test_head_is_served_from_get_without_a_body(self) -> None:
        """HEAD gets GET's headers (content-length included) and no body."""
        async with TestClient(make_app()) as client:
            get = await client.get("/items/1")
            head = await client.head("/items/1")
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == get.headers["content-length"]

    async def test_trailing_slash_redirects_keep_the_query(self) -> None:
        """Only the other slash form is routed: 307 there, query preserved."""
        async with TestClient(make_app()) as client:
            response = await client.get("/items/1/?q=a")
            hostile = await client.get("//evil.example/")
        assert response.status_code == 307
        assert response.headers["location"] == "/items/1?q=a"
        assert hostile.status_code == 404


class TestResponses:
    async def test_return_values_become_json(self) -> None:
        """dict, list, str, None and attrs instances are encoded as JSON."""
        app = App()
        values: dict[str, Any] = {
            "dict": {"a": 1},
            "list": [1, "x"],
            "str": "text",
            "none": None,
            "model": Item("x", 1.5),
        }
        for name, value in values.items():
            app.add_route(f"/{name}", lambda value=value: value)
        async with TestClient(app) as client:
            got = {name: (await client.get(f"/{name}")).json() for name in values}
        assert got == {**values, "model": {"name": "x", "price": 1.5, "tags": []}}

    async def test_response_objects_pass_through(self) -> None:
        """A returned Response is sent as it is; text types get a charset."""
        app = App()

        @app.get("/text", response_class=PlainTextResponse)
        async def text() -> str:
            return "hi"

        @app.get("/html")
        async def html() -> HTMLResponse:
            return HTMLResponse("<b>x</b>", headers={"x-extra": "1"})

        async with TestClient(app) as client:
            text_response = await client.get("/text")
            html_response = await client.get("/html")
        assert text_response.headers["content-type"] == "text/plain; charset=utf-8"
        assert text_response.text == "hi"
        assert html_response.headers["x-extra"] == "1"
        assert html_response.headers["content-type"] == "text/html; charset=utf-8"

    async def test_injected_response_sets_status_headers_and_cookies(self) -> None:
        """Declaring ``response: Response`` lets a handler return data and still set headers."""
        app = App()

        @app.post("/login")
        async def login(response: Response) -> dict[str, bool]:
            response.status_code = 202
            response.headers["x-trace"] = "t1"
            response.set_cookie("session", "abc")
            return {"ok": True}

        async with TestClient(app) as client:
            response = await client.post("/login")
        assert response.status_code == 202
        assert response.headers["x-trace"] == "t1"
        cookie = response.headers["set-cookie"]
        assert "session=abc" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert client.cookies == {"session": "abc"}

    def test_header_injection_is_refused(self) -> None:
        """CR/LF in a header value would split the response: refused where it is set."""
        with pytest.raises(ValueError, match="CR, LF"):
            Response("x", headers={"x-a": "1\r\nSet-Cookie: evil=1"})
        response = Response("x")
        with pytest.raises(ValueError, match="CR, LF"):
            response.headers["location"] = "/a\nb"
        with pytest.raises(ValueError, match="invalid header name"):
            response.headers["bad name"] = "x"

    def test_redirect_helper_takes_what_the_application_writes(self) -> None:
        """Any target constructs (the origin check happens in the pipeline, see
        ``test_security``); only control characters are refused here."""
        for target in ("https://ok.example", "//cdn.example", "/home", "relative"):
            assert RedirectResponse(target).headers["location"] == target
        assert RedirectResponse("https://ok.example", allow_external=True).status_code == 307
        with pytest.raises(ValueError, match="control character"):
            RedirectResponse("/a\nb")

    def test_samesite_none_requires_secure(self) -> None:
        """A cookie that browsers would reject is refused up front."""
        with pytest.raises(ValueError, match="secure"):
            Response().set_cookie("a", "b", samesite="none")

    async def test_sync_iterators_stream_from_a_thread(self) -> None:
        """A blocking generator feeds a StreamingResponse without blocking the loop."""
        app = App()
        threads: set[int] = set()

        def produce() -> Any:
            for i in range(3):
                threads.add(threading.get_ident())
                yield f"{i};"

        @app.get("/s")
        async def stream() -> StreamingResponse:
            return StreamingResponse(produce(), media_type="text/plain")

        async with TestClient(app) as client:
            response = await client.get("/s")
        assert response.text == "0;1;2;"
        assert threading.get_ident() not in threads


class TestErrors:
    async def test_http_exception_with_headers(self) -> None:
        """``HTTPException`` becomes ``{"detail": ...}`` with its headers."""
        app = App()

        @app.get("/private")
        async def private() -> None:
            raise HTTPException(401, "who are you?", headers={"www-authenticate": "Bearer"})

        async with TestClient(app) as client:
            response = await client.get("/private")
        assert response.status_code == 401
        assert response.json() == {"detail": "who are you?"}
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_unhandled_errors_are_500_without_internals_and_logged(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The body says nothing about the code; the log has the traceback and the route."""
        app = App()

        @app.get("/boom")
        def boom() -> None:
            raise RuntimeError("database password is hunter2")

        async with TestClient(app) as client:
            response = await client.get("/boom")
        assert response.status_code == 500
        assert response.json() == {"detail": "Internal Server Error"}
        assert "hunter2" not in response.text
        record = next(r for r in caplog.records if r.name == "triobg.error")
        assert "GET /boom" in record.getMessage() and record.exc_info

    async def test_custom_exception_handlers_by_class_hierarchy(self) -> None:
        """The most specific registered class handles the error; handlers may be sync."""
        app = App()

        class Base(Exception):
            pass

        class Specific(Base):
            pass

        @app.exception_handler(Base)
        def base(request: Request, error: Base) -> Response:
            return PlainTextResponse("base", 409)

        @app.exception_handler(Specific)
        async def specific(request: Request, error: Specific) -> Response:
            return PlainTextResponse("specific", 418)

        @app.get("/{which}")
        async def raise_it(which: str) -> None:
            raise Specific if which == "specific" else Base

        async with TestClient(app) as client:
            assert (await client.get("/specific")).status_code == 418
            assert (await client.get("/base")).status_code == 409

    async def test_a_broken_exception_handler_falls_back_to_500(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """If the handler itself fails, the client still gets a clean 500."""
        app = App()

        @app.exception_handler(KeyError)
        def broken(request: Request, error: KeyError) -> Response:
            raise ValueError("handler bug")

        @app.get("/")
        async def handler() -> None:
            raise KeyError("x")

        async with TestClient(app) as client:
            assert (await client.get("/")).status_code == 500
        assert "exception handler" in caplog.text

    def test_handlers_must_be_declared_correctly(self) -> None:
        """Declaration mistakes fail at import time with the reason."""
        app = App()
        with pytest.raises(TypeError, match="no such"):
            app.add_route("/b", _path_only)
        with pytest.raises(ValueError, match="unknown HTTP method"):
            app.add_route("/c", _path_only, methods=["FETCH"])
        with pytest.raises(TypeError, match="cannot be a generator"):
            app.add_route("/d", _generator)


def _path_only(missing: Annotated[int, Path()]) -> None:
    return None


def _generator() -> Iterator[int]:
    yield 1


class TestLifespan:
    async def test_state_reaches_requests_and_shutdown_runs(self) -> None:
        """What the lifespan yields is ``request.state``; its exit runs at client exit."""
        events: list[str] = []

        @contextlib.asynccontextmanager
        async def lifespan(app: App) -> AsyncIterator[dict[str, str]]:
            events.append("startup")
            yield {"db": "connected"}
            events.append("shutdown")

        app = App(lifespan=lifespan)

        @app.get("/")
        async def handler(request: Request) -> str:
            return str(request.state.db)

        async with TestClient(app) as client:
            assert (await client.get("/")).json() == "connected"
            assert app.state.db == "connected"
        assert events == ["startup", "shutdown"]

    async def test_failing_startup_is_reported_clearly(self) -> None:
        """A startup error surfaces with its type and message."""

        def connect() -> None:
            raise ConnectionError("cannot reach db")

        @contextlib.asynccontextmanager
        async def lifespan(app: App) -> AsyncIterator[None]:
            connect()
            yield

        with pytest.raises(RuntimeError, match="startup failed: ConnectionError: cannot reach db"):
            async with TestClient(App(lifespan=lifespan)):
                pass


class TestMiddleware:
    async def test_last_added_is_outermost_and_streaming_passes_through(self) -> None:
        """Pure ASGI middleware wraps in a documented order and sees every chunk as it goes."""
        app = App()
        seen: list[str] = []

        class Tag:
            def __init__(self, app: Any, name: str) -> None:
                self.app = app
                self.name = name

            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                if scope["type"] != "http":
                    await self.app(scope, receive, send)
                    return
                seen.append(f"{self.name} in")

                async def tagged_send(message: dict[str, Any]) -> None:
                    if message["type"] == "http.response.body" and message.get("body"):
                        seen.append(f"{self.name} chunk")
                    await send(message)

                await self.app(scope, receive, tagged_send)
                seen.append(f"{self.name} out")

        async def body() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"

        @app.get("/")
        async def handler() -> StreamingResponse:
            return StreamingResponse(body())

        app.add_middleware(Tag, name="inner")
        app.add_middleware(Tag, name="outer")
        async with TestClient(app) as client:
            assert (await client.get("/")).content == b"ab"
            with pytest.raises(RuntimeError, match="before the app handles"):
                app.add_middleware(Tag, name="late")
        assert seen == [
            "outer in",
            "inner in",
            "inner chunk",
            "outer chunk",
            "inner chunk",
            "outer chunk",
            "inner out",
            "outer out",
        ]


class TestBodyIsAlwaysConsumed:
    async def test_unread_chunked_upload_is_drained_before_the_response(self) -> None:
        """A handler that ignores a big chunked body still answers, and every chunk was read
        before the response was sent (hypercorn's trio worker deadlocks otherwise)."""
        app = App()
        reads = 0
        chunks = 50
        sent: list[dict[str, Any]] = []

        @app.post("/ignore")
        async def ignore() -> str:
            return "ok"

        async def receive() -> dict[str, Any]:
            nonlocal reads
            reads += 1
            return {"type": "http.request", "body": b"x" * 1000, "more_body": reads < chunks}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                assert reads == chunks
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/ignore",
            "headers": [(b"transfer-encoding", b"chunked")],
        }
        with trio.fail_after(5):
            await app(scope, receive, send)
        assert sent[0]["status"] == 200


class TestRouters:
    async def test_router_prefix_and_dependencies_apply(self) -> None:
        """Routes of an included router get its prefix and its dependencies."""
        calls: list[str] = []

        def audit() -> None:
            calls.append("router dep")

        from triobg import Depends

        users = Router(prefix="/users", dependencies=[Depends(audit)])

        @users.get("/{uid}")
        async def get_user(uid: int) -> int:
            return uid

        app = App()
        app.include_router(users, prefix="/v1")
        async with TestClient(app) as client:
            assert (await client.get("/v1/users/7")).json() == 7
        assert calls == ["router dep"]

    def test_bad_prefixes_are_rejected(self) -> None:
        """Prefixes start with a slash and do not end with one."""
        with pytest.raises(ValueError, match="prefix"):
            Router(prefix="users/")


class TestRouteOptions:
    """An option a route does not understand fails at declaration, never silently."""

    def test_unsupported_response_model_options_are_refused_not_ignored(self) -> None:
        """The leak this prevents: ``response_model_exclude={"password"}`` ignored, the
        password sent."""
        app = App()
        routes_before = list(app.routes)
        with pytest.raises(TypeError, match=r"response_model_exclude= is a FastAPI option .* not"):

            @app.get("/me", response_model_exclude={"password"})  # type: ignore[call-arg]
            async def me() -> dict[str, str]:
                return {"name": "ada", "password": "secret"}

        assert app.routes == routes_before

    @pytest.mark.parametrize(
        "option", ["callbacks", "generate_unique_id_function", "response_model_by_alias"]
    )
    def test_fastapi_options_triobg_lacks_say_they_are_not_supported_yet(self, option: str) -> None:
        router = Router()
        with pytest.raises(TypeError, match=rf"{option}= is a FastAPI option"):
            router.add_route("/x", lambda: None, **{option: None})  # type: ignore[arg-type]

    def test_a_typo_is_named(self) -> None:
        """``status=202`` (for ``status_code``) is an unknown option, with the known ones listed."""
        app = App()
        with pytest.raises(TypeError, match=r"unknown option status=.*status_code"):
            app.post("/items", status=202)  # type: ignore[call-arg]

    def test_known_options_pass(self) -> None:
        app = App()

        @app.post("/items", status_code=202, name="create", dependencies=[], tags=["a"])
        async def create() -> None:
            return None

        assert app.routes[-1].status_code == 202
        assert app.routes[-1].tags == ["a"]


@pytest.fixture(autouse=True)
def _quiet_expected_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)


class TestRefusedBodiesAreNotRead:
    @pytest.mark.parametrize(
        ("method", "path", "headers", "status"),
        [
            ("POST", "/nowhere", [(b"content-length", b"10")], 404),
            ("POST", "/items/1", [(b"content-length", b"10")], 405),
            ("PUT", "/items/1", [(b"content-length", b"10"), (b"content-type", b"text/x")], 415),
            ("PUT", "/items/1", [(b"content-length", b"5000")], 413),
            (
                "PUT",
                "/items/1",
                [(b"transfer-encoding", b"chunked"), (b"content-type", b"a/b")],
                415,
            ),
        ],
    )
    async def test_refusal_is_decided_before_receive_and_closes(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]], status: int
    ) -> None:
        """Refusals decided from the headers never call ``receive`` before the answer has
        started (so no server sends ``100 Continue`` for them), and ask to close the connection."""
        app = make_app()
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            assert sent, "receive() called before the response started"
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": method,
            "path": path,
            "headers": headers,
        }
        with trio.fail_after(5):
            await app(scope, receive, send)
        assert sent[0]["status"] == status
        assert (b"connection", b"close") in sent[0]["headers"]
