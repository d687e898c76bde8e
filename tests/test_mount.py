"""``app.mount`` (``triobg._mount``): sub-applications, their scopes, their lifespans, and
``url_path_for`` across mounts; everything in-process through ``TestClient``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from _support import call_asgi

from triobg import App, BackgroundTasks, Mount, Request, StaticFiles, WebSocket
from triobg.testing import TestClient

Scope = dict[str, Any]


class RecordingApp:
    """A bare ASGI app (no triobg) that speaks the lifespan protocol and echoes its scope."""

    def __init__(self, events: list[str], *, fail: str | None = None) -> None:
        self.events = events
        self.fail = fail  # "startup" or "shutdown": report that phase as failed

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                phase = message["type"].split(".")[1]
                self.events.append(f"bare {phase}")
                if phase == "startup":
                    scope["state"]["bare"] = "ready"
                outcome = "failed" if self.fail == phase else "complete"
                await send({"type": f"lifespan.{phase}.{outcome}", "message": "boom"})
                if phase == "shutdown" or outcome == "failed":
                    return
        body = repr(
            [scope["root_path"], scope["path"], scope["raw_path"], scope["state"].get("bare")]
        ).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def make_child(events: list[str]) -> App:
    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
        events.append("child startup")
        yield {"db": "child-db"}
        events.append("child shutdown")

    child = App(lifespan=lifespan, title="child")

    @child.get("/items/{item_id}")
    async def item(item_id: int, request: Request, tasks: BackgroundTasks) -> dict[str, Any]:
        tasks.add_task(events.append, f"child task {item_id}")
        return {
            "id": item_id,
            "url": str(request.url),
            "self": str(request.url_for("item", item_id=item_id)),
            "root_path": request.scope["root_path"],
            "db": request.state.db,
        }

    @child.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.url.path)
        await websocket.close()

    return child


def make_parent(events: list[str]) -> App:
    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        events.append("parent startup")
        yield
        events.append("parent shutdown")

    parent = App(lifespan=lifespan)

    @parent.get("/hello")
    async def hello() -> str:
        return "parent"

    parent.mount("/v2", make_child(events), name="v2")
    parent.mount("/bare", RecordingApp(events))
    return parent


class TestMountedApp:
    async def test_requests_reach_the_mounted_triobg_app(self) -> None:
        """``/v2/...`` is routed by the child, which sees its root path in ``url``/``url_for``
        and its own lifespan state; its background tasks run; the parent's routes still work."""
        events: list[str] = []
        async with TestClient(make_parent(events)) as client:
            assert (await client.get("/hello")).json() == "parent"
            response = await client.get("/v2/items/3")
            assert response.json() == {
                "id": 3,
                "url": "http://testserver/v2/items/3",
                "self": "http://testserver/v2/items/3",
                "root_path": "/v2",
                "db": "child-db",
            }
            await client.wait_background()
        assert "child task 3" in events

    async def test_not_found_and_slash_redirect_inside_the_mount(self) -> None:
        """The child answers its own 404s, and its slash redirect keeps the prefix."""
        async with TestClient(make_parent([])) as client:
            missing = await client.get("/v2/nope")
            assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
            redirect = await client.get("/v2/items/3/")
            assert redirect.status_code == 307
            assert redirect.headers["location"] == "/v2/items/3"
            # Not under the mount: ``/v2x`` is the parent's (a 404 there).
            assert (await client.get("/v2x/items/3")).status_code == 404

    async def test_websocket_through_the_mount(self) -> None:
        """A WebSocket under the prefix reaches the child's WebSocket route."""
        async with (
            TestClient(make_parent([])) as client,
            client.websocket_connect("/v2/ws") as session,
        ):
            assert await session.receive_text() == "/v2/ws"

    async def test_middleware_of_the_parent_sees_mounted_requests(self) -> None:
        """Middleware wraps the mounts too (they sit behind it, as routes do)."""
        seen: list[str] = []
        parent = make_parent([])

        def middleware(app: Any) -> Any:
            async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
                if scope["type"] == "http":
                    seen.append(scope["path"])
                await app(scope, receive, send)

            return wrapped

        parent.add_middleware(middleware)
        async with TestClient(parent) as client:
            assert (await client.get("/v2/items/1")).status_code == 200
        assert seen == ["/v2/items/1"]

    async def test_mounts_are_not_in_the_parent_openapi(self) -> None:
        """The parent's document lists its own routes only; the child serves its own."""
        async with TestClient(make_parent([])) as client:
            parent_doc = (await client.get("/openapi.json")).json()
            child_doc = (await client.get("/v2/openapi.json")).json()
        assert set(parent_doc["paths"]) == {"/hello"}
        assert set(child_doc["paths"]) == {"/items/{item_id}"}
        assert child_doc["info"]["title"] == "child"


