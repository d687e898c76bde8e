# ``serve_native``: the native server's entry point, and its graceful shutdown.
#
# Where it sits: the outermost layer of the flow when triobg serves itself: listeners
# (``_listeners.py``) -> one ``HTTPConnection`` per client (``_connection.py``), each owning a
# nursery -> one task per request running the app with that request's ``receive``/``send``
# (``_cycle.py``) -> the request pipeline and its background tasks (``triobg/_pipeline.py``).
#
# What owns what: this function's nursery owns the lifespan task and the connections' nursery;
# the connections' nursery owns every connection; a connection owns its requests' tasks, and so
# their background tasks. Shutdown walks down that tree: stop accepting, start the app's drain
# (its deadline is the one clock everybody follows), close idle keep-alive connections at once,
# let busy ones finish their response and close, wait for the connections' nursery to empty,
# and cancel it at the drain deadline plus ``drain_margin`` -- the background runner names every
# task that cancellation cuts off. Then the lifespan shuts down.
from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio
from hypercorn.utils import LifespanFailureError

from ._config import ServerConfig
from ._connection import ASGIApp, ConnectionRegistry, HTTPConnection
from ._lifespan import Lifespan
from ._listeners import addresses, listener_url, open_listeners, ssl_context

logger = logging.getLogger("triobg.serve")


async def serve_native(
    app: Any,
    *,
    bind: str | Sequence[str] = "127.0.0.1:8000",
    config: ServerConfig | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    shutdown_trigger: Callable[[], Awaitable[Any]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on triobg's own HTTP/1.1 server until shut down.

    The same contract as ``triobg.serve`` on hypercorn: meant for ``nursery.start``, which
    returns the bound URLs once the sockets listen and the lifespan startup has completed;
    when ``shutdown_trigger()`` returns, shut down gracefully (see the module comment);
    cancelling the enclosing scope stops everything at once, naming the tasks cut off.

    Args:
        app: An ASGI app; a triobg ``App`` gets its drain started at shutdown.
        bind: ``"host:port"``, ``"unix:/path"`` or ``"fd://N"``, or a list of them.
        config: Limits and timeouts (``ServerConfig`` defaults when ``None``).
        certfile: PEM certificate to serve HTTPS (with ``keyfile``).
        keyfile: PEM private key for ``certfile``.
        shutdown_trigger: An async callable; when it returns, the server shuts down gracefully.
        task_status: Given by ``nursery.start``; receives the list of bound URLs.

    Raises:
        hypercorn.utils.LifespanFailureError: the app's lifespan startup (or shutdown) failed
            (the same error ``triobg.serve`` raises on hypercorn).
    """
    try:
        await _serve(
            app, bind, config or ServerConfig(), certfile, keyfile, shutdown_trigger, task_status
        )
    except BaseExceptionGroup as group:
        failure = _sole_leaf(group)
        if isinstance(failure, LifespanFailureError):
            raise failure from None
        raise


async def _serve(
    app: Any,
    bind: str | Sequence[str],
    config: ServerConfig,
    certfile: str | None,
    keyfile: str | None,
    shutdown_trigger: Callable[[], Awaitable[Any]] | None,
    task_status: trio.TaskStatus[list[str]],
) -> None:
    binds = [bind] if isinstance(bind, str) else list(bind)
    listeners: list[trio.abc.Listener[Any]] = []
    sockets = await open_listeners(binds, backlog=config.backlog, reuse_port=config.reuse_port)
    scheme = "https" if certfile else "http"
    urls = [listener_url(listener, scheme) for listener in sockets]
    if certfile:
        context = ssl_context(certfile, keyfile)
        listeners = [trio.SSLListener(s, context, https_compatible=True) for s in sockets]
    else:
        listeners = list(sockets)
    registry = ConnectionRegistry()
    lifespan = Lifespan(app)
    handler = functools.partial(_handle, app, config, registry, scheme)
    try:
        async with trio.open_nursery() as outer:
            await outer.start(lifespan.run)
            registry.lifespan_state = lifespan.state
            async with trio.open_nursery() as connections:
                async with trio.open_nursery() as accepting:
                    for listener in listeners:
                        accepting.start_soon(
                            functools.partial(
                                trio.serve_listeners,
                                handler,
                                [listener],
                                handler_nursery=connections,
                            )
                        )
                    task_status.started(urls)
                    if shutdown_trigger is None:
                        await trio.sleep_forever()
                    else:
                        await shutdown_trigger()
                    accepting.cancel_scope.cancel()
                for listener in listeners:
                    await listener.aclose()
                deadline = _begin_drain(app, config) + config.drain_margin
                if config.graceful_timeout is not None:
                    deadline = trio.current_time() + config.graceful_timeout
                registry.begin_shutdown()
                connections.cancel_scope.deadline = deadline
            if connections.cancel_scope.cancelled_caught:
                logger.warning(
                    "shutdown: connections still busy at the drain deadline were cancelled"
                )
            await lifespan.shutdown(config.lifespan_timeout)
            outer.cancel_scope.cancel()
    finally:
        for listener in listeners:
            with trio.CancelScope(shield=True):
                await listener.aclose()


async def serve_with_options(
    app: Any,
    *,
    bind: str | Sequence[str],
    keep_alive_timeout: float | None,
    graceful_timeout: float | None,
    shutdown_timeout: float | None,
    send_timeout: float | None,
    certfile: str | None,
    keyfile: str | None,
    access_log: bool | None,
    shutdown_trigger: Callable[[], Awaitable[Any]] | None,
    config: ServerConfig | None,
    task_status: trio.TaskStatus[list[str]],
) -> None:
    """``serve_native`` with ``triobg.serve``'s hypercorn-style options laid over ``config``."""
    changes: dict[str, Any] = {"send_timeout": send_timeout}
    if keep_alive_timeout is not None:
        changes["keep_alive_timeout"] = keep_alive_timeout
    if graceful_timeout is not None:
        changes["graceful_timeout"] = graceful_timeout
    if shutdown_timeout is not None:
        changes["lifespan_timeout"] = shutdown_timeout
    if access_log is not None:
        changes["access_log"] = access_log
    await serve_native(
        app,
        bind=bind,
        config=attrs.evolve(config or ServerConfig(), **changes),
        certfile=certfile,
        keyfile=keyfile,
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )


def _begin_drain(app: Any, config: ServerConfig) -> float:
    background = getattr(app, "background", None)
    if background is None:
        deadline: float = trio.current_time() + 30.0
        logger.info("shutting down: connections have 30.0 s to finish")
        return deadline
    deadline = background.begin_drain()
    logger.info(
        "shutting down: background tasks have %.1f s to finish", deadline - trio.current_time()
    )
    return deadline


async def _handle(
    app: ASGIApp,
    config: ServerConfig,
    registry: ConnectionRegistry,
    scheme: str,
    stream: trio.abc.Stream,
) -> None:
    try:
        client, server = addresses(stream)
    except OSError:
        await trio.aclose_forcefully(stream)
        return
    connection = HTTPConnection(
        app, stream, config, registry, scheme=scheme, client=client, server=server
    )
    await connection.run()


def _sole_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    while len(group.exceptions) == 1:
        inner = group.exceptions[0]
        if not isinstance(inner, BaseExceptionGroup):
            return inner
        group = inner
    return None
