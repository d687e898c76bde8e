# A live server for end-to-end tests: the app on ``triobg.serve`` (real hypercorn, real
# sockets) on 127.0.0.1 with a free port, inside the test's own trio run.
#
# Where it sits: the in-process ``TestClient`` (``_client.py``) drives the ASGI app directly;
# this runs the whole stack instead, so tests see what hypercorn does to background tasks,
# keep-alive, uploads and shutdown. Talk to it with ``HTTP11Connection`` (``_http11.py``).
from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, final

import attrs
import trio

from .._serve import serve
from ._http11 import HTTP11Connection

if TYPE_CHECKING:
    from .._app import App


@final
@attrs.define(eq=False)
class LiveServer:
    """A running server, as yielded by ``serve_live``.

    Attributes:
        app: The app being served.
        url: ``"http://127.0.0.1:PORT"``.
        host: ``"127.0.0.1"``.
        port: The port the server listens on.
    """

    app: App
    url: str
    host: str
    port: int
    _stop: trio.Event
    _stopped: trio.Event

    async def connect(self, *, timeout: float = 10.0) -> HTTP11Connection:
        """Open a new HTTP/1.1 connection to the server."""
        return await HTTP11Connection.connect(self.host, self.port, timeout=timeout)

    def begin_shutdown(self) -> None:
        """Start the graceful shutdown (as ``shutdown_trigger`` returning would) and return."""
        self._stop.set()

    async def shutdown(self) -> None:
        """Shut down gracefully and wait until the server has stopped.

        In-flight requests finish, background tasks get the app's ``drain_timeout``, the
        lifespan shutdown runs; then this returns.
        """
        self._stop.set()
        await self._stopped.wait()

    @property
    def stopped(self) -> bool:
        """Whether ``serve`` has returned."""
        return self._stopped.is_set()


@asynccontextmanager
async def serve_live(app: App, **serve_kwargs: Any) -> AsyncIterator[LiveServer]:
    """Run ``app`` with ``triobg.serve`` on 127.0.0.1 and a free port for the block's duration.

    ::

        async with serve_live(app) as server:
            async with await server.connect() as conn:
                response = await conn.request("GET", "/")

    Leaving the block normally shuts the server down gracefully, which waits for background
    tasks up to the app's ``drain_timeout``: a test leaves with its statistics settled. Leaving
    with an exception cancels the server at once (the tasks cut off are named in the log).

    Args:
        app: The app to serve.
        serve_kwargs: Passed on to ``triobg.serve`` (``bind`` defaults to ``127.0.0.1:0``).
    """
    serve_kwargs.setdefault("bind", "127.0.0.1:0")
    stop = trio.Event()
    stopped = trio.Event()

    async def run(task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve(app, shutdown_trigger=stop.wait, task_status=task_status, **serve_kwargs)
        finally:
            stopped.set()

    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(functools.partial(run))
        url = next((u for u in urls if u.startswith("http://")), urls[0])
        host, _, port = url.partition("://")[2].rpartition(":")
        server = LiveServer(app, url, host.strip("[]"), int(port), stop, stopped)
        try:
            yield server
        except BaseException as error:
            # Carried out of the nursery and re-raised as itself: a test expecting
            # ``AssertionError`` should not get an ``ExceptionGroup``.
            failure = error
            nursery.cancel_scope.cancel()
        else:
            stop.set()
    if failure is not None:
        raise failure
