# Path templates and route lookup: the first step of the request pipeline.
#
# Pure data structures, no I/O and no ASGI: a template such as ``/items/{item_id}`` is compiled
# into segments, and a ``PathTable`` finds the endpoints registered for a concrete path. Static
# paths are one dict lookup; paths with parameters walk a segment trie, so the cost of a lookup
# grows with the depth of the path, not with the number of routes (a linear regex scan, as in
# Starlette, degrades with hundreds of routes).
from __future__ import annotations

import types
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar
from urllib.parse import quote, unquote

import attrs

T = TypeVar("T")
_NO_PARAMS: Mapping[str, str] = types.MappingProxyType({})

# What a segment keeps unescaped when a path is built back from values (RFC 3986 ``pchar``).
_SEGMENT_SAFE = "!$&'()*+,;=:@~"

_PARAM_OPEN = "{"
_PARAM_CLOSE = "}"


@attrs.frozen
class _Param:
    """A ``{name}`` segment; ``catch_all`` for ``{name:path}``, which swallows the rest."""

    name: str
    catch_all: bool


_Segment = str | _Param


@attrs.frozen
class PathTemplate:
    """A compiled route path such as ``/users/{user_id}/files/{rest:path}``."""

    raw: str
    segments: tuple[_Segment, ...]
    param_names: tuple[str, ...] = attrs.field(init=False)

    @param_names.default
    def _names(self) -> tuple[str, ...]:
        # Computed once: the matcher reads it on every request.
        return tuple(s.name for s in self.segments if isinstance(s, _Param))

    @property
    def is_static(self) -> bool:
        return not self.param_names

    def url_path(self, params: Mapping[str, object]) -> str:
        """The concrete path for ``params`` (the reverse of matching), each value percent-encoded.

        A ``{name:path}`` value keeps its ``/``; any other value has it encoded, so that it
        stays one segment.

        Raises:
            KeyError: ``params`` lacks one of the template's parameters (named).
        """
        out: list[str] = []
        for segment in self.segments:
            if isinstance(segment, str):
                out.append(segment)
            else:
                safe = _SEGMENT_SAFE + "/" if segment.catch_all else _SEGMENT_SAFE
                out.append(quote(str(params[segment.name]), safe=safe))
        return "/" + "/".join(out)


def compile_path(path: str) -> PathTemplate:
    """Parse a route path, rejecting shapes the matcher cannot serve unambiguously.

    Raises:
        ValueError: the path does not start with ``/``, a parameter is not a whole segment,
            a name repeats, or a ``:path`` parameter is not the last segment.
    """
    if not path.startswith("/"):
        raise ValueError(f"route path {path!r} must start with '/'")
    segments: list[_Segment] = []
    parts = path[1:].split("/")
    seen: set[str] = set()
    for index, part in enumerate(parts):
        if _PARAM_OPEN not in part and _PARAM_CLOSE not in part:
            segments.append(part)
            continue
        if not (part.startswith(_PARAM_OPEN) and part.endswith(_PARAM_CLOSE)):
            raise ValueError(
                f"route path {path!r}: a parameter must be a whole segment, got {part!r}"
            )
        name, _, kind = part[1:-1].partition(":")
        if not name.isidentifier():
            raise ValueError(f"route path {path!r}: {name!r} is not a valid parameter name")
        if kind not in ("", "path", "str"):
            raise ValueError(
                f"route path {path!r}: unknown converter {kind!r} (the type comes from the "
                "handler's annotation; only ':path' changes matching)"
            )
        if name in seen:
            raise ValueError(f"route path {path!r}: parameter {name!r} appears twice")
        seen.add(name)
        catch_all = kind == "path"
        if catch_all and index != len(parts) - 1:
            raise ValueError(f"route path {path!r}: a ':path' parameter must be the last segment")
        segments.append(_Param(name, catch_all))
    return PathTemplate(path, tuple(segments))


@attrs.define
class _Entry(Generic[T]):
    """Everything registered under one path shape: endpoints by method."""

    template: PathTemplate
    endpoints: dict[str, T] = attrs.field(factory=dict)
    # Read on every lookup, so kept at hand rather than behind ``template``:
    names: tuple[str, ...] = attrs.field(init=False)
    static_match: Match[T] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.names = self.template.param_names
        # A static path's lookup result never changes (endpoints is this same dict).
        self.static_match = (self.endpoints, _NO_PARAMS, self.template.raw)


@attrs.define
class _Node(Generic[T]):
    static: dict[str, _Node[T]] = attrs.field(factory=dict)
    param: _Node[T] | None = None
    catch_all: _Entry[T] | None = None
    entry: _Entry[T] | None = None


#: The result of a lookup: ``(endpoints by method, raw string path parameters, template)``.
#: A plain tuple, built on every request: a class instance costs several times as much.
Match = tuple[Mapping[str, T], Mapping[str, str], str]


