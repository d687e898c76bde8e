"""WebSocket routes in-process: the WebSocket object, injection, rejection, limits, shutdown."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
import trio
import trio.lowlevel
import trio.testing
from _support import assert_books_balance, recording

from triobg import (
    App,
    BackgroundTasks,
    Cookie,
    Depends,
    Header,
    HTTPException,
    Request,
    Response,
    Router,
    WebSocket,
    WebSocketClose,
    WebSocketDisconnect,
    WebSocketLimits,
    WebSocketState,
)
from triobg.testing import TestClient, WebSocketDenied

WAIT = 5.0


def echo_app() -> App:
    app = App()

    @app.websocket("/echo/{room}")
    async def echo(
        websocket: WebSocket,
        room: str,
        times: int = 1,
        user_agent: Annotated[str | None, Header()] = None,
        session: Annotated[str | None, Cookie()] = None,
    ) -> None:
        await websocket.accept()
        await websocket.send_json({"room": room, "agent": user_agent, "session": session})
        async for message in websocket:
            await websocket.send(message * times)

    return app


class TestMessages:
    async def test_path_query_header_and_cookie_values_reach_the_handler(self) -> None:
        """Path, query, header and cookie parameters are read from the handshake."""
        async with (
            TestClient(echo_app(), cookies={"session": "s1"}) as client,
            client.websocket_connect("/echo/lobby?times=2") as ws,
        ):
            hello = await ws.receive_json()
            await ws.send_text("ab")
            text = await ws.receive_text()
            await ws.send_bytes(b"\x00\x01")
            data = await ws.receive_bytes()
        assert hello == {"room": "lobby", "agent": "triobg-testclient", "session": "s1"}
        assert (text, data) == ("abab", b"\x00\x01\x00\x01")

    async def test_json_both_ways_and_binary_json(self) -> None:
        """receive_json parses text or binary; send_json(binary=True) sends bytes."""
        app = App()

        @app.websocket("/json")
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()
            value = await websocket.receive_json()
            await websocket.send_json({"got": value})
            await websocket.send_json([1], binary=True)

        async with TestClient(app) as client, client.websocket_connect("/json") as ws:
            await ws.send_json({"a": [1, 2]})
            assert await ws.receive_json() == {"got": {"a": [1, 2]}}
            assert await ws.receive_bytes() == b"[1]"

    async def test_accept_with_subprotocol_and_headers(self) -> None:
        """accept() picks one of the client's subprotocols and adds handshake headers."""
        app = App()

        @app.websocket("/proto")
        async def handler(websocket: WebSocket) -> None:
            assert websocket.subprotocols == ["v1", "v2"]
            await websocket.accept(subprotocol="v2", headers={"x-room": "7"})
            await websocket.close()

        async with (
            TestClient(app) as client,
            client.websocket_connect("/proto", subprotocols=["v1", "v2"]) as ws,
        ):
            assert ws.subprotocol == "v2"
            assert ws.accept_headers["x-room"] == "7"
            assert await ws.wait_closed() == 1000

    async def test_client_close_code_reaches_the_handler(self) -> None:
        """WebSocketDisconnect carries the code the client closed with."""
        app = App()
        seen: list[int] = []

        @app.websocket("/ws")
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()
            try:
                await websocket.receive()
            except WebSocketDisconnect as gone:
                seen.append(gone.code)
                raise

        async with TestClient(app) as client:
            async with client.websocket_connect("/ws") as ws:
                await ws.close(4001, "bye")
            await client.wait_background()
        assert seen == [4001]

    async def test_handler_returning_closes_with_1000(self) -> None:
        """A handler that returns with the socket open has it closed normally for it."""
        app = App()

        @app.websocket("/ws")
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()
            await websocket.send_text("one")

        async with TestClient(app) as client, client.websocket_connect("/ws") as ws:
            assert await ws.receive_text() == "one"
            assert await ws.wait_closed() == 1000

    async def test_after_the_client_left_receive_and_send_raise_at_once(self) -> None:
        """Once the client is gone nothing waits: receive and send raise WebSocketDisconnect."""
        app = App()
        outcomes: list[str] = []

        @app.websocket("/ws")
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()
            await websocket.wait_disconnect()
            for operation in (websocket.receive, lambda: websocket.send_text("late")):
                try:
                    await operation()
                except WebSocketDisconnect as gone:
                    outcomes.append(f"disconnect {gone.code}")
            assert websocket.client_state is WebSocketState.CLOSED

        async with TestClient(app) as client:
            async with client.websocket_connect("/ws"):
                pass
            with trio.fail_after(WAIT):
                await client.wait_background()
        assert outcomes == ["disconnect 1000", "disconnect 1000"]

    async def test_two_readers_are_refused(self) -> None:
        """A second task receiving at the same time is a RuntimeError, not a lost message."""
        app = App()
        errors: list[str] = []

        @app.websocket("/ws")
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(websocket.receive)
                await trio.testing.wait_all_tasks_blocked()
                try:
                    await websocket.receive()
                except RuntimeError as error:
                    errors.append(str(error))
                await websocket.send_text("go")

        async with TestClient(app) as client, client.websocket_connect("/ws") as ws:
            assert await ws.receive_text() == "go"
            await ws.send_text("for the first reader")
        assert errors and "another task is already receiving" in errors[0]

    async def test_using_the_socket_before_accept_is_an_error(self) -> None:
        """receive and send before accept() say so; the client sees the handshake fail."""
        app = App()

        @app.websocket("/ws")
        async def handler(websocket: WebSocket) -> None:
            await websocket.send_text("too early")

        with recording("triobg.error") as log:
            async with TestClient(app) as client:
                with pytest.raises(WebSocketDenied) as denied:
                    async with client.websocket_connect("/ws"):
                        pass
        assert denied.value.status_code == 500
        assert log.matching("unhandled RuntimeError in WebSocket /ws")


