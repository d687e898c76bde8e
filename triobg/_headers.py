# Header collections shared by requests (read-only, from the ASGI scope) and responses (mutable).
#
# ASGI gives headers as a list of ``(name, value)`` byte pairs with lower-case names; these
# classes are thin views over such a list, so building a request costs nothing until a handler
# asks for a header. Response headers are validated when set: a CR, LF or NUL in a name or value
# would let a caller split the response (header injection), so it is refused at the call site.
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

RawHeaders = list[tuple[bytes, bytes]]

_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def encode_header(name: str, value: str) -> tuple[bytes, bytes]:
    """Validate and encode one response header.

    Raises:
        ValueError: the name is not an HTTP token, or the value holds CR, LF or NUL.
    """
    raw_name = name.lower().encode("latin-1", errors="replace")
    if not raw_name or not _TOKEN.issuperset(raw_name):
        raise ValueError(f"invalid header name {name!r}")
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"header {name!r}: value contains CR, LF or NUL, which is not allowed")
    try:
        raw_value = value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(
            f"header {name!r}: value must be latin-1 text (percent-encode other characters)"
        ) from None
    return raw_name, raw_value


class Headers(Mapping[str, str]):
    """A case-insensitive, read-only view of raw ASGI headers; the first value wins on lookup."""

    __slots__ = ("_raw",)

    def __init__(self, raw: RawHeaders | None = None) -> None:
        self._raw: RawHeaders = raw if raw is not None else []

    @property
    def raw(self) -> RawHeaders:
        return self._raw

    def __getitem__(self, name: str) -> str:
        key = name.lower().encode("latin-1")
        for k, v in self._raw:
            if k == key:
                return v.decode("latin-1")
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        """The first value of ``name``, or ``default`` (without Mapping's KeyError round trip)."""
        key = name.lower().encode("latin-1")
        for k, v in self._raw:
            if k == key:
                return v.decode("latin-1")
        return default

    def getlist(self, name: str) -> list[str]:
        """All values of ``name``, in the order they were sent."""
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self._raw if k == key]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower().encode("latin-1")
        return any(k == key for k, _ in self._raw)

    def __iter__(self) -> Iterator[str]:
        seen: set[bytes] = set()
        for k, _ in self._raw:
            if k not in seen:
                seen.add(k)
                yield k.decode("latin-1")

    def __len__(self) -> int:
        return len({k for k, _ in self._raw})

    def __repr__(self) -> str:
        items = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._raw]
        return f"{type(self).__name__}({items!r})"


class MutableHeaders(Headers):
    """Response headers: setting replaces every value of a name, ``append`` adds one more."""

    __slots__ = ()

    def __setitem__(self, name: str, value: str) -> None:
        raw_name, raw_value = encode_header(name, value)
        self._raw[:] = [(k, v) for k, v in self._raw if k != raw_name]
        self._raw.append((raw_name, raw_value))

    def __delitem__(self, name: str) -> None:
        key = name.lower().encode("latin-1")
        before = len(self._raw)
        self._raw[:] = [(k, v) for k, v in self._raw if k != key]
        if len(self._raw) == before:
            raise KeyError(name)

    def append(self, name: str, value: str) -> None:
        self._raw.append(encode_header(name, value))

    def setdefault(self, name: str, value: str) -> str:
        if name in self:
            return self[name]
        self[name] = value
        return value

    def update(self, other: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        pairs = other.items() if isinstance(other, Mapping) else other
        for name, value in pairs:
            self[name] = value
