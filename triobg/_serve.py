# Serving an app from inside a trio program: ``triobg.serve`` on top of hypercorn's trio worker.
#
# By default ``serve`` hands over to triobg's own HTTP/1.1 server instead (``_server/``, whose
# ``_serve.py`` wires the same drain into its own shutdown); what follows is the hypercorn path.
#
# This is the outermost layer of the flow: sockets -> hypercorn (HTTP/1.1, h2, TLS) -> the app's
# ASGI entry (``_app.py``) -> the request pipeline (``_pipeline.py``) -> background tasks
# (``_background.py``). hypercorn does all the HTTP; this module only chooses its settings so
# that triobg's promises hold under it, and wires a graceful shutdown into the app's drain:
#
# * hypercorn gives in-flight connections ``graceful_timeout`` (3 s by default) once shutdown
#   starts and then cancels them. Background tasks run in the request's task, inside those
#   connections, so that default would silently cut a 30 s drain to 3 s. ``serve`` sets it to the
#   app's ``drain_timeout`` plus a small margin, which also makes hypercorn's cancellation the
#   backstop for the drain deadline, and starts the app's drain the moment shutdown begins
#   (hypercorn only runs lifespan shutdown after every connection is gone, which is too late to
#   hand out the deadline).
# * hypercorn writes to sockets inside a shielded cancel scope, so a client that stops reading
#   would hold shutdown open forever. ``serve`` bounds that with the kernel's TCP_USER_TIMEOUT
#   (Linux) on the listening sockets, which accepted connections inherit; a client that does
#   read, but slowly, is not caught by that, so once the graceful timeout is over ``serve`` shuts
#   down (``SHUT_RDWR``) every connection to its listeners that is still open, which wakes the
#   shielded write with an error (``_cut_stragglers``).
# * hypercorn never times out a read by default: a client that sends headers and then nothing
#   keeps its connection for good. ``serve`` sets a ``read_timeout``.
from __future__ import annotations

import copy
import gc
import logging
import math
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import attrs
import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.utils import LifespanFailureError

from ._server import ServerConfig
from ._server._serve import serve_with_options

if TYPE_CHECKING:
    from hypercorn.typing import Framework

    from ._app import App

#: Seconds added to the app's ``drain_timeout`` for hypercorn's ``graceful_timeout``. hypercorn
#: cancels whatever is left in its connections at ``graceful_timeout``, background tasks
#: included, so this is also the backstop that enforces the drain deadline: a task still running
#: at the deadline is cancelled (and named) at most this much later. Small, but enough for a
#: request whose task the drain did cut off to tear down and let its connection close first.
DRAIN_MARGIN = 0.25

#: Default ``send_timeout``, as nginx's: a client that takes no data for this long is dropped.
DEFAULT_SEND_TIMEOUT = 60.0

#: Default ``read_timeout``: a connection that sends nothing for this long while the server
#: waits to read is closed. As nginx's ``client_header_timeout``/``client_body_timeout`` and
#: ``proxy_read_timeout``; hypercorn also counts the time a handler takes before its response
#: starts, so a handler that needs longer than this needs a longer timeout.
DEFAULT_READ_TIMEOUT = 60.0

#: Seconds after the graceful timeout at which ``serve`` cuts connections that are still open
#: (a client reading a response slowly holds hypercorn's shielded write).
STRAGGLER_MARGIN = 1.0

logger = logging.getLogger("triobg.serve")


class _TriobgConfig(Config):
    """A hypercorn ``Config`` whose listening TCP sockets carry a send timeout.

    hypercorn creates the sockets itself inside ``hypercorn.trio.serve``, so the only place to
    set an option on them before they accept connections is ``create_sockets``.
    """

    send_timeout: float | None = None
    #: ``(family, address)`` of every listening socket created, to recognise its connections.
    listening: list[tuple[int, Any]]

    def create_sockets(self) -> Sockets:
        sockets = super().create_sockets()
        for sock in [*sockets.secure_sockets, *sockets.insecure_sockets]:
            if self.send_timeout is not None:
                _set_send_timeout(sock, self.send_timeout)
            self.listening.append((sock.family, sock.getsockname()))
        return sockets