class TestDependencies:
    async def test_yield_dependency_is_torn_down_when_the_socket_closes(self) -> None:
        """A yield dependency lives as long as the socket, and its teardown sees the end."""
        app = App()
        events: list[str] = []

        async def database() -> AsyncIterator[str]:
            events.append("open")
            yield "db"
            events.append("closed")

        @app.websocket("/ws")
        async def handler(websocket: WebSocket, db: str = Depends(database)) -> None:
            await websocket.accept()
            async for message in websocket.iter_text():
                events.append(f"{db}:{message}")

        async with TestClient(app) as client:
            async with client.websocket_connect("/ws") as ws:
                await ws.send_text("hello")
                await ws.send_text("bye")
            with trio.fail_after(WAIT):
                await client.wait_background()
        assert events == ["open", "db:hello", "db:bye", "closed"]

    async def test_dependency_gets_the_websocket_and_overrides_apply(self) -> None:
        """Dependencies may ask for the WebSocket; app.dependency_overrides replace them."""
        app = App()

        def token(websocket: WebSocket) -> str:
            return str(websocket.query_params.get("token", ""))

        @app.websocket("/ws")
        async def handler(websocket: WebSocket, who: str = Depends(token)) -> None:
            await websocket.accept()
            await websocket.send_text(who)

        async with TestClient(app) as client:
            async with client.websocket_connect("/ws?token=abc") as ws:
                assert await ws.receive_text() == "abc"
            app.dependency_overrides[token] = lambda: "override"
            async with client.websocket_connect("/ws?token=abc") as ws:
                assert await ws.receive_text() == "override"

    async def test_router_prefix_and_dependencies_apply(self) -> None:
        """Router.websocket routes come along with include_router, prefix and dependencies."""
        calls: list[str] = []
        router = Router(prefix="/chat", dependencies=[Depends(lambda: calls.append("router"))])

        @router.websocket("/{room}")
        async def room(websocket: WebSocket, room: str) -> None:
            await websocket.accept()
            await websocket.send_text(room)

        app = App()
        app.include_router(router, prefix="/v1")
        async with TestClient(app) as client, client.websocket_connect("/v1/chat/red") as ws:
            assert await ws.receive_text() == "red"
        assert calls == ["router"]

    def test_what_a_websocket_cannot_have_is_refused_at_declaration(self) -> None:
        """A sync handler, a body, a Response or a Request in a WebSocket route is a TypeError."""
        app = App()

        def sync_handler(websocket: WebSocket) -> None:
            return None

        async def with_body(websocket: WebSocket, item: dict[str, int]) -> None:
            return None

        async def with_response(websocket: WebSocket, response: Response) -> None:
            return None

        async def with_request(request: Request) -> None:
            return None

        with pytest.raises(TypeError, match="async def"):
            app.add_websocket_route("/a", sync_handler)
        with pytest.raises(TypeError, match="request body"):
            app.add_websocket_route("/b", with_body)
        with pytest.raises(TypeError, match="no Response"):
            app.add_websocket_route("/c", with_response)
        with pytest.raises(TypeError, match="asks for a Request"):
            app.add_websocket_route("/d", with_request)

    def test_an_http_route_cannot_ask_for_a_websocket(self) -> None:
        """Declaring a WebSocket parameter on an HTTP route fails at declaration."""
        app = App()
        with pytest.raises(TypeError, match="asks for a WebSocket"):

            @app.get("/x")
            async def handler(websocket: WebSocket) -> None:
                return None


