# The request target as an HTTP client writes it and a server reads it, for the test clients.
#
# Both test clients (``TestClient`` and its blocking facade ``SyncTestClient``) turn the
# ``path`` and ``params=`` a test passes into the scope's ``path``, ``raw_path`` and
# ``query_string`` here, so that a handler sees what it would see behind hypercorn: a client
# (httpx) percent-encodes what may not appear in a URL and keeps the escapes already written,
# and a server hands the app those bytes as ``raw_path`` and their decoded text as ``path``.
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, unquote, urlencode

Params = Mapping[str, Any] | Sequence[tuple[str, Any]]

# RFC 3986: what a path segment (``pchar``, plus ``/``) and a query may hold unescaped.
_PATH_SAFE = "/!$&'()*+,;=:@-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
_ESCAPE = re.compile(r"(%[0-9A-Fa-f]{2})")


def _quote(text: str, safe: str) -> str:
    """``text`` percent-encoded as UTF-8, keeping the ``%XX`` escapes already in it.

    A lone ``%`` (not followed by two hex digits) is encoded as ``%25``, as httpx does.
    """
    # ``re.split`` with a group puts the escapes at the odd indices.
    pieces = _ESCAPE.split(text)
    return "".join(piece if i % 2 else quote(piece, safe=safe) for i, piece in enumerate(pieces))


def _wire_value(value: Any) -> str:
    # httpx's spelling of primitive values: ``true``/``false`` and an empty ``None``.
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


def encode_params(params: Params) -> str:
    """``params`` as a query string, a list (or tuple) value repeating its key, as httpx does."""
    items = params.items() if isinstance(params, Mapping) else params
    pairs: list[tuple[str, str]] = []
    for key, value in items:
        values = value if isinstance(value, list | tuple) else [value]
        pairs.extend((str(key), _wire_value(item)) for item in values)
    return urlencode(pairs)


def with_params(target: str, params: Params | None) -> str:
    """``target`` (a path or URL, maybe with a query) with ``params`` appended to its query."""
    if not params:
        return target
    target, hash_mark, fragment = target.partition("#")
    encoded = encode_params(params)
    target += ("&" if "?" in target else "?") + encoded
    return target + hash_mark + fragment


def split_target(target: str) -> tuple[str, bytes, bytes]:
    """The scope's ``path``, ``raw_path`` and ``query_string`` for a request to ``target``.

    ``target`` is a path with an optional query (a fragment is dropped, as clients never send
    it). ``raw_path`` is what goes on the wire (``/a%20b/%C3%A9/x%2Fy``); ``path`` is its
    percent-decoded text (``/a b/é/x/y``), as hypercorn and uvicorn give it.
    """
    target = target.partition("#")[0]
    path, _, query = target.partition("?")
    raw_path = _quote(path or "/", _PATH_SAFE)
    query_string = _quote(query, _QUERY_SAFE)
    return unquote(raw_path), raw_path.encode("ascii"), query_string.encode("ascii")