def _set_send_timeout(sock: socket.socket, seconds: float) -> None:
    # TCP_USER_TIMEOUT: the kernel aborts a connection whose sent data stays unacknowledged (or
    # whose peer keeps a zero window) for this long. The send blocked in hypercorn's shielded
    # scope then fails with a BrokenResourceError, which hypercorn handles as a closed
    # connection. Accepted sockets inherit it from the listener. Only Linux has it.
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if option is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.IPPROTO_TCP, option, max(1, round(seconds * 1000)))


def _cut_stragglers(listening: Sequence[tuple[int, Any]]) -> int:
    """Shut down every open connection accepted on ``listening``; returns how many.

    hypercorn keeps no list of its connections that we could reach, so they are found among
    the live ``trio.SocketStream`` objects by their local address (TLS streams wrap one too).
    ``shutdown(SHUT_RDWR)`` rather than ``close``: the file descriptor stays owned by hypercorn,
    which then sees a broken connection in its pending write or read and closes it as usual.
    """
    wanted = {(family, _address_key(address)) for family, address in listening}
    wildcard_ports = {
        (family, address[1])
        for family, address in listening
        if isinstance(address, tuple) and address[0] in ("0.0.0.0", "::")
    }
    cut = 0
    for obj in gc.get_objects():
        if not isinstance(obj, trio.SocketStream):
            continue
        sock = obj.socket
        try:
            if sock.fileno() < 0:
                continue
            local = sock.getsockname()
            mine = (sock.family, _address_key(local)) in wanted or (
                isinstance(local, tuple) and (sock.family, local[1]) in wildcard_ports
            )
            if mine:
                sock.shutdown(socket.SHUT_RDWR)
                cut += 1
        except OSError:
            continue  # closed or not connected meanwhile: nothing to cut
    return cut


def _address_key(address: Any) -> Any:
    # IPv6 addresses carry flow info and scope id, which accepted sockets may report otherwise.
    return address[:2] if isinstance(address, tuple) else address


def build_config(
    app: App,
    *,
    bind: str | Sequence[str] = "127.0.0.1:8000",
    keep_alive_timeout: float | None = None,
    graceful_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    read_timeout: float | None = DEFAULT_READ_TIMEOUT,
    certfile: str | None = None,
    keyfile: str | None = None,
    access_log: bool | None = None,
    config: Config | None = None,
) -> _TriobgConfig:
    """The hypercorn configuration ``serve`` (and the CLI) runs ``app`` with.

    Starts from a copy of ``config`` when given (so hypercorn settings triobg has no argument
    for still reach hypercorn), then applies the arguments. See ``serve`` for their meaning.
    """
    result = _TriobgConfig()
    if config is not None:
        result.__dict__.update(copy.copy(config).__dict__)
        result._log = None  # the logger is built from these settings; build it again
    else:
        # A library must not install log handlers: hand hypercorn a plain logger, which
        # propagates to whatever logging the program set up.
        result.errorlog = logging.getLogger("hypercorn.error")
    result.listening = []
    if config is None or "include_server_header" not in vars(config):
        result.include_server_header = False  # no ``server: hypercorn-h11``, unless asked for
    result.bind = [bind] if isinstance(bind, str) else list(bind)
    if keep_alive_timeout is not None:
        result.keep_alive_timeout = keep_alive_timeout
    if certfile is not None:
        result.certfile = certfile
    if keyfile is not None:
        result.keyfile = keyfile
    if access_log is not None:
        result.accesslog = logging.getLogger("hypercorn.access") if access_log else None
    if graceful_timeout is None:
        # A value set on the given config on purpose is kept (hypercorn's class default is not).
        explicit = config is not None and "graceful_timeout" in vars(config)
        graceful_timeout = (
            result.graceful_timeout if explicit else app.background.drain_timeout + DRAIN_MARGIN
        )
    if not graceful_timeout >= 0 or math.isnan(graceful_timeout):
        raise ValueError("graceful_timeout must be a number of seconds >= 0")
    result.graceful_timeout = graceful_timeout
    # Lifespan shutdown runs after the connections are gone; its drain is then only a formality,
    # but the user's lifespan exit must not be cut short by a budget smaller than the drain.
    floor = graceful_timeout + 5.0
    if shutdown_timeout is not None:
        result.shutdown_timeout = shutdown_timeout
    elif config is None or "shutdown_timeout" not in vars(config):
        result.shutdown_timeout = max(result.shutdown_timeout, floor)
    result.send_timeout = send_timeout
    # hypercorn refuses a larger WebSocket message (close 1009) before assembling it in memory.
    result.websocket_max_message_size = app.websocket_limits.max_message_size
    if read_timeout is not None:
        if not read_timeout > 0 or math.isinf(read_timeout):
            raise ValueError("read_timeout must be a finite number of seconds > 0, or None")
        result.read_timeout = math.ceil(read_timeout)  # hypercorn's setting is whole seconds
    elif config is None or "read_timeout" not in vars(config):
        result.read_timeout = None
    return result