class TestRejection:
    async def test_unknown_path_is_denied_with_404(self) -> None:
        """No route: the handshake gets a 404 response that says which path."""
        async with TestClient(echo_app()) as client:
            with pytest.raises(WebSocketDenied) as denied:
                async with client.websocket_connect("/nowhere"):
                    pass
        assert denied.value.status_code == 404
        assert "/nowhere" in denied.value.json()["detail"]

    async def test_failed_auth_dependency_is_denied_with_its_status(self) -> None:
        """An HTTPException before accept becomes the handshake's HTTP answer."""
        app = App()

        def require_token(token: Annotated[str | None, Header()] = None) -> None:
            if token != "secret":
                raise HTTPException(403, "bad token", headers={"x-why": "token"})

        @app.websocket("/ws", dependencies=[Depends(require_token)])
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()

        async with TestClient(app) as client:
            with pytest.raises(WebSocketDenied) as denied:
                async with client.websocket_connect("/ws", headers={"token": "wrong"}):
                    pass
            async with client.websocket_connect("/ws", headers={"token": "secret"}) as ws:
                assert await ws.wait_closed() == 1000
        assert (denied.value.status_code, denied.value.json()) == (403, {"detail": "bad token"})
        assert denied.value.headers["x-why"] == "token"

    async def test_invalid_handshake_values_are_denied_with_422_listing_them(self) -> None:
        """Bad query values: 422 naming each one, before the handler runs."""
        async with TestClient(echo_app()) as client:
            with pytest.raises(WebSocketDenied) as denied:
                async with client.websocket_connect("/echo/r?times=many"):
                    pass
        assert denied.value.status_code == 422
        assert denied.value.json()["detail"][0]["loc"] == ["query", "times"]

    async def test_without_the_denial_extension_rejection_is_a_policy_close(self) -> None:
        """A server without websocket.http.response gets a close with 1008 and a reason."""
        app = App()

        @app.websocket("/ws")
        async def handler(websocket: WebSocket) -> None:
            raise HTTPException(401, "log in first")

        sent: list[dict[str, Any]] = []
        inbox = [{"type": "websocket.connect"}]

        async def receive() -> dict[str, Any]:
            return inbox.pop(0) if inbox else {"type": "websocket.disconnect", "code": 1006}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
        await app(scope, receive, send)
        assert sent == [{"type": "websocket.close", "code": 1008, "reason": "401: log in first"}]

    async def test_http_exception_after_accept_closes_with_1008(self) -> None:
        """After accept, an HTTPException closes with 1008 and its detail as the reason."""
        app = App()

        @app.websocket("/ws")
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()
            raise HTTPException(403, "not in this room")

        async with TestClient(app) as client, client.websocket_connect("/ws") as ws:
            with pytest.raises(WebSocketDisconnect) as closed:
                await ws.receive()
        assert (closed.value.code, closed.value.reason) == (1008, "not in this room")

    async def test_unhandled_error_after_accept_closes_with_1011_and_is_logged(self) -> None:
        """A crash closes with 1011, says nothing inside, and logs the traceback."""
        app = App()

        @app.websocket("/ws")
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()
            raise ValueError("secret internals")

        with recording("triobg.error") as log:
            async with TestClient(app) as client, client.websocket_connect("/ws") as ws:
                with pytest.raises(WebSocketDisconnect) as closed:
                    await ws.receive()
        assert (closed.value.code, closed.value.reason) == (1011, "Internal Server Error")
        assert log.matching(r"unhandled ValueError in WebSocket /ws \(.*handler\)")


class RoomFull(Exception):
    pass


