# In-process ASGI driver: calls an app directly under trio with hand-made scope, receive and send.
#
# Used by the in-process and scale benchmarks. No sockets and no server, so what is timed is the
# framework's own dispatch: routing, parameters, dependencies, the response, the background tasks.
# The driver does what a server would do (lifespan, a fresh scope per request, a body that is read
# once, a disconnect only after the reply) and nothing else, identically for every app.
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from benchmarks._types import ASGIApp, Message, Scope
from benchmarks.apps import _work

EMAIL = "user@example.com"
SEED_PATH = f"/send-notification/{EMAIL}"
SEED_QUERY = b"q=benchmark"
#: Tasks one seed request with ``q`` adds: ``write_log`` from the dependency, then
#: ``write_notification`` from the handler.
TASKS_WITH_QUERY = 2
TASKS_WITHOUT_QUERY = 1
#: Seconds the lifespan handshake, or waiting for background tasks, may take before we give up.
HANDSHAKE_TIMEOUT = 10.0
_ASGI = {"version": "3.0", "spec_version": "2.3"}


class DispatchError(Exception):
    """An app answered the seed request with something other than 200."""


def make_scope(path: str = SEED_PATH, query: bytes = SEED_QUERY, method: str = "POST") -> Scope:
    """A request scope as hypercorn would build it for ``method path?query`` over HTTP/1.1."""
    return {
        "type": "http",
        "asgi": _ASGI,
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-length", b"0")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


@attrs.define
class Exchange:
    """One request's ``receive`` and ``send``: an empty body in, the reply recorded.

    Attributes:
        answered: Set when the last body chunk of the reply has been sent, which is the moment a
            client would see the response; background tasks may still be running then.
        status: The reply's status code, once started.
    """

    answered: trio.Event = attrs.field(factory=trio.Event)
    status: int = 0
    _body_sent: bool = False

    async def receive(self) -> Message:
        """Give the empty request body once; after that, report a disconnect once answered."""
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.answered.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        """Record the status, and mark the exchange answered at the end of the body."""
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.answered.set()


def _fresh(scope: Scope) -> Scope:
    # Frameworks write into the scope (path params, app, state), so each request gets its own
    # copy, and its own "state" like hypercorn gives it.
    fresh = dict(scope)
    fresh["state"] = {}
    return fresh


async def call(app: ASGIApp, scope: Scope) -> None:
    """Run one request through ``app`` until its ASGI call returns.

    Raises:
        DispatchError: If the reply was not 200.
    """
    exchange = Exchange()
    await app(_fresh(scope), exchange.receive, exchange.send)
    if exchange.status != 200:
        raise DispatchError(f"status {exchange.status} for {scope['method']} {scope['path']}")


async def call_soon(app: ASGIApp, scope: Scope, nursery: trio.Nursery) -> None:
    """Start one request in ``nursery`` and return as soon as it is answered.

    Frameworks that run tasks inside the ASGI call (Starlette, FastAPI, bare) keep the call open
    while tasks are pending; this lets many such requests be in flight at once.
    """
    exchange = Exchange()
    nursery.start_soon(app, _fresh(scope), exchange.receive, exchange.send)
    await exchange.answered.wait()
    if exchange.status != 200:
        raise DispatchError(f"status {exchange.status} for {scope['method']} {scope['path']}")


async def wait_for_completions(target: int, timeout: float = HANDSHAKE_TIMEOUT) -> None:
    """Wait until ``target`` background tasks have finished in this process.

    Frameworks that hand tasks to a nursery return from the ASGI call before the tasks finish;
    polling (sleeping between looks, so ``def`` tasks in threads get the GIL) lets every app be
    timed "tasks included". It costs nothing when the tasks are already done.

    Raises:
        trio.TooSlowError: If the tasks have not all finished within ``timeout`` seconds.
    """
    with trio.fail_after(timeout):
        while _work.COMPLETED.value < target:  # noqa: ASYNC110 -- threads bump it, no event to await
            await trio.sleep(0.0002)


@asynccontextmanager
async def running(app: ASGIApp) -> AsyncIterator[trio.Nursery]:
    """Run ``app``'s lifespan around the block, as a server would; yields a nursery for requests.

    Raises:
        RuntimeError: If the app reports a failed startup or shutdown.
    """
    to_app, app_inbox = trio.open_memory_channel[Message](1)
    app_outbox, from_app = trio.open_memory_channel[Message](1)
    scope: dict[str, Any] = {"type": "lifespan", "asgi": _ASGI, "state": {}}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(app, scope, app_inbox.receive, app_outbox.send)
        await _handshake(to_app, from_app, "startup")
        async with trio.open_nursery() as requests:
            yield requests
            # Requests still in flight get a bounded grace period, so a stuck app cannot hang us.
            requests.cancel_scope.deadline = trio.current_time() + HANDSHAKE_TIMEOUT
        await _handshake(to_app, from_app, "shutdown")


async def _handshake(
    to_app: trio.MemorySendChannel[Message],
    from_app: trio.MemoryReceiveChannel[Message],
    phase: str,
) -> None:
    with trio.fail_after(HANDSHAKE_TIMEOUT):
        await to_app.send({"type": f"lifespan.{phase}"})
        reply = await from_app.receive()
    if reply["type"] != f"lifespan.{phase}.complete":
        raise RuntimeError(f"lifespan {phase} failed: {reply}")
