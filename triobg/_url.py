# URLs and addresses as values: what ``request.url``, ``request.base_url`` and ``request.client``
# return, and what ``request.url_for`` builds.
#
# Where it sits: the connection objects (``_connection.py``) build a ``URL`` from the ASGI scope
# on first use; nothing in the request pipeline needs one. The rule for the host is the one
# servers and Starlette follow: the ``Host`` header when the client sent a usable one, else the
# scope's ``server``, else no host at all. The client chooses the ``Host`` header, so one that
# could change the meaning of the URL (``/``, ``@``, spaces...) is ignored rather than trusted.
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

# Characters a path keeps unescaped when a decoded path is written back into a URL: the ones RFC
# 3986 allows in a path segment, and ``/`` between segments. ``%`` is escaped, so a decoded ``%``
# comes back as ``%25`` and the URL means what the path says.
PATH_SAFE = "/!$&'()*+,;=:@~"

# What a usable ``Host`` header may hold: a name or IPv4/IPv6 literal and a port.
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:[]")


class Address(NamedTuple):
    """The client's (or server's) address: ``request.client.host``, ``request.client.port``.

    A tuple, so ``host, port = request.client`` and ``request.client[0]`` work as before.
    """

    host: str
    port: int | None


class URL:
    """An immutable URL: ``str(url)`` is the whole URL, the properties its parts.

    ``path`` is percent-decoded (as the ASGI scope's ``path``); the URL itself keeps the
    encoded form, so an encoded ``/`` inside a segment survives ``str(url)``.

    Args:
        url: An absolute URL (``https://example.org/a?b=1``) or a reference (``/a?b=1``).
    """

    __slots__ = ("_parts", "_text")

    def __init__(self, url: str = "") -> None:
        self._text = url
        self._parts: SplitResult = urlsplit(url)

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any], *, base: bool = False) -> URL:
        """The URL a request was made to (``base``: only up to the app's root path, with ``/``).

        The path is the scope's ``root_path`` followed by the path below it, whether the server
        (or a mount) left the root path in ``path`` or took it out.
        """
        scheme = str(scope.get("scheme") or "http")
        netloc = _netloc(scheme, scope)
        root = str(scope.get("root_path") or "")
        if base:
            encoded = quote(root.rstrip("/"), safe=PATH_SAFE) + "/"
            query = ""
        else:
            encoded = quote(root, safe=PATH_SAFE) + _encoded_path_below(scope)
            query = bytes(scope.get("query_string") or b"").decode("latin-1")
        text = f"{scheme}://{netloc}{encoded}" if netloc else encoded
        return cls(f"{text}?{query}" if query else text)

    # --- parts ------------------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return self._parts.scheme

    @property
    def netloc(self) -> str:
        """``host:port`` as written (the port only when the URL names one)."""
        return self._parts.netloc

    @property
    def path(self) -> str:
        """The path, percent-decoded (``/a b`` for ``/a%20b``)."""
        path = self._parts.path
        return unquote(path) if "%" in path else path

    @property
    def query(self) -> str:
        """The query string as written, without ``?`` (still percent-encoded)."""
        return self._parts.query

    @property
    def fragment(self) -> str:
        return self._parts.fragment

    @property
    def hostname(self) -> str | None:
        """The host, lower-cased, without port or IPv6 brackets (``None`` for a reference)."""
        return self._parts.hostname

    @property
    def port(self) -> int | None:
        """The port the URL names, or ``None`` (also when it is not a valid port)."""
        try:
            return self._parts.port
        except ValueError:
            return None

    @property
    def username(self) -> str | None:
        return self._parts.username

    @property
    def password(self) -> str | None:
        return self._parts.password

    @property
    def is_secure(self) -> bool:
        """Whether the scheme is ``https`` or ``wss``."""
        return self.scheme in ("https", "wss")

    @property
    def query_params(self) -> list[tuple[str, str]]:
        """The query as decoded ``(name, value)`` pairs, in order."""
        return parse_qsl(self.query, keep_blank_values=True)

    # --- derived URLs -----------------------------------------------------------------------

    def replace(self, **parts: Any) -> URL:
        """A copy with some parts changed.

        Takes ``scheme``, ``netloc``, ``path`` (decoded; it is percent-encoded here), ``query``
        (encoded), ``fragment``, or ``hostname``/``port`` (which rebuild the netloc).

        Raises:
            TypeError: an unknown part.
        """
        unknown = set(parts) - {"scheme", "netloc", "path", "query", "fragment", "hostname", "port"}
        if unknown:
            raise TypeError(f"URL.replace() got unknown part(s): {', '.join(sorted(unknown))}")
        if "hostname" in parts or "port" in parts:
            host = parts.pop("hostname", self.hostname) or ""
            port = parts.pop("port", self.port)
            if ":" in host:
                host = f"[{host}]"
            userinfo = self._parts.netloc.rpartition("@")[0]
            netloc = f"{host}:{port}" if port is not None else host
            parts["netloc"] = f"{userinfo}@{netloc}" if userinfo else netloc
        if "path" in parts:
            parts["path"] = quote(parts["path"], safe=PATH_SAFE)
        return URL(self._parts._replace(**parts).geturl())

    def include_query_params(self, **params: Any) -> URL:
        """A copy with these query parameters set (each replaces any earlier value)."""
        items = [(k, v) for k, v in self.query_params if k not in params]
        items.extend((k, str(v)) for k, v in params.items())
        return self.replace(query=urlencode(items))

    def replace_query_params(self, **params: Any) -> URL:
        """A copy whose query holds exactly these parameters."""
        return self.replace(query=urlencode([(k, str(v)) for k, v in params.items()]))

    def remove_query_params(self, keys: str | Sequence[str]) -> URL:
        """A copy without the query parameters named ``keys``."""
        drop = {keys} if isinstance(keys, str) else set(keys)
        kept = [(k, v) for k, v in self.query_params if k not in drop]
        return self.replace(query=urlencode(kept))

    # --- as a value -------------------------------------------------------------------------

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"URL({self._text!r})"

    def __eq__(self, other: object) -> bool:
        # Equal to its own text, as Starlette's is: ``request.url == "http://host/a"``.
        if isinstance(other, URL | str):
            return self._text == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._text)