class PathTable(Generic[T]):
    """Maps concrete request paths to endpoints registered by method."""

    def __init__(self) -> None:
        self._static: dict[str, _Entry[T]] = {}
        self._root: _Node[T] = _Node()
        self._entries: list[_Entry[T]] = []

    def add(self, path: str, methods: frozenset[str], endpoint: T) -> None:
        """Register ``endpoint`` for every method in ``methods`` at ``path``.

        Raises:
            ValueError: the path is malformed, or one of the methods is already registered for
                a path of the same shape (two routes that could never both be reached).
        """
        template = compile_path(path)
        entry = self._entry_for(template)
        for method in methods:
            if method in entry.endpoints:
                raise ValueError(f"{method} {path} is already registered (as {entry.template.raw})")
        for method in methods:
            entry.endpoints[method] = endpoint

    def _entry_for(self, template: PathTemplate) -> _Entry[T]:
        if template.is_static:
            found = self._static.get(template.raw)
            if found is None:
                found = self._static[template.raw] = _Entry(template)
                self._entries.append(found)
            return found
        node = self._root
        for segment in template.segments:
            if isinstance(segment, str):
                node = node.static.setdefault(segment, _Node())
            elif segment.catch_all:
                if node.catch_all is None:
                    node.catch_all = _Entry(template)
                    self._entries.append(node.catch_all)
                return self._check_names(node.catch_all, template)
            else:
                if node.param is None:
                    node.param = _Node()
                node = node.param
        if node.entry is None:
            node.entry = _Entry(template)
            self._entries.append(node.entry)
        return self._check_names(node.entry, template)

    @staticmethod
    def _check_names(entry: _Entry[T], template: PathTemplate) -> _Entry[T]:
        if entry.template.param_names != template.param_names:
            raise ValueError(
                f"route path {template.raw!r} has the same shape as {entry.template.raw!r} "
                "but different parameter names; use the same names"
            )
        return entry

    def match(self, path: str, raw_path: bytes | None = None) -> Match[T] | None:
        """Find the entry for ``path``; ``None`` when no registered shape fits.

        ``raw_path`` (the still percent-encoded path, as ASGI servers give it) is used to split
        segments so that an encoded ``/`` inside a parameter stays inside that parameter.
        """
        entry = self._static.get(path)
        if entry is not None:
            return entry.static_match
        # Percent-escapes only ever shorten a path when decoded, so equal lengths mean there are
        # none, and the decoded path can be split as it is (cheaper than searching for ``%``).
        if raw_path is not None and len(raw_path) != len(path):
            raw = raw_path.decode("latin-1")
            parts = [unquote(p) if "%" in p else p for p in raw[1:].split("/")]
        else:
            parts = path[1:].split("/")
        values: list[str] = []
        found = _descend(self._root, parts, values)
        if found is None:
            values.clear()
            found = _walk(self._root, parts, 0, values)
            if found is None:
                return None
        names = found.names
        if len(names) == 1:
            return found.endpoints, {names[0]: values[0]}, found.template.raw
        return found.endpoints, dict(zip(names, values, strict=True)), found.template.raw

    def __iter__(self) -> Iterator[tuple[str, str, T]]:
        """Yield ``(path template, method, endpoint)`` for everything registered."""
        for entry in self._entries:
            for method, endpoint in entry.endpoints.items():
                yield entry.template.raw, method, endpoint


def _descend(node: _Node[T], parts: list[str], values: list[str]) -> _Entry[T] | None:
    # The path ``_walk`` tries first (static child, else parameter, else catch-all), as a
    # plain loop: when it ends on an entry, that entry is ``_walk``'s answer too, with no
    # recursion. ``None`` means a dead end somewhere; the caller then lets ``_walk`` backtrack.
    for index, part in enumerate(parts):
        child = node.static.get(part)
        if child is None:
            if node.param is not None and part:
                child = node.param
                values.append(part)
            elif node.catch_all is not None:
                values.append("/".join(parts[index:]))
                return node.catch_all
            else:
                return None
        node = child
    return _at_end(node, values)


def _at_end(node: _Node[T], values: list[str]) -> _Entry[T] | None:
    # The whole path is consumed: an entry here wins, else a catch-all takes the empty rest.
    if node.entry is not None:
        return node.entry
    if node.catch_all is not None:
        values.append("")
        return node.catch_all
    return None


def _walk(node: _Node[T], parts: list[str], index: int, values: list[str]) -> _Entry[T] | None:
    # Static children win over parameters, parameters over a catch-all; backtrack on a miss so
    # that ``/users/me`` and ``/users/{id}/posts`` can coexist.
    if index == len(parts):
        return _at_end(node, values)
    part = parts[index]
    child = node.static.get(part)
    if child is not None:
        found = _walk(child, parts, index + 1, values)
        if found is not None:
            return found
    if node.param is not None and part:
        values.append(part)
        found = _walk(node.param, parts, index + 1, values)
        if found is not None:
            return found
        values.pop()
    if node.catch_all is not None:
        values.append("/".join(parts[index:]))
        return node.catch_all
    return None
