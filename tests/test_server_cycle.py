"""The native server's ASGI adapter, driven by feeding bytes: body messages, ``100 Continue``,
chunked bodies both ways, HEAD, refused bodies, and apps that misbehave."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from _wire import WAIT, connection, echo_scope_app, request

from triobg import App, Request, StreamingResponse


def upload_app(limit: int = 1000) -> App:
    app = App(max_body_size=limit)

    @app.post("/upload")
    async def upload(request: Request) -> int:
        return len(await request.body())

    return app


class TestRequestBody:
    async def test_chunked_body_arrives_whole(self) -> None:
        """A chunked upload reaches the app as its bytes, ``more_body`` ending it."""
        app, _ = echo_scope_app()
        with trio.fail_after(WAIT):
            async with connection(app) as wire:
                await wire.send(
                    request("POST", "/", transfer_encoding="chunked")
                    + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                )
                (response,) = await wire.read_responses(1)
        assert response.body == b"hello world"

    async def test_body_in_pieces_gives_more_body_messages(self) -> None:
        """Bytes that arrive later come as further ``http.request`` messages."""
        messages: list[dict[str, Any]] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            while True:
                message = await receive()
                messages.append(message)
                if not message.get("more_body"):
                    break
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body"})

        with trio.fail_after(WAIT):
            async with connection(app) as wire:
                await wire.send(request("POST", "/", content_length="6") + b"abc")
                await trio.testing.wait_all_tasks_blocked()
                await wire.send(b"def")
                (response,) = await wire.read_responses(1)
        assert response.status == 204
        assert messages == [
            {"type": "http.request", "body": b"abc", "more_body": True},
            {"type": "http.request", "body": b"def", "more_body": False},
        ]

    async def test_receive_after_the_response_is_a_disconnect(self) -> None:
        """ASGI: once the response is complete, ``receive`` says ``http.disconnect`` at once."""
        seen: list[dict[str, Any]] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            seen.append(await receive())

        with trio.fail_after(WAIT):
            async with connection(app) as wire:
                await wire.send(request("GET", "/"))
                await wire.read_responses(1)
                await trio.testing.wait_all_tasks_blocked()
        assert seen == [{"type": "http.disconnect"}]


class TestContinue:
    async def test_100_continue_is_sent_when_the_app_reads_the_body(self) -> None:
        """The client is invited only when the app asks for the body."""
        with trio.fail_after(WAIT):
            async with connection(upload_app()) as wire:
                await wire.send(
                    request("POST", "/upload", content_length="5", expect="100-continue")
                )
                head = await wire.client.receive_some()
                assert head.startswith(b"HTTP/1.1 100 Continue\r\n")
                await wire.send(b"hello")
                (response,) = await wire.read_responses(1)
        assert response.body == b"5"

    async def test_a_refused_body_is_never_invited_nor_read(self) -> None:
        """Over the limit by its Content-Length: 413 at once, no ``100 Continue``, closed."""
        with trio.fail_after(WAIT):
            async with connection(upload_app(limit=10)) as wire:
                await wire.send(
                    request("POST", "/upload", content_length="209715200", expect="100-continue")
                )
                data = await wire.read_all()
        assert data.startswith(b"HTTP/1.1 413 ")
        assert b" 100 " not in data.split(b"\r\n")[0]
        assert b"connection: close" in data.lower()

    @pytest.mark.parametrize("path", ["/nowhere", "/upload"])
    async def test_a_body_nobody_reads_closes_the_connection(self, path: str) -> None:
        """A 404 (or 413) answered while the body is still coming: close, read at most a
        bounded amount more."""
        app = upload_app(limit=10)
        with trio.fail_after(WAIT):
            async with connection(app) as wire:
                await wire.send(request("POST", path, transfer_encoding="chunked"))
                await wire.send(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
                (response,) = await wire.read_responses(1)
                assert response.status in (404, 413)
                assert response.headers["connection"] == "close"
                # The server discards up to ``linger_bytes`` and then closes, however much more
                # the client would send.
                assert await sent_until_closed(wire.send) <= 3 * 65536


class TestEarlyAnswer:
    async def test_an_answer_while_the_body_is_being_read_closes_cleanly(self) -> None:
        """An app that answers while one of its tasks still waits for the body: the client gets
        the answer with ``Connection: close``, the reader gets a disconnect, nothing escapes."""
        seen: list[str] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            async with trio.open_nursery() as nursery:

                async def reader() -> None:
                    while (message := await receive())["type"] != "http.disconnect":
                        pass
                    seen.append(message["type"])

                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                await send({"type": "http.response.start", "status": 202, "headers": []})
                await send({"type": "http.response.body", "body": b"early"})

        with trio.fail_after(WAIT):
            async with connection(app) as wire:
                await wire.send(request("POST", "/", content_length="1000") + b"part")
                data = await wire.read_all()
                await wire.finished.wait()
        assert data.startswith(b"HTTP/1.1 202 ")
        assert b"connection: close" in data.lower()
        assert seen == ["http.disconnect"]


async def sent_until_closed(send: Any) -> int:
    """Bytes sent, 64 KiB at a time, until the server closes (at most 10 MB)."""
    sent = 0
    while sent < 10_000_000:
        try:
            await send(b"x" * 65536)
        except trio.BrokenResourceError:
            return sent
        sent += 65536
        await trio.testing.wait_all_tasks_blocked()
    raise AssertionError("the server kept reading")


class TestResponse:
    async def test_streaming_response_is_chunked(self) -> None:
        """A response in several pieces without a length goes out chunked."""
        app = App()

        async def pieces() -> Any:
            for word in ("a", "bb", "ccc"):
                yield word

        @app.get("/stream")
        async def stream() -> StreamingResponse:
            return StreamingResponse(pieces(), media_type="text/plain")

        with trio.fail_after(WAIT):
            async with connection(app) as wire:
                await wire.send(request("GET", "/stream"))
                (response,) = await wire.read_responses(1)
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.body == b"abbccc"

    async def test_head_has_the_length_and_no_body(self) -> None:
        """HEAD on a GET route: the GET's headers, no body bytes, and the connection stays."""
        app = App()

        @app.get("/item")
        async def item() -> dict[str, int]:
            return {"id": 1}

        with trio.fail_after(WAIT):
            async with connection(app) as wire:
                await wire.send(request("HEAD", "/item") + request("GET", "/item"))
                data = b""
                while data.count(b'{"id":1}') < 1:
                    data += await wire.client.receive_some()
        head, get = data.split(b"HTTP/1.1 ")[1:]
        assert b"content-length: 8" in head
        assert head.endswith(b"\r\n\r\n")
        assert get.endswith(b'{"id":1}')

    async def test_an_app_that_raises_gets_a_500(self, caplog: pytest.LogCaptureFixture) -> None:
        """A raw ASGI app raising before its response: 500, logged, connection kept."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            raise RuntimeError("boom")

        with trio.fail_after(WAIT):
            async with connection(app) as wire:
                await wire.send(request("GET", "/a") + request("GET", "/b"))
                responses = await wire.read_responses(2)
        assert [r.status for r in responses] == [500, 500]
        assert "the app raised while serving GET /a" in caplog.text

    async def test_an_app_that_returns_without_answering_gets_a_500(self) -> None:
        """Returning without a response is answered for the app."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await trio.lowlevel.checkpoint()

        with trio.fail_after(WAIT):
            async with connection(app) as wire:
                await wire.send(request("GET", "/"))
                (response,) = await wire.read_responses(1)
        assert response.status == 500

    async def test_a_response_cut_short_closes_the_connection(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An app that returns mid-response: the client sees the connection end, not a hang."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})

        with trio.fail_after(WAIT):
            async with connection(app) as wire:
                await wire.send(request("GET", "/"))
                data = await wire.read_all()
        assert data.endswith(b"part\r\n")
        assert "returned before its response to GET / was complete" in caplog.text

    async def test_a_server_header_only_when_configured(self) -> None:
        """No ``Server`` header by default; the configured one otherwise."""
        from triobg._server._config import ServerConfig

        app, _ = echo_scope_app()
        with trio.fail_after(WAIT):
            async with connection(app) as wire:
                await wire.send(request("GET", "/"))
                (plain,) = await wire.read_responses(1)
            async with connection(app, ServerConfig(server_header="triobg")) as wire:
                await wire.send(request("GET", "/"))
                (named,) = await wire.read_responses(1)
        assert "server" not in plain.headers
        assert named.headers["server"] == "triobg"
