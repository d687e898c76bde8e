"""Helpers shared by the hardening tests (``test_fuzz``, ``test_soak``, ``test_faults``,
``test_security``): a direct ASGI call, the background books, and a log recorder.

``call_asgi`` drives the app the way a server does, minus the sockets: one ASGI call whose
``receive`` hands over the body and then reports a disconnect only once the response is
complete. It returns after the app has returned, so the request's background tasks have run.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import attrs
import trio

from triobg import App

WAIT = 5.0  # seconds any single request or network step may take before the test fails

# What must never reach a client: a traceback, a source location, an object address, the names
# of triobg's or its dependencies' internals.
LEAK_MARKERS = (
    "Traceback",
    'File "',
    "site-packages",
    "triobg.",
    "triobg/",
    "_pipeline",
    "_dependencies",
    "cattrs",
    "ClassValidationError",
    "IterableValidationError",
    " object at 0x",
    "<function ",
    "<class ",
)


@attrs.frozen
class Answer:
    """What a client would have received for one ASGI call."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode()
        return next((v.decode("latin-1") for k, v in self.headers if k == wanted), None)

    def json(self) -> Any:
        return json.loads(self.body)


async def call_asgi(
    app: App,
    method: str,
    path: str,
    *,
    raw_path: bytes | None = None,
    query: bytes = b"",
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes | Sequence[bytes] = b"",
    timeout: float = WAIT,
) -> Answer:
    """One request straight into the app's ASGI entry; fails if it takes over ``timeout``.

    ``body`` as a sequence is delivered as that many ``http.request`` messages (a chunked
    upload).
    """
    chunks = [body] if isinstance(body, bytes) else list(body)
    if not chunks:
        chunks = [b""]
    pending = list(chunks)
    done = trio.Event()
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if done.is_set():
            raise AssertionError(f"{message['type']} sent after the response was complete")
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode("utf-8", "surrogateescape"),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    with trio.fail_after(timeout):
        await app(scope, receive, send)
    assert messages and messages[0]["type"] == "http.response.start", messages
    assert done.is_set(), "the app returned without completing its response"
    start = messages[0]
    return Answer(
        int(start["status"]),
        tuple((bytes(k), bytes(v)) for k, v in start.get("headers", [])),
        b"".join(bytes(m.get("body", b"")) for m in messages[1:]),
    )


def assert_no_leak(body: bytes, *, sent: str = "") -> None:
    """The body carries none of ``LEAK_MARKERS`` (unless the client itself sent that text)."""
    text = body.decode("utf-8", errors="replace")
    for marker in LEAK_MARKERS:
        if marker not in sent:
            assert marker not in text, f"{marker!r} leaked in {text[:500]!r}"


def assert_says_what_was_wrong(answer: Answer) -> None:
    """A 4xx body is ``{"detail": ...}`` with a non-empty detail (each item with a message)."""
    assert 400 <= answer.status < 500, answer
    payload = answer.json()
    detail = payload["detail"]
    assert detail, payload
    if isinstance(detail, list):
        for item in detail:
            assert item["msg"] and item["loc"] and item["type"], payload


def assert_books_balance(app: App) -> None:
    """Every accepted task is in exactly one final column, and nothing is left in flight."""
    stats = app.background.statistics()
    assert stats.queued == stats.running == stats.live_requests == 0, stats
    assert stats.accepted == stats.completed + stats.failed + stats.cancelled + stats.discarded


class LogRecorder(logging.Handler):
    """Keeps the records of one logger tree; usable where pytest's ``caplog`` is not (inside
    Hypothesis examples) and able to wait for a line instead of sleeping."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, name: str = "") -> list[str]:
        return [r.getMessage() for r in self.records if r.name.startswith(name)]

    def matching(self, pattern: str, name: str = "") -> list[str]:
        regex = re.compile(pattern)
        return [m for m in self.messages(name) if regex.search(m)]

    async def wait_for(self, pattern: str, *, timeout: float = WAIT) -> str:
        """Wait (polling each scheduler tick, never sleeping blindly) for a matching line."""
        with trio.fail_after(timeout):
            while True:
                found = self.matching(pattern)
                if found:
                    return found[0]
                await trio.sleep(0.005)


@contextmanager
def recording(name: str = "triobg", level: int = logging.INFO) -> Iterator[LogRecorder]:
    """Record what logger ``name`` (and its children) logs at ``level`` and above."""
    logger = logging.getLogger(name)
    recorder = LogRecorder()
    old_level = logger.level
    logger.addHandler(recorder)
    logger.setLevel(level)
    try:
        yield recorder
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(old_level)


def rss_kib() -> int:
    """This process's resident set size in KiB, from ``/proc/self/status``."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


@attrs.define
class LeavingClient:
    """A client that sends an empty request, then leaves once the first body chunk has come.

    Its ``send`` yields once per body message (a slow network), so the disconnect reaches the
    app while it is still sending; ``bodies`` holds what arrived.
    """

    bodies: list[bytes] = attrs.Factory(list)
    first_chunk: trio.Event = attrs.Factory(trio.Event)
    asked: int = 0

    async def receive(self) -> dict[str, Any]:
        self.asked += 1
        if self.asked == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.first_chunk.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            self.bodies.append(bytes(message["body"]))
            self.first_chunk.set()
            await trio.lowlevel.checkpoint()
