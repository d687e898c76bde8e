# Sub-applications: ``app.mount("/static", StaticFiles(...))``, ``app.mount("/v2", other_app)``.
#
# Where it sits: before the pipeline. ``App`` looks at its mounts first; a request whose path
# lies under a mount's prefix goes, whole, to the mounted ASGI app (which may be another triobg
# ``App``), with the scope the ASGI spec asks for: ``root_path`` extended by the prefix, and
# ``path``/``raw_path`` left as the full path (the mounted app routes on what lies below its
# root path; see ``_url.split_root``). Everything else reaches the parent's routes.
#
# Lifespans: the parent's lifespan starts each mounted app's lifespan after its own startup and
# stops them (last mounted first) before its own shutdown, so a mounted triobg app drains its
# background tasks and runs its own ``lifespan`` as if it were served alone. A mounted app that
# fails to start fails the parent's startup, with the mount named; one that does not speak the
# lifespan protocol (returns or raises at once) is left alone, as the spec tells servers to do.
from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import attrs
import trio

from ._url import PATH_SAFE

logger = logging.getLogger("triobg.lifespan")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


class NoMatchFound(LookupError):
    """``url_for``/``url_path_for`` found no route of that name taking those parameters."""


@attrs.frozen
class Mount:
    """An ASGI app served under a path prefix, as ``app.mount`` declares it.

    Attributes:
        path: The prefix, such as ``/static`` (no trailing ``/``).
        app: The mounted ASGI app.
        name: The name ``url_for`` knows it by (``"static:..."``), if any.
        state: What the mounted app's lifespan published (ASGI ``state``); it is added to the
            ``state`` of each request that reaches the mount.
    """

    path: str
    app: ASGIApp
    name: str | None = None
    state: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    def child_scope(self, scope: dict[str, Any], below: str) -> dict[str, Any]:
        """The scope the mounted app sees for a request to ``below`` (its path in the parent).

        ``root_path`` gains the prefix; ``path`` and ``raw_path`` are the full path from the
        site's root (the parent's root path put back in front if the server had taken it out).
        """
        root = scope.get("root_path") or ""
        child = dict(scope)
        child["root_path"] = root + self.path
        path: str = scope["path"]
        if root and root + below != path:
            # The server took the root path out of ``path``: put it back, in both forms.
            child["path"] = root + below
            raw = scope.get("raw_path")
            if raw is not None:
                child["raw_path"] = quote(root, safe=PATH_SAFE).encode("latin-1") + raw
        if self.state:
            child["state"] = {**scope.get("state", {}), **self.state}
        return child


def check_mount_path(path: str) -> None:
    """Refuse a prefix that could not be matched as a whole path segment.

    Raises:
        ValueError: ``path`` does not start with ``/``, ends with ``/``, or holds a parameter.
    """
    if not path.startswith("/") or path.endswith("/") or "{" in path or "}" in path:
        raise ValueError(
            f"mount path {path!r} must start with '/', not end with '/' and hold no parameters"
        )


def find_mount(mounts: Sequence[Mount], path: str) -> Mount | None:
    """The mount whose prefix ``path`` is (``/static``) or lies under (``/static/app.css``)."""
    for mount in mounts:
        prefix = mount.path
        if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
            return mount
    return None


# --- lifespans ---------------------------------------------------------------------------------


class MountStartupFailed(Exception):
    """A mounted app reported (or raised) a failed startup; the message names the mount."""


@attrs.define
class _Child:
    """One mounted app's lifespan call, running in the parent lifespan's nursery."""

    mount: Mount
    to_child: trio.MemorySendChannel[dict[str, Any]]
    from_child: trio.MemoryReceiveChannel[dict[str, Any]]
    done: trio.Event = attrs.field(factory=trio.Event)
    received: bool = False  # the app has taken a message: it speaks the lifespan protocol
    error: Exception | None = None  # what it raised, if it did

    async def ask(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Send ``message``; the reply, or ``None`` once the app has returned without one."""
        if self.done.is_set():
            return None
        await self.to_child.send(message)
        try:
            return await self.from_child.receive()
        except trio.EndOfChannel:
            return None


async def start_mounted(
    mounts: Sequence[Mount], nursery: trio.Nursery | None, asgi: Mapping[str, Any]
) -> list[_Child]:
    """Start every mounted app's lifespan, in order; the started ones, to stop later.

    ``nursery`` runs them; it is only ``None`` when there are no mounts.

    Raises:
        MountStartupFailed: one of them failed; those started before it are stopped first.
    """
    started: list[_Child] = []
    for mount in mounts:
        assert nursery is not None
        child = _spawn(mount, nursery, asgi)
        reply = await child.ask({"type": "lifespan.startup"})
        if reply is None and child.received and child.error is not None:
            reply = {"type": "lifespan.startup.failed", "message": _describe(child.error)}
        if reply is None:
            logger.debug("the app mounted at %s does not run a lifespan", mount.path)
            continue
        if reply["type"] == "lifespan.startup.complete":
            started.append(child)
            continue
        failures = await stop_mounted(started)
        message = f"the app mounted at {mount.path} failed to start: {reply.get('message', '')}"
        if failures:
            message += "; " + "; ".join(failures)
        raise MountStartupFailed(message)
    return started


async def stop_mounted(started: Sequence[_Child]) -> list[str]:
    """Shut the started mounted apps down, last mounted first; a line for each failure."""
    failures: list[str] = []
    for child in reversed(started):
        reply = await child.ask({"type": "lifespan.shutdown"})
        if reply is None and child.error is not None:
            reply = {"type": "lifespan.shutdown.failed", "message": _describe(child.error)}
        if reply is not None and reply["type"] != "lifespan.shutdown.complete":
            line = f"the app mounted at {child.mount.path} failed to shut down: "
            line += str(reply.get("message", ""))
            logger.error("%s", line)
            failures.append(line)
        await child.to_child.aclose()
    return failures


def _spawn(mount: Mount, nursery: trio.Nursery, asgi: Mapping[str, Any]) -> _Child:
    to_child, child_inbox = trio.open_memory_channel[dict[str, Any]](math.inf)
    child_outbox, from_child = trio.open_memory_channel[dict[str, Any]](math.inf)
    child = _Child(mount, to_child, from_child)
    scope = {"type": "lifespan", "asgi": dict(asgi), "state": mount.state}

    async def receive() -> dict[str, Any]:
        try:
            message = await child_inbox.receive()
        except trio.EndOfChannel:
            # The parent has finished with it (it sent the shutdown already): nothing more.
            await trio.sleep_forever()
            raise AssertionError("unreachable") from None
        child.received = True
        return message

    async def send(message: dict[str, Any]) -> None:
        await child_outbox.send(message)

    async def run() -> None:
        try:
            await mount.app(scope, receive, send)
        except Exception as error:
            # Raised before taking a message: the spec's "this app has no lifespan". Raised
            # after: its startup or shutdown failed (``start_mounted``/``stop_mounted`` say so).
            child.error = error
            if not child.received:
                logger.debug("the app mounted at %s has no lifespan: %s", mount.path, error)
            else:
                logger.exception("the app mounted at %s raised in its lifespan", mount.path)
        finally:
            child.done.set()
            await child_outbox.aclose()

    nursery.start_soon(run, name=f"lifespan of the app mounted at {mount.path}")
    return child


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