class TestBareASGIApp:
    async def test_scope_follows_the_asgi_spec(self) -> None:
        """``root_path`` gains the prefix; ``path``/``raw_path`` stay the full path; the mounted
        app's lifespan state reaches its requests."""
        async with TestClient(make_parent([])) as client:
            body = (await client.get("/bare/a/c")).text
            root = (await client.get("/bare")).text
        assert body == repr(["/bare", "/bare/a/c", b"/bare/a/c", "ready"])
        assert root == repr(["/bare", "/bare", b"/bare", "ready"])

    async def test_escapes_reach_the_mounted_app_as_sent(self) -> None:
        """A percent-encoded path (decoded ``path``, encoded ``raw_path``) passes unchanged."""
        answer = await call_asgi(
            make_parent([]), "GET", "/bare/a b/c%2Fd", raw_path=b"/bare/a%20b/c%252Fd"
        )
        assert answer.body.decode() == repr(
            ["/bare", "/bare/a b/c%2Fd", b"/bare/a%20b/c%252Fd", None]
        )

    async def test_under_a_server_root_path(self) -> None:
        """Behind a proxy prefix (server ``root_path``), the prefixes add up."""
        parent = make_parent([])

        async def behind_proxy(scope: Scope, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                scope = {**scope, "root_path": "/api"}
            await parent(scope, receive, send)

        async with TestClient(behind_proxy) as client:
            body = (await client.get("/bare/x")).text
            item = (await client.get("/v2/items/5")).json()
        assert body == repr(["/api/bare", "/api/bare/x", b"/api/bare/x", "ready"])
        assert item["url"] == item["self"] == "http://testserver/api/v2/items/5"


class TestLifespans:
    async def test_order(self) -> None:
        """Parent startup, then each mount in order; at shutdown the mounts stop (last first)
        before the parent."""
        events: list[str] = []
        async with TestClient(make_parent(events)):
            assert events == ["parent startup", "child startup", "bare startup"]
        assert events[3:] == ["bare shutdown", "child shutdown", "parent shutdown"]

    @pytest.mark.parametrize("how", ["reported", "raised"])
    async def test_a_failed_mount_startup_fails_the_parent(
        self, how: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A mount whose startup fails (reported, or raised after taking the message) fails the
        parent's startup with the mount named; mounts started before it, and the parent's own
        lifespan, are shut down."""
        events: list[str] = []
        parent = make_parent(events)

        async def raising(scope: Scope, receive: Any, send: Any) -> None:
            await receive()
            raise OSError("no disk")

        failing = RecordingApp(events, fail="startup") if how == "reported" else raising
        parent.mount("/broken", failing)
        with pytest.raises(RuntimeError, match="mounted at /broken failed to start") as info:
            async with TestClient(parent):
                pass
        assert ("boom" if how == "reported" else "OSError: no disk") in str(info.value)
        assert events[-3:] == ["bare shutdown", "child shutdown", "parent shutdown"]

    async def test_a_failed_mount_shutdown_is_reported(self) -> None:
        """A mount whose shutdown fails makes the parent's shutdown report it; the others and
        the parent still shut down."""
        events: list[str] = []
        parent = App()
        parent.mount("/a", RecordingApp(events, fail="shutdown"))
        parent.mount("/b", make_child(events))
        with pytest.RaisesGroup(
            pytest.RaisesExc(RuntimeError, match="mounted at /a failed to shut down: boom"),
            flatten_subgroups=True,
        ):
            async with TestClient(parent):
                pass
        assert events[-2:] == ["child shutdown", "bare shutdown"]

    async def test_an_app_without_lifespan_is_left_alone(self) -> None:
        """A mounted app that raises on the lifespan scope before reading anything (the ASGI
        spec's "no lifespan") does not stop the parent, and still serves requests."""

        async def http_only(scope: Scope, receive: Any, send: Any) -> None:
            assert scope["type"] == "http"
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        async def returns_at_once(scope: Scope, receive: Any, send: Any) -> None:
            await trio.lowlevel.checkpoint()

        parent = App()
        parent.mount("/h", http_only)
        parent.mount("/r", returns_at_once)
        async with TestClient(parent) as client:
            assert (await client.get("/h/x")).status_code == 204

    async def test_static_files_answer_their_lifespan(self, tmp_path: Any) -> None:
        """``StaticFiles`` completes startup and shutdown (no warning, no failure)."""
        parent = App()
        parent.mount("/s", StaticFiles(directory=tmp_path))
        async with TestClient(parent):
            pass

    async def test_failure_is_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        """The failed startup is logged on ``triobg.lifespan`` with the mount's path."""
        parent = App()
        parent.mount("/x", RecordingApp([], fail="startup"))
        with caplog.at_level(logging.ERROR, "triobg.lifespan"), pytest.raises(RuntimeError):
            async with TestClient(parent):
                pass
        assert any("mounted at /x failed to start" in r.getMessage() for r in caplog.records)


class TestDeclaring:
    def test_bad_paths_and_duplicates(self) -> None:
        """The prefix starts with ``/``, has no trailing ``/`` or parameters, and is unique."""
        app = App()
        for path in ("static", "/static/", "/", "/{x}", ""):
            with pytest.raises(ValueError, match="mount path"):
                app.mount(path, RecordingApp([]))
        app.mount("/s", RecordingApp([]))
        with pytest.raises(ValueError, match="already mounted"):
            app.mount("/s", RecordingApp([]))
        assert [m.path for m in app.mounts] == ["/s"]
        assert isinstance(app.mounts[0], Mount)

    async def test_too_late(self) -> None:
        """Mounting once the app has served a call is refused (the dispatch is built)."""
        app = App()
        async with TestClient(app) as client:
            await client.get("/nope")
        with pytest.raises(RuntimeError, match="before the app handles its first call"):
            app.mount("/late", RecordingApp([]))

    def test_url_path_for_across_mounts(self, tmp_path: Any) -> None:
        """``"mount:route"`` reaches into a mounted app; ``("static", path=...)`` gives a path
        under a mount."""
        parent = make_parent([])
        parent.mount("/static", StaticFiles(directory=tmp_path), name="static")
        assert parent.url_path_for("v2:item", item_id=4) == "/v2/items/4"
        assert parent.url_path_for("static", path="/css/a b.css") == "/static/css/a%20b.css"
        from triobg import NoMatchFound

        with pytest.raises(NoMatchFound):
            parent.url_path_for("v2:nope")
        with pytest.raises(NoMatchFound):
            parent.url_path_for("static:x")
