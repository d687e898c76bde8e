# The server side of the ASGI lifespan protocol: start the app before the first connection, shut
# it down after the last.
#
# Where it sits: ``serve_native`` (``_serve.py``) runs ``Lifespan.run`` in its outer nursery and
# waits for ``startup``; after the connections are gone it calls ``shutdown``. The app's side
# (``triobg/_lifespan.py`` for a triobg app) enters and exits the user's lifespan context.
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio
from hypercorn.utils import LifespanFailureError

if TYPE_CHECKING:
    from ._connection import ASGIApp

logger = logging.getLogger("triobg.server")


class Lifespan:
    """Drives one app's lifespan: ``startup`` once, ``shutdown`` once.

    An app that raises on the lifespan scope before completing startup is taken not to speak
    the protocol (as hypercorn and uvicorn do) and is served anyway.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._started = trio.Event()
        self._shutdown_asked = trio.Event()
        self._finished = trio.Event()
        self._startup_given = False
        self._failure: tuple[str, str] | None = None
        self._supported = True

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Call the app with the lifespan scope; ``task_status.started`` once startup is over.

        Raises:
            LifespanFailureError: the app reported its startup failed.
        """
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._call, scope)
            await self._started.wait()
            if self._failure is not None and self._failure[0] == "startup":
                nursery.cancel_scope.cancel()
            else:
                task_status.started()
        if self._failure is not None and self._failure[0] == "startup":
            raise LifespanFailureError(*self._failure)  # alone, not in the nursery's group

    async def _call(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except Exception:
            if self._started.is_set():
                logger.exception("the app's lifespan raised")
            else:
                self._supported = False
                logger.warning("the app does not support the ASGI lifespan", exc_info=True)
        finally:
            self._started.set()
            self._finished.set()

    async def _receive(self) -> dict[str, Any]:
        if not self._startup_given:
            self._startup_given = True
            await trio.lowlevel.checkpoint()
            return {"type": "lifespan.startup"}
        await self._shutdown_asked.wait()
        return {"type": "lifespan.shutdown"}

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self._started.set()
        elif kind in ("lifespan.startup.failed", "lifespan.shutdown.failed"):
            stage = kind.split(".")[1]
            self._failure = (stage, message.get("message", ""))
            if stage == "startup":
                self._started.set()
        await trio.lowlevel.checkpoint()

    async def shutdown(self, timeout: float) -> None:
        """Ask the app to shut down and wait for it, at most ``timeout`` seconds.

        Raises:
            LifespanFailureError: the app reported its shutdown failed.
        """
        if not self._supported or self._finished.is_set():
            return
        self._shutdown_asked.set()
        with trio.move_on_after(timeout) as scope:
            await self._finished.wait()
        if scope.cancelled_caught:
            logger.error("the app's lifespan shutdown took longer than %.1f s", timeout)
        if self._failure is not None and self._failure[0] == "shutdown":
            raise LifespanFailureError(*self._failure)
