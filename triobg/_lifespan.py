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
    try:
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
                # Until lifespan.shutdown; durable tasks run till then.
                await app.tasks._serve_until(receive)
                failures = await stop_mounted(mounted)
            if nursery is not None:  # a mounted app still waiting for a message: none will come
                nursery.cancel_scope.cancel()
    except BaseException as interrupted:
        # Cancelled before shutdown (a server's deadline, or a test leaving its client with an
        # exception): the user's context must still be exited, with the cancellation, or its
        # generator is left to the garbage collector, its cleanup never run (a ResourceWarning).
        if manager is not None:
            await _exit_interrupted(manager, interrupted)
        raise
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


async def _exit_interrupted(
    manager: contextlib.AbstractAsyncContextManager[Any], error: BaseException
) -> None:
    """Exit the user's lifespan context with ``error``, which goes on propagating anyway.

    Its cleanup runs inside the cancelled scope, as any trio code being cancelled does: an
    ``await`` there needs a shielded scope of its own. A cleanup that fails is logged.
    """
    # A nursery (the mounts') wraps a cancellation in a group: show the context the
    # ``Cancelled`` itself, as an ``async with`` around the same code would see it.
    if isinstance(error, BaseExceptionGroup) and error.split(trio.Cancelled)[1] is None:
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
    try:
        await manager.__aexit__(type(error), error, error.__traceback__)
    except Exception:
        logger.exception("shutdown after the lifespan was interrupted failed")


def _check_state(state: Any) -> Mapping[str, Any] | None:
    if state is not None and not isinstance(state, Mapping):
        raise TypeError(f"the lifespan must yield a mapping (or nothing), not {state!r}")
    return state
