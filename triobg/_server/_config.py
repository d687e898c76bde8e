# The native server's limits and timeouts, as one frozen value.
#
# Where it sits: ``serve_native`` (``_serve.py``) takes a ``ServerConfig``; the connection loop
# (``_connection.py``) and the ASGI adapter (``_cycle.py``) read it. Every limit has a default that
# keeps one client from holding the server's memory, CPU or shutdown for long, because the server
# is often run without a proxy in front of it.
from __future__ import annotations

import math

import attrs


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0 or math.isnan(value):
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _positive_or_none(
    instance: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None and (not value > 0 or math.isnan(value)):
        raise ValueError(f"{attribute.name} must be > 0 or None, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0 or math.isnan(value):
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _at_least_one(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value!r}")


@attrs.frozen(kw_only=True)
class ServerConfig:
    """Limits and timeouts of the native HTTP/1.1 server.

    The defaults follow what nginx and hypercorn do where they agree, and are shorter where a
    longer value only helps a client that does not mean well.

    Attributes:
        header_timeout: Seconds from a new connection (or the first byte of a keep-alive
            request) until the request head is complete; past it the client gets a 408 and the
            connection closes. Stops slow-header (slowloris) clients.
        read_timeout: Seconds the server waits for the next piece of a request body. A client
            that stalls mid-upload is cut off (408) instead of holding a connection for good.
        keep_alive_timeout: Seconds an idle keep-alive connection may wait for its next request
            (0: none; only requests already sent are answered).
        send_timeout: Seconds one write to the client may take. A client that stops reading is
            dropped, so it cannot hold a connection open. ``None``: no limit per write (the
            shutdown is still bounded: everything is cancelled at the drain deadline).
        max_header_size: Largest request head in bytes (h11 answers 431 beyond it).
        max_header_count: Most header lines in one request (431 beyond it).
        max_requests_in_flight: Most requests of one connection whose handlers (and background
            tasks) are still running. The connection reads no further request until one ends, so
            pipelining cannot pile up unbounded work.
        linger_bytes: After answering a request whose body was refused unread, the server
            closes its side and discards at most this many further bytes (so the client reads the
            answer instead of a reset), then closes.
        linger_timeout: Seconds that discarding may take.
        drain_margin: Seconds after the app's drain deadline at which whatever still runs is
            cancelled (each background task cut off is named in the log).
        graceful_timeout: Seconds after shutdown begins at which whatever still runs is
            cancelled, instead of the drain deadline plus ``drain_margin`` (``None``, the
            default, follows the drain, so it is never cut short).
        lifespan_timeout: Seconds the lifespan shutdown may take.
        access_log: Log one line per response to the ``triobg.access`` logger (INFO).
        root_path: The ASGI ``root_path`` (the prefix a proxy mounts the app under).
        server_header: Value of a ``Server`` header on every response, or ``None`` for none
            (the default: it only helps whoever scans for a version to attack).
        backlog: Listen backlog of each socket.
        reuse_port: Set ``SO_REUSEPORT`` on TCP listeners, so several processes can share a port.
    """

    header_timeout: float = attrs.field(default=10.0, validator=_positive)
    read_timeout: float = attrs.field(default=30.0, validator=_positive)
    keep_alive_timeout: float = attrs.field(default=5.0, validator=_non_negative)
    send_timeout: float | None = attrs.field(
        default=60.0,
        validator=_positive_or_none,  # type: ignore[arg-type]  # attrs types it by the default
    )
    max_header_size: int = attrs.field(default=16 * 1024, validator=_at_least_one)
    max_header_count: int = attrs.field(default=100, validator=_at_least_one)
    max_requests_in_flight: int = attrs.field(default=16, validator=_at_least_one)
    linger_bytes: int = 64 * 1024
    linger_timeout: float = 1.0
    drain_margin: float = 0.25
    graceful_timeout: float | None = None
    access_log: bool = False
    lifespan_timeout: float = 60.0
    root_path: str = ""
    server_header: str | None = None
    backlog: int = 1024
    reuse_port: bool = False
