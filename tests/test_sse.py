"""Server-Sent Events: the framing, the headers, the keep-alive, and closing on disconnect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from triobg import App, EventSourceResponse, ServerSentEvent
from triobg.testing import TestClient

WAIT = 5.0


class TestFraming:
    def test_fields_and_multiline_data(self) -> None:
        """Each field on its own line, one data line per line of text, a blank line to end."""
        event = ServerSentEvent("a\nb\r\nc", event="update", id="7", retry=1500, comment="hi")
        assert event.encode() == (
            b": hi\nevent: update\nid: 7\nretry: 1500\ndata: a\ndata: b\ndata: c\n\n"
        )

    def test_non_text_data_is_json(self) -> None:
        """Anything that is not a str is sent as compact JSON."""
        assert ServerSentEvent({"n": [1, 2]}).encode() == b'data: {"n":[1,2]}\n\n'
        assert ServerSentEvent("").encode() == b"data: \n\n"

    def test_fields_that_would_break_the_stream_are_refused(self) -> None:
        """A newline in event or id, or a negative retry, is a ValueError at construction."""
        with pytest.raises(ValueError, match="event cannot contain CR, LF or NUL"):
            ServerSentEvent("x", event="a\nb")
        with pytest.raises(ValueError, match="id cannot contain"):
            ServerSentEvent("x", id="1\r")
        with pytest.raises(ValueError, match="retry"):
            ServerSentEvent("x", retry=-1)

    def test_content_must_be_async(self) -> None:
        """A plain iterable is refused: events come from an async generator."""
        with pytest.raises(TypeError, match="async iterable"):
            EventSourceResponse(["a"])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="ping_interval"):
            EventSourceResponse(_nothing(), ping_interval=0)


async def _nothing() -> AsyncIterator[Any]:
    return
    yield


class TestStreaming:
    async def test_headers_and_events_in_order(self) -> None:
        """The response is text/event-stream, uncached, unbuffered, with every event framed."""
        app = App()

        async def events() -> AsyncIterator[Any]:
            yield ServerSentEvent("first", id="1")
            yield {"second": True}
            yield "third"

        @app.get("/events")
        async def stream() -> EventSourceResponse:
            return EventSourceResponse(events())

        async with TestClient(app) as client:
            response = await client.get("/events")
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert response.content == (
            b'id: 1\ndata: first\n\ndata: {"second":true}\n\ndata: third\n\n'
        )

    async def test_idle_stream_sends_keepalive_comments(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """With nothing to send for ping_interval seconds, a comment line keeps it alive."""
        app = App()

        async def slow() -> AsyncIterator[Any]:
            await trio.sleep(35)
            yield "late"

        @app.get("/events")
        async def stream() -> EventSourceResponse:
            return EventSourceResponse(slow(), ping_interval=15)

        async with TestClient(app) as client:
            response = await client.get("/events")
        assert response.content == b": ping\n\n: ping\n\ndata: late\n\n"

    async def test_generator_is_closed_when_the_client_leaves(self) -> None:
        """The client leaving cancels the source and runs its cleanup, without waiting."""
        app = App()
        closed = trio.Event()

        async def endless() -> AsyncIterator[Any]:
            try:
                n = 0
                while True:
                    n += 1
                    yield n
                    await trio.sleep(0.001)
            finally:
                closed.set()

        @app.get("/events")
        async def stream() -> EventSourceResponse:
            return EventSourceResponse(endless())

        async with TestClient(app) as client:
            async with client.stream("GET", "/events") as response:
                chunks = response.iter_bytes()
                assert await chunks.__anext__() == b"data: 1\n\n"
            with trio.fail_after(WAIT):
                await closed.wait()
