# Pure helpers that turn an h11 request into the ASGI ``http`` scope, and the response head's
# constant parts. No I/O: tested by feeding values (``tests/test_server_scope.py``).
#
# Where it sits: the connection loop (``_connection.py``) calls ``build_scope`` once per request
# head; the adapter (``_cycle.py``) uses ``reason`` and ``date_header`` for the response head.
from __future__ import annotations

import email.utils
import http
import time
from typing import Any, Final
from urllib.parse import unquote

#: The ASGI versions this server speaks.
ASGI: Final = {"version": "3.0", "spec_version": "2.3"}

#: Scope extension telling an app that a body it leaves unread is not read by the server: the
#: connection is closed after the response instead. (triobg's request skips its own drain then.)
UNREAD_BODY_EXTENSION: Final = "triobg.unread_body_closes"

_HTTP_VERSIONS: Final = {b"1.1": "1.1", b"1.0": "1.0"}

_REASONS: Final = {status.value: status.phrase.encode("ascii") for status in http.HTTPStatus}


class BadTarget(ValueError):
    """The request target is neither origin-form, absolute-form nor ``*``."""


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """``(raw_path, query_string)`` of a request target.

    An absolute-form target (``http://host/ping?x=1``, what clients send to proxies) is routed by
    its path, as RFC 9112 §3.2.2 asks of a server; its authority is ignored (the ``Host`` header
    still says which host was meant).

    Raises:
        BadTarget: the target is not a path, an absolute URL or ``*``.
    """
    if target[:1] != b"/":
        if target == b"*":
            return b"*", b""
        scheme, sep, rest = target.partition(b"://")
        if not sep or not scheme.isalpha():
            raise BadTarget(f"request target must start with '/': {target[:64]!r}")
        slash = rest.find(b"/")
        query = rest.find(b"?")
        if slash < 0 or (0 <= query < slash):
            target = b"/" + (rest[query:] if query >= 0 else b"")
        else:
            target = rest[slash:]
    raw_path, _, query_string = target.partition(b"?")
    return raw_path, query_string


def decode_path(raw_path: bytes) -> str:
    """The ASGI ``path``: percent-decoded as UTF-8 (invalid sequences become U+FFFD)."""
    text = raw_path.decode("latin-1")  # h11 only lets visible ASCII through
    return unquote(text) if "%" in text else text


def build_scope(
    method: bytes,
    target: bytes,
    http_version: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    scheme: str,
    client: tuple[str, int] | None,
    server: tuple[str, int | None] | None,
    root_path: str,
    state: dict[str, Any] | None,
) -> dict[str, Any]:
    """The ASGI ``http`` scope of one request.

    Raises:
        BadTarget: see ``split_target``.
    """
    raw_path, query_string = split_target(target)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": ASGI,
        "http_version": _HTTP_VERSIONS.get(http_version) or http_version.decode("ascii"),
        "method": method.decode("ascii"),
        "scheme": scheme,
        "path": decode_path(raw_path),
        "raw_path": raw_path,
        "query_string": query_string,
        "root_path": root_path,
        "headers": headers,
        "client": client,
        "server": server,
        "extensions": {UNREAD_BODY_EXTENSION: {}},
    }
    if state:
        scope["state"] = state.copy()  # ASGI: each request gets a shallow copy
    return scope


def reason(status: int) -> bytes:
    """The reason phrase for ``status`` (empty for codes without one)."""
    return _REASONS.get(status, b"")


_date_second = -1
_date_value = b""


def date_header() -> bytes:
    """The ``Date`` header value for now, formatted once per second."""
    global _date_second, _date_value  # a one-entry cache, per process
    now = int(time.time())
    if now != _date_second:
        _date_value = email.utils.formatdate(now, usegmt=True).encode("ascii")
        _date_second = now
    return _date_value
