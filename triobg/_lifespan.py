# The ASGI lifespan protocol: run the app's ``lifespan`` context and drain tasks at shutdown.
#
# Servers (hypercorn, ``triobg.serve``, the test client) call the app once with a ``lifespan``
# scope. Startup enters the user's async context manager and publishes what it yields as
# ``app.state`` and ``request.state``; shutdown first drains the app's background tasks (each one
# cut off by the deadline is named in the log) and then exits the context manager, so tasks can
# still use what the lifespan set up.
from __future__ import annotations

import contextlib
import logging
import typing
from collections.abc import Mapping
from typing import Any

import trio

from ._logging import ensure_visible
from ._mount import MountStartupFailed, start_mounted, stop_mounted
from ._signals import guard_runner_sigterm

if typing.TYPE_CHECKING:
    from ._app import App
    from ._requests import Receive
    from ._responses import Send

logger = logging.getLogger("triobg.lifespan")


async def handle_lifespan(app: App, scope: dict[str, Any], receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "lifespan.startup":
        await trio.lowlevel.checkpoint()
        return
    app.background._reset_drain()
    manager = app.lifespan(app) if app.lifespan is not None else None
    try:
        state = _check_state(await manager.__aenter__() if manager is not None else None)
    except Exception as error:
        logger.exception("startup failed")
        await send(
            {"type": "lifespan.startup.failed", "message": f"{type(error).__name__}: {error}"}
        )
        # Never hand control back without a checkpoint: hypercorn's trio worker crashes if the
        # lifespan call returns before yielding to the scheduler.
        await trio.lowlevel.checkpoint()
        return
    if state:
        app.state._data.update(state)
        scope.setdefault("state", {}).update(state)
    started = False
    # The mounted apps' lifespans run in a nursery, inside the app's own lifespan (an app
    # without mounts opens none, so its shutdown path is what it always was).
    owner: contextlib.AbstractAsyncContextManager[trio.Nursery | None] = (
        trio.open_nursery() if app._mounts else contextlib.nullcontext()
    )
    async with owner as nursery:
        try:
            mounted = await start_mounted(app._mounts, nursery, scope.get("asgi") or {})
        except MountStartupFailed as error:
            logger.error("startup failed: %s", error)  # noqa: TRY400 (the mount logged its traceback)
            failure_message = str(error)
        else:
            started = True
            # After the user's startup, which may configure logging or signals of its own.
            ensure_visible()
            guard_runner_sigterm()
            await send({"type": "lifespan.startup.complete"})
            await app.tasks._serve_until(receive)  # lifespan.shutdown; durable tasks run till then
            failures = await stop_mounted(mounted)
        if nursery is not None:  # a mounted app still waiting for a message: none will come
            nursery.cancel_scope.cancel()
    if not started:
        if manager is not None:
            try:
                await manager.__aexit__(None, None, None)
            except Exception:
                logger.exception("shutdown after the failed startup failed")
        await send({"type": "lifespan.startup.failed", "message": failure_message})
        await trio.lowlevel.checkpoint()
        return
    try:
        await app.background.drain()
    finally:
        if manager is not None:
            try:
                await manager.__aexit__(None, None, None)
            except Exception as error:
                logger.exception("shutdown failed")
                failures.append(f"{type(error).__name__}: {error}")
    if failures:
        await send({"type": "lifespan.shutdown.failed", "message": "; ".join(failures)})
    else:
        await send({"type": "lifespan.shutdown.complete"})
    await trio.lowlevel.checkpoint()


def _check_state(state: Any) -> Mapping[str, Any] | None:
    if state is not None and not isinstance(state, Mapping):
        raise TypeError(f"the lifespan must yield a mapping (or nothing), not {state!r}")
    return state