async def serve(
    app: App,
    *,
    bind: str | Sequence[str] = "127.0.0.1:8000",
    keep_alive_timeout: float | None = None,
    graceful_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    read_timeout: float | None = DEFAULT_READ_TIMEOUT,
    certfile: str | None = None,
    keyfile: str | None = None,
    access_log: bool | None = None,
    shutdown_trigger: Callable[[], Awaitable[Any]] | None = None,
    config: Config | None = None,
    server: Literal["native", "hypercorn"] | None = None,
    server_config: ServerConfig | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` over HTTP until shut down: on triobg's own HTTP/1.1 server, or on
    hypercorn's trio worker.

    Meant for ``nursery.start``: it reports the bound addresses once the sockets listen and the
    app's lifespan startup has completed, with real port numbers, so ``bind="127.0.0.1:0"``
    gives a free port::

        async with trio.open_nursery() as nursery:
            urls = await nursery.start(triobg.serve, app, bind="127.0.0.1:0")
            # urls == ["http://127.0.0.1:54321"]

    Shutting down gracefully: when ``shutdown_trigger()`` returns, the server stops accepting
    connections, lets in-flight requests finish, starts the app's background drain (every task
    gets ``app.background.drain_timeout`` from that moment, and each one still running at the
    deadline is cancelled and named in the log ``triobg.background``), runs the lifespan
    shutdown and returns. Cancelling the enclosing scope instead stops everything at once; the
    tasks cut off are named in the same log.

    Under hypercorn's own command line (``hypercorn --worker-class trio module:app``) none of
    this wiring exists: the drain only starts at lifespan shutdown, after the connections are
    gone, so hypercorn's ``--graceful-timeout`` is all the time tasks get, and its default of 3 s
    applies. Pass ``--graceful-timeout`` of at least the app's ``drain_timeout`` (whole seconds:
    hypercorn's flag only takes integers), e.g. ``--graceful-timeout 31`` for the default 30;
    tasks cut off are still named in the log. ``python -m triobg`` sets all of it for you.

    Args:
        app: The triobg application.
        bind: ``"host:port"``, ``"unix:/path"`` or ``"fd://N"``, or a list of them.
        keep_alive_timeout: Seconds an idle keep-alive connection stays open (hypercorn: 5).
        graceful_timeout: Seconds in-flight connections get after shutdown begins before
            hypercorn cancels them. Defaults to the app's ``drain_timeout`` plus a quarter
            second (``DRAIN_MARGIN``), because the background tasks live inside those
            connections: hypercorn's own default of 3 s would cut every drain to 3 s without a
            word from the drain itself.
        shutdown_timeout: Seconds the lifespan shutdown may take (default: hypercorn's 60 s, or
            more if ``graceful_timeout`` is longer).
        send_timeout: Seconds a client may leave sent data unacknowledged before its connection
            is dropped (Linux; ignored elsewhere). hypercorn writes to the socket in a shielded
            scope, so without this a client that stops reading a large response holds the
            shutdown open for as long as it likes. ``None`` leaves the kernel default (minutes
            to forever). A client that reads, only slowly, is cut off ``STRAGGLER_MARGIN``
            seconds after the graceful timeout instead, so shutdown always ends.
        read_timeout: Seconds a connection may send nothing while the server waits to read
            from it (headers, body, or the next request's bytes while a handler works) before
            it is closed; whole seconds, rounded up. ``None``: wait for ever (hypercorn's own
            default, which lets a client that sends headers and then nothing keep its
            connection indefinitely).
        certfile: PEM certificate to serve HTTPS (with ``keyfile``).
        keyfile: PEM private key for ``certfile``.
        access_log: Log each request to the ``hypercorn.access`` logger (``None``: keep what
            ``config`` says, off by default).
        shutdown_trigger: An async callable; when it returns, the server shuts down gracefully.
        config: A hypercorn ``Config`` to start from; it is copied, never modified. Arguments
            given here win over its values; ``graceful_timeout`` and ``shutdown_timeout`` set on
            it explicitly are kept (hypercorn's class defaults are not). So is
            ``include_server_header``, which triobg otherwise turns off: responses do not
            advertise the server software unless you set it to ``True`` on ``config``.
        server: ``"native"`` (triobg's own HTTP/1.1 server, see ``ServerConfig``) or
            ``"hypercorn"`` (HTTP/2 and WebSockets too). Default: native, unless a hypercorn
            ``config`` is given or the app has WebSocket routes. The options above mean the
            same on both (native: ``send_timeout`` bounds each write, ``access_log`` logs to
            ``triobg.access``, ``read_timeout`` is the wait for each piece of a request body,
            with ``None`` keeping the value of ``server_config``).
        server_config: The native server's limits and timeouts (``ServerConfig``).
        task_status: Given by ``nursery.start``; receives the list of bound URLs.

    Raises:
        hypercorn.utils.LifespanFailureError: the app's lifespan startup (or shutdown) failed;
            the app has logged why (logger ``triobg.lifespan``).
    """
    if server is None:
        # triobg's own server speaks HTTP/1.1 only: an app with WebSocket routes (or a
        # hypercorn ``config``) is served by hypercorn unless told otherwise.
        wants_hypercorn = config is not None or bool(app.router.websocket_routes)
        server = "hypercorn" if wants_hypercorn else "native"
    if server == "native":
        if config is not None:
            raise ValueError("config is a hypercorn Config: pass server='hypercorn' with it")
        if read_timeout is not None:
            server_config = attrs.evolve(server_config or ServerConfig(), read_timeout=read_timeout)
        return await serve_with_options(
            app,
            bind=bind,
            keep_alive_timeout=keep_alive_timeout,
            graceful_timeout=graceful_timeout,
            shutdown_timeout=shutdown_timeout,
            send_timeout=send_timeout,
            certfile=certfile,
            keyfile=keyfile,
            access_log=access_log,
            shutdown_trigger=shutdown_trigger,
            config=server_config,
            task_status=task_status,
        )
    if server != "hypercorn":
        raise ValueError(f"server must be 'native' or 'hypercorn', not {server!r}")
    hconfig = build_config(
        app,
        bind=bind,
        keep_alive_timeout=keep_alive_timeout,
        graceful_timeout=graceful_timeout,
        shutdown_timeout=shutdown_timeout,
        send_timeout=send_timeout,
        read_timeout=read_timeout,
        certfile=certfile,
        keyfile=keyfile,
        access_log=access_log,
        config=config,
    )

    # Set once the graceful shutdown begins: the moment after which connections still open are
    # cut (see ``_cut_stragglers``), however slowly their clients read.
    cut_at: float | None = None
    begun = trio.Event()
    trigger = None
    if shutdown_trigger is not None:
        user_trigger = shutdown_trigger

        async def trigger() -> None:
            nonlocal cut_at
            await user_trigger()
            deadline = app.background.begin_drain()
            cut_at = trio.current_time() + hconfig.graceful_timeout + STRAGGLER_MARGIN
            begun.set()
            logger.info(
                "shutting down: background tasks have %.1f s to finish",
                deadline - trio.current_time(),
            )

    async def cut_stragglers() -> None:
        try:
            await begun.wait()
            assert cut_at is not None
            await trio.sleep_until(cut_at)
        finally:
            # At the deadline, or at once when serve itself is cancelled (a second Ctrl+C): a
            # shielded write to a slow client would otherwise hold up the cancellation too.
            if not served:
                cut = _cut_stragglers(hconfig.listening)
                if cut:
                    logger.warning(
                        "closed %d connection(s) still open at the end of the graceful shutdown "
                        "(clients not taking their responses)",
                        cut,
                    )

    served = False
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cut_stragglers)
            try:
                await hypercorn_serve(
                    cast("Framework", app),
                    hconfig,
                    shutdown_trigger=trigger,
                    task_status=task_status,
                )
            finally:
                served = True
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # A failed lifespan startup comes out of hypercorn's nested nurseries as a group of one;
        # the caller should get the one error it can act on.
        failure = _sole_leaf(group)
        if isinstance(failure, LifespanFailureError):
            raise failure from None
        raise


def _sole_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    while len(group.exceptions) == 1:
        inner = group.exceptions[0]
        if not isinstance(inner, BaseExceptionGroup):
            return inner
        group = inner
    return None