def _netloc(scheme: str, scope: Mapping[str, Any]) -> str:
    """The host (and port) the client asked for, else the one the server listens on."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host: str = value.decode("latin-1")
            if host and _HOST_CHARS.issuperset(host):
                return host
            break
    server = scope.get("server")
    if not server or not server[0]:
        return ""
    host, port = server[0], server[1] if len(server) > 1 else None
    if ":" in host:
        host = f"[{host}]"
    if port is None or _DEFAULT_PORTS.get(scheme) == port:
        return str(host)
    return f"{host}:{port}"


def split_root(scope: Mapping[str, Any]) -> tuple[str, bytes | None]:
    """The request's path below the scope's ``root_path``, decoded and raw (when known).

    Servers differ on whether ``path`` still starts with ``root_path``: the ASGI spec and mounts
    leave it in, a proxy that strips the prefix takes it out. Both readings give the same answer
    here (as in Starlette), so routing works under either. The raw form is ``None`` when the
    scope's ``raw_path`` does not correspond to ``path``.
    """
    path: str = scope["path"]
    raw: bytes | None = scope.get("raw_path")
    root: str = scope.get("root_path") or ""
    if root and root != "/" and path.startswith(root):
        rest = path[len(root) :]
        if not rest or rest[0] == "/":
            path = rest or "/"
            if raw is not None:
                encoded_root = quote(root, safe=PATH_SAFE).encode("latin-1")
                kept = raw.startswith(encoded_root)
                raw = (raw[len(encoded_root) :] or b"/") if kept else None
    if raw is not None and unquote(raw.decode("latin-1")) != path:
        raw = None  # rewritten by someone (a middleware): the decoded path is the truth
    return path, raw


def _encoded_path_below(scope: Mapping[str, Any]) -> str:
    """The request's path below the root path, percent-encoded (the client's own escapes)."""
    path, raw = split_root(scope)
    if raw is not None:
        return raw.decode("latin-1")
    return quote(path, safe=PATH_SAFE)