def handled_app(seen: list[tuple[str, str]]) -> App:
    app = App()

    @app.exception_handler(RoomFull)
    async def room_full(websocket: WebSocket, error: RoomFull) -> None:
        seen.append((type(websocket).__name__, str(error)))
        await websocket.close(4000, f"room full: {error}")

    @app.exception_handler(Exception)
    def everything_else(connection: Any, error: Exception) -> None:
        seen.append((type(connection).__name__, repr(error)))  # leaves the socket open
        if isinstance(error, KeyError):
            raise RuntimeError("the handler itself fails")

    def check_room(room: str) -> None:
        if room == "early":
            raise RoomFull("before accept")

    @app.websocket("/rooms/{room}", dependencies=[Depends(check_room)])
    async def rooms(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        errors: dict[str, Exception] = {
            "late": RoomFull("after accept"),
            "crash": ValueError("v"),
            "forbidden": HTTPException(403, "no"),
            "broken": KeyError("k"),
        }
        raise errors[room]

    return app


class TestExceptionHandlers:
    async def test_a_registered_handler_gets_the_websocket_and_closes_it(self) -> None:
        """The app's handler for the error runs, with the WebSocket, and its close code wins,
        after accept and before it (where its close refuses the handshake)."""
        seen: list[tuple[str, str]] = []
        with recording("triobg.error") as log:
            async with TestClient(handled_app(seen)) as client:
                async with client.websocket_connect("/rooms/late") as ws:
                    with pytest.raises(WebSocketDisconnect) as closed:
                        await ws.receive()
                with pytest.raises(WebSocketDisconnect) as refused:
                    async with client.websocket_connect("/rooms/early"):
                        pass
        assert (closed.value.code, closed.value.reason) == (4000, "room full: after accept")
        assert (refused.value.code, refused.value.reason) == (4000, "room full: before accept")
        assert seen == [("WebSocket", "after accept"), ("WebSocket", "before accept")]
        assert not log.records

    async def test_a_socket_left_open_gets_the_default_close(self) -> None:
        """A handler that does not close (or fails, logged) leaves the default: 1011 for an
        error, 1008 for an HTTPException, whose built-in handler is never given a socket."""
        seen: list[tuple[str, str]] = []
        codes = []
        with recording("triobg.error") as log:
            async with TestClient(handled_app(seen)) as client:
                for room in ("crash", "forbidden", "broken"):
                    async with client.websocket_connect(f"/rooms/{room}") as ws:
                        with pytest.raises(WebSocketDisconnect) as closed:
                            await ws.receive()
                        codes.append((closed.value.code, closed.value.reason))
        assert codes == [
            (1011, "Internal Server Error"),
            (1008, "no"),
            (1011, "Internal Server Error"),
        ]
        assert seen == [("WebSocket", "ValueError('v')"), ("WebSocket", "KeyError('k')")]
        assert log.matching(r"exception handler .*everything_else.* failed \(RuntimeError\)")
        assert log.matching(r"unhandled KeyError in WebSocket /rooms/broken")


class TestBadInput:
    async def test_oversized_message_closes_with_1009(self) -> None:
        """A message over max_message_size closes with 1009 and ends the handler."""
        app = App(websocket_limits=WebSocketLimits(max_message_size=8))
        ended: list[int] = []

        @app.websocket("/ws")
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()
            try:
                async for message in websocket:
                    await websocket.send(message)
            finally:
                ended.append(websocket.close_code or 0)

        async with TestClient(app) as client, client.websocket_connect("/ws") as ws:
            await ws.send_text("12345678")
            assert await ws.receive_text() == "12345678"
            await ws.send_text("é" * 5)  # 5 characters, 10 bytes of UTF-8
            with pytest.raises(WebSocketDisconnect) as closed:
                await ws.receive()
        assert closed.value.code == WebSocketClose.MESSAGE_TOO_BIG
        assert "10 bytes (limit 8)" in closed.value.reason
        assert ended == [1009]

    async def test_wrong_message_types_close_with_1003_and_1007(self) -> None:
        """Binary for receive_text is 1003; text that is not JSON for receive_json is 1007."""
        app = App()

        @app.websocket("/text")
        async def text(websocket: WebSocket) -> None:
            await websocket.accept()
            await websocket.receive_text()

        @app.websocket("/json")
        async def json(websocket: WebSocket) -> None:
            await websocket.accept()
            await websocket.receive_json()

        async with TestClient(app) as client:
            async with client.websocket_connect("/text") as ws:
                await ws.send_bytes(b"x")
                assert await ws.wait_closed() == 1003
            async with client.websocket_connect("/json") as ws:
                await ws.send_text("{not json")
                assert await ws.wait_closed() == 1007

    async def test_client_that_never_reads_is_given_up_on(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """Sends to a client that reads nothing stop after send_timeout; nothing is left."""
        app = App(websocket_limits=WebSocketLimits(send_timeout=10))
        outcome: list[str] = []
        given_up = trio.Event()

        @app.websocket("/flood")
        async def flood(websocket: WebSocket) -> None:
            await websocket.accept()
            sent = 0
            try:
                while True:
                    await websocket.send_bytes(b"x" * 1024)
                    sent += 1
            except WebSocketDisconnect as gone:
                outcome.append(f"{gone.code} after {sent}")
                given_up.set()

        with recording("triobg.websocket") as log:
            async with TestClient(app) as client, client.websocket_connect("/flood"):
                with trio.fail_after(60):
                    await given_up.wait()
        assert outcome[0].startswith("1006 after ")
        assert log.matching("giving up on WebSocket /flood: the client took no message for 10")
        assert app.websockets.statistics().open == 0

    async def test_no_send_timeout_sends_unbounded(self) -> None:
        """send_timeout=None sends without a deadline (and without its cost)."""
        app = App(websocket_limits=WebSocketLimits(send_timeout=None))

        @app.websocket("/ws")
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()
            await websocket.send_text("unbounded")

        async with TestClient(app) as client, client.websocket_connect("/ws") as ws:
            assert await ws.receive_text() == "unbounded"

    async def test_close_twice_and_bad_close_codes(self) -> None:
        """close() is idempotent; a code an endpoint may not send is a ValueError."""
        app = App()
        errors: list[str] = []

        @app.websocket("/ws")
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()
            try:
                await websocket.close(1006)
            except ValueError as error:
                errors.append(str(error))
            await websocket.close(4000, "x" * 200)
            await websocket.close(1000)
            assert websocket.close_code == 4000

        async with TestClient(app) as client, client.websocket_connect("/ws") as ws:
            with pytest.raises(WebSocketDisconnect) as closed:
                await ws.receive()
        assert errors == ["1006 is not a close code an endpoint may send"]
        assert (closed.value.code, len(closed.value.reason)) == (4000, 123)


class TestConcurrency:
    async def test_open_nursery_cancels_the_writer_when_the_client_leaves(self) -> None:
        """The reader sees the client leave; the writer is cancelled with it; nothing leaks."""
        app = App()
        events: list[str] = []
        writer_started = trio.Event()

        async def ticker(websocket: WebSocket) -> None:
            try:
                writer_started.set()
                while True:
                    await websocket.send_text("tick")
                    await trio.sleep(0.01)
            except trio.Cancelled:
                events.append("writer cancelled")
                raise

        @app.websocket("/ws")
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()
            async with websocket.open_nursery() as nursery:
                nursery.start_soon(ticker, websocket)
                async for message in websocket.iter_text():
                    events.append(f"got {message}")
            events.append("handler done")

        async with TestClient(app) as client:
            async with client.websocket_connect("/ws") as ws:
                with trio.fail_after(WAIT):
                    await writer_started.wait()
                    assert await ws.receive_text() == "tick"
                await ws.send_text("hi")
            with trio.fail_after(WAIT):
                await client.wait_background()
        assert events == ["got hi", "writer cancelled", "handler done"]
        assert app.websockets.statistics().open == 0

    async def test_a_server_send_that_never_yields_cannot_starve_the_reader(self) -> None:
        """Every send is a checkpoint, so a writer cannot spin on a server that drops sends."""
        app = App()
        sent = 0

        async def writer(websocket: WebSocket) -> None:
            while True:
                await websocket.send_text("x")

        @app.websocket("/ws")
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()
            async with websocket.open_nursery() as nursery:
                nursery.start_soon(writer, websocket)
                await websocket.wait_disconnect()

        inbox: list[dict[str, Any]] = [{"type": "websocket.connect"}]

        closed = trio.Event()

        async def receive() -> dict[str, Any]:
            if inbox:
                return inbox.pop(0)
            await closed.wait()
            return {"type": "websocket.disconnect", "code": 1006}

        async def send(message: dict[str, Any]) -> None:
            nonlocal sent
            sent += 1  # like hypercorn once the connection is closed: no await at all
            if sent == 100:
                closed.set()  # the reader can now learn that the client has gone...
            if sent > 100_000:  # ...unless the writer never lets it run (a finite failure)
                raise RuntimeError("the writer spun without a checkpoint")

        scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
        with trio.fail_after(WAIT):
            await app(scope, receive, send)
        assert 100 <= sent < 200

    async def test_disconnect_inside_the_nursery_tasks_is_a_normal_end(self) -> None:
        """WebSocketDisconnect raised in a task of open_nursery does not surface as an error."""
        app = App()
        finished = trio.Event()

        async def reader(websocket: WebSocket) -> None:
            await websocket.receive()  # raises WebSocketDisconnect when the client leaves

        @app.websocket("/ws")
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()
            async with websocket.open_nursery() as nursery:
                nursery.start_soon(reader, websocket)
                nursery.start_soon(trio.sleep_forever)
            finished.set()

        with recording("triobg.error") as log:
            async with TestClient(app) as client:
                async with client.websocket_connect("/ws"):
                    pass
                with trio.fail_after(WAIT):
                    await finished.wait()
        assert log.messages() == []

    async def test_background_tasks_run_after_the_socket_closes(self) -> None:
        """Tasks added during the session start only once it has closed, in order."""
        app = App()
        events: list[str] = []

        async def record(what: str) -> None:
            events.append(what)

        @app.websocket("/ws")
        async def handler(websocket: WebSocket, tasks: BackgroundTasks) -> None:
            await websocket.accept()
            async for message in websocket.iter_text():
                tasks.add_task(record, f"task {message}")
                events.append(f"got {message}")

        async with TestClient(app) as client:
            async with client.websocket_connect("/ws") as ws:
                await ws.send_text("a")
                await ws.send_text("b")
            with trio.fail_after(WAIT):
                await client.wait_background()
        assert events == ["got a", "got b", "task a", "task b"]
        assert_books_balance(app)


class TestShutdown:
    async def test_drain_closes_open_sockets_with_1001_and_names_them(self) -> None:
        """When the drain begins each open socket is closed with 1001, named, tasks still run."""
        app = App()
        ran: list[str] = []

        async def note() -> None:
            ran.append("task")

        @app.websocket("/feed/{name}")
        async def feed(websocket: WebSocket, name: str, tasks: BackgroundTasks) -> None:
            await websocket.accept()
            tasks.add_task(note)
            await websocket.send_text("ready")
            await trio.sleep_forever()

        with recording("triobg.websocket") as log:
            async with TestClient(app) as client:
                async with client.websocket_connect("/feed/a") as ws:
                    assert await ws.receive_text() == "ready"
                    assert app.websockets.statistics().open == 1
                    app.background.begin_drain()
                    with trio.fail_after(WAIT):
                        assert await ws.wait_closed() == 1001
                    with pytest.raises(WebSocketDenied) as late:
                        async with client.websocket_connect("/feed/b"):
                            pass
                with trio.fail_after(WAIT):
                    await client.wait_background()
        assert late.value.status_code == 503
        assert log.matching(
            r"WebSocket /feed/a \(.*feed, client 127.0.0.1:50000\) closed with 1001"
        )
        assert ran == ["task"]
        assert app.websockets.statistics().going_away == 1

    async def test_leaving_the_test_client_closes_a_forgotten_socket(self) -> None:
        """A socket still open when the TestClient closes is closed with 1001, not left hanging."""
        app = App()
        codes: list[int | None] = []

        @app.websocket("/ws")
        async def handler(websocket: WebSocket) -> None:
            await websocket.accept()
            try:
                await trio.sleep_forever()
            finally:
                codes.append(websocket.close_code)

        with trio.fail_after(WAIT):
            async with contextlib.AsyncExitStack() as stack:
                async with TestClient(app) as client:
                    ws = await stack.enter_async_context(client.websocket_connect("/ws"))
                assert await ws.wait_closed() == 1001
        assert codes == [None]  # the handler was cancelled first, then the socket closed
        assert app.websockets.statistics().going_away == 1
