# Server-Sent Events: a streaming response that writes ``text/event-stream`` frames.
#
# Where it sits: a handler returns an ``EventSourceResponse`` over an async iterable of events;
# the pipeline sends it like any ``StreamingResponse`` (whose ``_send`` watches ``receive`` for
# the client's disconnect and cancels the stream). This module only adds the framing (``event:``,
# ``id:``, ``retry:``, one ``data:`` line per line of data), the headers that stop caches and
# proxies from holding events back, and a keep-alive comment when the source is idle.
#
# The source runs in its own task, feeding the sender through an unbuffered channel: the sender
# can then wait "for the next event, or the keep-alive interval" without ever cancelling the
# source half-way through an ``await``. Both tasks live in the response's nursery, so a client
# leaving cancels the source (and closes the generator) as soon as the server reports it.
from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterable, Mapping
from typing import TYPE_CHECKING, Any, final

import attrs
import trio

from ._encode import dump_json
from ._responses import Send, StreamingResponse

if TYPE_CHECKING:
    from ._background import BackgroundTasks

#: Seconds without an event after which a comment line is sent, so that proxies and browsers
#: do not take the idle connection for a dead one (many proxies cut at 30 to 60 s).
DEFAULT_PING_INTERVAL = 15.0


def _single_line(name: str, value: str | None) -> str | None:
    if value is not None and ("\n" in value or "\r" in value or "\0" in value):
        raise ValueError(f"a Server-Sent Event's {name} cannot contain CR, LF or NUL: {value!r}")
    return value


@final
@attrs.frozen
class ServerSentEvent:
    """One event of an ``EventSourceResponse``.

    Attributes:
        data: ``str`` is sent as it is (one ``data:`` line per line); anything else as JSON.
        event: The event type (the browser's ``addEventListener`` name); default ``message``.
        id: Sets the browser's ``lastEventId``, sent back as ``Last-Event-ID`` on reconnect.
        retry: Milliseconds the browser should wait before reconnecting.
        comment: A comment line (ignored by browsers; useful for debugging).
    """

    data: Any = None
    event: str | None = attrs.field(default=None, kw_only=True)
    id: str | None = attrs.field(default=None, kw_only=True)
    retry: int | None = attrs.field(default=None, kw_only=True)
    comment: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        _single_line("event", self.event)
        _single_line("id", self.id)
        if self.retry is not None and (not isinstance(self.retry, int) or self.retry < 0):
            raise ValueError(f"retry must be a whole number of milliseconds >= 0: {self.retry!r}")

    def encode(self) -> bytes:
        """The event as it goes on the wire, ending with the blank line that dispatches it."""
        lines: list[str] = []
        if self.comment is not None:
            lines.extend(f": {line}" for line in self.comment.splitlines() or [""])
        if self.event is not None:
            lines.append(f"event: {self.event}")
        if self.id is not None:
            lines.append(f"id: {self.id}")
        if self.retry is not None:
            lines.append(f"retry: {self.retry}")
        if self.data is not None:
            text = self.data if isinstance(self.data, str) else dump_json(self.data).decode()
            # ``splitlines`` also splits on CR alone, which the SSE parser treats as a line end.
            lines.extend(f"data: {line}" for line in text.splitlines() or [""])
        return ("\n".join(lines) + "\n\n").encode("utf-8")


_PING = b": ping\n\n"


class EventSourceResponse(StreamingResponse):
    """A ``text/event-stream`` response fed by an async iterable.

    Each item is a ``ServerSentEvent``, or data for one (a ``str``, or any JSON value). The
    iterable is closed when the client disconnects, within a moment of the server noticing.

    Args:
        content: The events, usually an async generator.
        ping_interval: Seconds of silence after which a ``: ping`` comment is sent (``None``:
            never).
        status_code, headers, background: As for ``Response``.
    """

    def __init__(
        self,
        content: AsyncIterable[Any],
        *,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTasks | None = None,
    ) -> None:
        if not isinstance(content, AsyncIterable):
            raise TypeError("EventSourceResponse needs an async iterable of events")
        if ping_interval is not None and (not ping_interval > 0 or math.isnan(ping_interval)):
            raise ValueError("ping_interval must be a number of seconds > 0, or None")
        self.ping_interval = ping_interval
        self._events = content
        extra = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        extra.update(headers or {})
        super().__init__(
            content, status_code, extra, "text/event-stream; charset=utf-8", background
        )

    async def _send_chunks(self, send: Send) -> None:
        interval = self.ping_interval if self.ping_interval is not None else math.inf
        to_sender, from_source = trio.open_memory_channel[bytes](0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._produce, to_sender)
            async with from_source:
                while True:
                    with trio.move_on_after(interval) as idle:
                        try:
                            frame = await from_source.receive()
                        except trio.EndOfChannel:
                            break
                    if idle.cancelled_caught:
                        frame = _PING
                    await send({"type": "http.response.body", "body": frame, "more_body": True})

    async def _produce(self, to_sender: trio.MemorySendChannel[bytes]) -> None:
        source = self._events
        async with to_sender:
            try:
                async for item in source:
                    event = item if isinstance(item, ServerSentEvent) else ServerSentEvent(item)
                    await to_sender.send(event.encode())
            finally:
                # A generator cut off (client gone, shutdown) is closed now, not by the GC.
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    with trio.move_on_after(1.0, shield=True), contextlib.suppress(Exception):
                        await aclose()
