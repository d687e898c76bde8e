# Listening sockets from bind strings, and the URLs they are reported as.
#
# Where it sits: ``serve_native`` (``_serve.py``) opens the listeners before the lifespan starts
# and accepts connections from them with ``trio.serve_listeners``. Binds are written as for
# hypercorn: ``host:port`` (TCP; ``[::1]:8000`` for IPv6), ``unix:/path`` and ``fd://N``. TLS is a
# ``trio.SSLListener`` around the TCP listener, so the handshake happens in the connection's own
# task (bounded by its header timeout), never in the accept loop.
from __future__ import annotations

import os
import socket
import ssl
import stat
from collections.abc import Sequence

import trio


def ssl_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """A server TLS context for HTTP/1.1 (ALPN ``http/1.1``)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    context.set_alpn_protocols(["http/1.1"])
    return context


def parse_bind(bind: str) -> tuple[str, str | int]:
    """``("tcp", "host:port")``-like split: ``(kind, address)``, kind in tcp, unix, fd.

    Raises:
        ValueError: the bind is not one of the three forms.
    """
    if bind.startswith("unix:"):
        return "unix", bind[5:]
    if bind.startswith("fd://"):
        return "fd", int(bind[5:])
    _, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bind must be 'host:port', 'unix:/path' or 'fd://N', got {bind!r}")
    return "tcp", bind


async def open_listeners(
    binds: Sequence[str], *, backlog: int, reuse_port: bool = False
) -> list[trio.SocketListener]:
    """Open and listen on every bind (an unused port for ``:0``)."""
    listeners: list[trio.SocketListener] = []
    try:
        for bind in binds:
            kind, address = parse_bind(bind)
            if kind == "tcp":
                assert isinstance(address, str)
                host, _, port = address.rpartition(":")
                listeners += await _open_tcp(
                    host.strip("[]") or None, int(port), backlog, reuse_port
                )
            elif kind == "unix":
                assert isinstance(address, str)
                listeners.append(_open_unix(address, backlog))
            else:
                assert isinstance(address, int)
                sock = socket.socket(fileno=address)
                sock.listen(backlog)
                listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
    except BaseException:
        for listener in listeners:
            await listener.aclose()
        raise
    return listeners


async def _open_tcp(
    host: str | None, port: int, backlog: int, reuse_port: bool
) -> list[trio.SocketListener]:
    if not reuse_port:
        return await trio.open_tcp_listeners(port, host=host, backlog=backlog)
    # trio's helper cannot set SO_REUSEPORT before bind; do what it does, with the option.
    infos = await trio.socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    listeners = []
    for family, kind, proto, _, address in infos:
        sock = trio.socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            await sock.bind(address)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        listeners.append(trio.SocketListener(sock))
    return listeners


def _open_unix(path: str, backlog: int) -> trio.SocketListener:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)  # a socket file left by an earlier run
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(trio.socket.from_stdlib_socket(sock))


def listener_url(listener: trio.SocketListener, scheme: str) -> str:
    """``http://127.0.0.1:8000``, ``http://[::1]:8000`` or ``http://unix:/path``."""
    sock = listener.socket
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"{scheme}://unix:{name}"
    host, port = name[0], name[1]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def addresses(stream: trio.abc.Stream) -> tuple[tuple[str, int] | None, tuple[str, int | None]]:
    """``(client, server)`` of an accepted connection, as the ASGI scope wants them."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    assert isinstance(stream, trio.SocketStream)
    sock = stream.socket
    local = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return None, (local, None)
    try:
        peer = sock.getpeername()
    except OSError:
        peer = None
    return (peer[0], peer[1]) if peer else None, (local[0], local[1])
