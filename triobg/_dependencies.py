# Dependency injection, compile time: turn a handler's signature tree into a ``Plan``.
#
# Compiling happens once per route (and again only when ``app.dependency_overrides`` changes):
# every parameter of the handler and of each dependency, to any depth, is classified as a
# path/query/header/cookie/body value, an injected object (``Request``, ``BackgroundTasks``,
# ``Response``) or a sub-dependency, and its converter is built.
#
# Solving a plan per request (``_solve.py``) is two passes. Pass one reads and converts *every*
# request value the whole tree needs, collecting all errors, and runs no user code: an invalid
# request is answered 422 with every problem listed and without side effects. Pass two calls the
# dependencies, then the handler, in order; ``async def`` in the event loop, ``def`` in a worker
# thread (context variables set there are copied back, so later code and background tasks see
# them).
from __future__ import annotations

import contextlib
import enum
import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import attrs

from ._background import BackgroundTasks
from ._convert import (
    is_scalar,
    json_type_problem,
    scalar_converter,
    sequence_item,
    strip_optional,
)
from ._forms import FORM_SOURCES
from ._params import REQUIRED, DependsInfo, ParamInfo
from ._requests import HTTPConnection, Request
from ._responses import Response
from ._scope import MODULE_SCOPE, Scope, declaring_scope, resolve_models, type_hints
from ._uploads import UploadFile
from ._websockets import WebSocket


class CallKind(enum.Enum):
    ASYNC = "async"
    SYNC = "sync"
    ASYNC_GEN = "async generator"
    SYNC_GEN = "generator"


@attrs.frozen
class ParamSpec:
    """One request value a callable reads: where from, how to convert, what if absent."""

    name: str
    wire: str
    source: str
    convert: Callable[[str], Any]
    many: bool
    required: bool
    default: Any
    marker: ParamInfo
    annotation: Any = Any  # as declared; read by the OpenAPI generation, not per request
    #: A ``bytes`` file parameter (``File()``): the solver reads the file into memory first.
    whole_file: bool = False


@attrs.frozen
class BodySpec:
    """A JSON body parameter: the whole body, or one field of it when embedded."""

    name: str
    wire: str
    annotation: Any
    required: bool
    default: Any
    embed: bool
    marker: ParamInfo


@attrs.frozen(eq=False)
class SubDependency:
    arg: str | None  # None for route/router/app-level ``dependencies=[...]``
    dependant: Dependant
    use_cache: bool
    scope: str


@attrs.frozen(eq=False)
class Dependant:
    """The compiled form of one callable (a handler or a dependency)."""

    call: Callable[..., Any]
    kind: CallKind
    params: tuple[ParamSpec, ...]
    body: tuple[BodySpec, ...]
    deps: tuple[SubDependency, ...]
    request_arg: str | None
    tasks_arg: str | None
    response_arg: str | None
    context_factory: Callable[..., Any] | None  # contextmanager-wrapped generator functions


@attrs.frozen(eq=False)
class Plan:
    """Everything the pipeline needs to answer a route, fixed at compile time."""

    root: Dependant
    readers: tuple[Dependant, ...]  # each distinct callable that reads request values, once
    body: tuple[BodySpec, ...]
    embed_body: bool
    needs_tasks: bool
    needs_response: bool
    function_teardown: bool  # some generator dependency has scope="function"

    @property
    def form_params(self) -> list[ParamSpec]:
        """Every reader's ``Form()``/``File()`` parameters, in reading order (asked when the
        solver is written and the OpenAPI document built, never per request)."""
        return [spec for r in self.readers for spec in r.params if spec.source in FORM_SOURCES]


class DependencyOverrides(dict[Callable[..., Any], Callable[..., Any]]):
    """``app.dependency_overrides``: a dict that counts its changes so plans can be recompiled.

    It also remembers the scope each override was set in (a test function, usually), so an
    override defined there resolves its annotations there, like a route declared there.
    """

    version = 0

    def __init__(self) -> None:
        super().__init__()
        self._scopes: dict[Callable[..., Any], Scope] = {}

    def _bump(self) -> None:
        self.version += 1

    def scope_of(self, key: Callable[..., Any]) -> Scope:
        """Where the override for ``key`` was set."""
        return self._scopes.get(key, MODULE_SCOPE)

    def __setitem__(self, key: Callable[..., Any], value: Callable[..., Any]) -> None:
        super().__setitem__(key, value)
        self._scopes[key] = declaring_scope(value)
        self._bump()

    def __delitem__(self, key: Callable[..., Any]) -> None:
        super().__delitem__(key)
        self._bump()

    def clear(self) -> None:
        super().clear()
        self._bump()

    def pop(self, key: Any, *default: Any) -> Any:
        result = super().pop(key, *default)
        self._bump()
        return result

    def update(self, *args: Any, **kwargs: Any) -> None:
        pairs = dict(*args, **kwargs)
        super().update(pairs)
        for key, value in pairs.items():
            self._scopes[key] = declaring_scope(value)
        self._bump()


# --- compiling -------------------------------------------------------------------------------


def _kind_of(call: Callable[..., Any]) -> CallKind:
    target = call
    while isinstance(target, functools.partial):
        target = target.func
    if (
        not inspect.isfunction(target)
        and not inspect.ismethod(target)
        and not inspect.isclass(target)
    ):
        target = getattr(target, "__call__", target)  # noqa: B004 - callable objects
    if inspect.isasyncgenfunction(target):
        return CallKind.ASYNC_GEN
    if inspect.isgeneratorfunction(target):
        return CallKind.SYNC_GEN
    if inspect.iscoroutinefunction(target):
        return CallKind.ASYNC
    return CallKind.SYNC


def _upload_item(annotation: Any) -> Any | None:
    """``UploadFile`` for ``UploadFile``, ``UploadFile | None`` and ``list[UploadFile]``."""
    inner, _ = strip_optional(annotation)
    item = sequence_item(inner)
    candidate = item if item is not None else inner
    return candidate if _is_subclass(candidate, UploadFile) else None


def _same(value: Any) -> Any:
    """The converter of a file parameter: the ``UploadFile`` is already the value."""
    return value


def _whole_file(value: UploadFile) -> bytes:
    """The converter of a ``bytes`` file parameter: the content ``load_form`` read for it."""
    content = value._content
    assert content is not None, "load_form reads the bytes of every whole-file parameter"
    return content


def _split_annotated(annotation: Any) -> tuple[Any, list[Any]]:
    if typing.get_origin(annotation) is Annotated:
        base, *extras = typing.get_args(annotation)
        return base, extras
    return annotation, []


def _is_subclass(annotation: Any, cls: type) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, cls)


class Compiler:
    """Compiles callables into ``Dependant`` plans for one route."""

    def __init__(
        self,
        path_params: tuple[str, ...],
        overrides: Mapping[Any, Any],
        *,
        websocket: bool = False,
        scope: Scope = MODULE_SCOPE,
    ) -> None:
        self._path_params = path_params
        self._scope = scope  # where the route was declared: annotations resolve there
        self._websocket = websocket  # compiling a WebSocket route: inject the WebSocket
        self._overrides = overrides
        self._done: dict[Any, Dependant] = {}
        self._visiting: set[Any] = set()

    def plan(self, handler: Callable[..., Any], dependencies: list[DependsInfo]) -> Plan:
        root = self.dependant(handler, extra=dependencies, is_handler=True)
        readers: list[Dependant] = []
        seen: set[int] = set()
        needs_tasks = needs_response = function_teardown = False

        def visit(dep: Dependant) -> None:
            nonlocal needs_tasks, needs_response, function_teardown
            if id(dep) in seen:
                return
            seen.add(id(dep))
            for sub in dep.deps:
                if sub.scope == "function" and sub.dependant.context_factory is not None:
                    function_teardown = True
                visit(sub.dependant)
            if dep.params or dep.body:
                readers.append(dep)
            needs_tasks = needs_tasks or dep.tasks_arg is not None
            needs_response = needs_response or dep.response_arg is not None

        visit(root)
        body = tuple(spec for reader in readers for spec in reader.body)
        if body and any(p.source in FORM_SOURCES for r in readers for p in r.params):
            raise TypeError(
                f"{getattr(handler, '__name__', handler)!r} reads both a JSON body "
                f"({body[0].name!r}) and form fields or files: a request has one body, "
                "so declare them all as Form()/File() (or all as JSON)"
            )
        wires = [spec.wire for spec in body]
        distinct = {spec.wire: spec for spec in body}
        embed = len(distinct) > 1 or any(spec.embed for spec in body)
        if len(set(wires)) != len(wires):
            body = tuple(distinct.values())
        return Plan(
            root, tuple(readers), body, embed, needs_tasks, needs_response, function_teardown
        )

    def dependant(
        self,
        call: Callable[..., Any],
        *,
        extra: list[DependsInfo] | None = None,
        is_handler: bool = False,
    ) -> Dependant:
        scope = self._scope
        if call in self._overrides:
            scope_of = getattr(self._overrides, "scope_of", None)
            scope = scope_of(call) if scope_of is not None else scope
            call = self._overrides[call]
        if call in self._done and not extra:
            return self._done[call]
        if call in self._visiting:
            raise TypeError(f"dependency cycle through {call!r}")
        self._visiting.add(call)
        try:
            dependant = self._compile(call, extra or [], is_handler, scope)
        finally:
            self._visiting.discard(call)
        if not extra:
            self._done[call] = dependant
        return dependant

    def _compile(
        self, call: Callable[..., Any], extra: list[DependsInfo], is_handler: bool, scope: Scope
    ) -> Dependant:
        kind = _kind_of(call)
        if is_handler and kind in (CallKind.ASYNC_GEN, CallKind.SYNC_GEN):
            raise TypeError(f"a path operation cannot be a generator: {call!r}")
        hints = type_hints(call, scope)
        params: list[ParamSpec] = []
        body: list[BodySpec] = []
        deps = [self._sub(None, marker, None) for marker in extra]
        request_arg = tasks_arg = response_arg = None
        for parameter in inspect.signature(call).parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            annotation, extras = _split_annotated(hints.get(parameter.name, Any))
            marker: Any = next((e for e in extras if isinstance(e, ParamInfo | DependsInfo)), None)
            default = parameter.default
            if isinstance(default, ParamInfo | DependsInfo):
                marker, default = default, parameter.empty
            if isinstance(marker, DependsInfo):
                deps.append(self._sub(parameter.name, marker, annotation))
                continue
            if marker is None:
                # ``request: Request | None = None`` asks for the request too (it is never a
                # value a client could send).
                injected, _ = strip_optional(annotation)
                if _is_subclass(injected, HTTPConnection):
                    # The connection object: the pipeline passes its own as ``request``.
                    self._check_connection(call, parameter.name, injected)
                    request_arg = parameter.name
                    continue
                if _is_subclass(injected, BackgroundTasks):
                    tasks_arg = parameter.name
                    continue
                if _is_subclass(injected, Response):
                    response_arg = parameter.name
                    continue
                if _upload_item(annotation) is not None:
                    marker = ParamInfo(source="file")  # ``file: UploadFile`` needs no marker
                elif parameter.name in self._path_params:
                    marker = ParamInfo(source="path")
                elif is_scalar(annotation):
                    marker = ParamInfo(source="query")
                else:
                    marker = ParamInfo(source="body")
            if marker.default is not REQUIRED:
                default = marker.default
            if default is ...:  # ``q: Annotated[int, Query()] = ...``: required, as in FastAPI
                default = REQUIRED
            required = default is parameter.empty or default is REQUIRED
            marker.check_applies(annotation, f"parameter {parameter.name!r} of {call!r}")
            if marker.source == "body":
                resolve_models(annotation, scope)
                problem = json_type_problem(annotation, reading=True)
                if problem is not None:
                    raise TypeError(
                        f"body parameter {parameter.name!r} of {call!r}: triobg cannot read "
                        f"{problem} from JSON (use an attrs class, a dataclass, a pydantic v2 "
                        "model, or the types listed in the parameters tutorial)"
                    )
                wire = marker.alias or parameter.name
                body.append(
                    BodySpec(
                        parameter.name, wire, annotation, required, default, marker.embed, marker
                    )
                )
                continue
            params.append(self._param(call, parameter.name, annotation, marker, required, default))
        factory: Callable[..., Any] | None = None
        if kind is CallKind.ASYNC_GEN:
            factory = contextlib.asynccontextmanager(call)
        elif kind is CallKind.SYNC_GEN:
            factory = contextlib.contextmanager(call)
        return Dependant(
            call, kind, tuple(params), tuple(body), tuple(deps), request_arg, tasks_arg,
            response_arg, factory,
        )  # fmt: skip

    def _check_connection(self, call: Callable[..., Any], name: str, annotation: Any) -> None:
        wanted = WebSocket if self._websocket else Request
        if annotation is not HTTPConnection and not _is_subclass(annotation, wanted):
            route = "a WebSocket route" if self._websocket else "an HTTP route"
            raise TypeError(
                f"parameter {name!r} of {getattr(call, '__name__', call)!r} asks for a "
                f"{annotation.__name__}, but {route} is given a {wanted.__name__}"
            )

    def _sub(self, arg: str | None, marker: DependsInfo, annotation: Any) -> SubDependency:
        target = marker.dependency
        if target is None:
            target, _ = strip_optional(annotation)
            if not callable(target):
                raise TypeError(f"Depends() on {arg!r} needs a callable or a class annotation")
        return SubDependency(arg, self.dependant(target), marker.use_cache, marker.scope)

    def _param(
        self,
        call: Callable[..., Any],
        name: str,
        annotation: Any,
        marker: ParamInfo,
        required: bool,
        default: Any,
    ) -> ParamSpec:
        if marker.source == "path":
            if name not in self._path_params and (marker.alias or name) not in self._path_params:
                raise TypeError(
                    f"{getattr(call, '__name__', call)!r} declares path parameter {name!r}, "
                    "but the route path has no such {placeholder}"
                )
            required, default = True, REQUIRED
        inner, _ = strip_optional(annotation)
        item = sequence_item(inner)
        many = item is not None and marker.source != "path"
        if marker.source == "file":
            whole = (item if many else inner) is bytes
            if not whole and _upload_item(annotation) is None:
                raise TypeError(
                    f"parameter {name!r} of {call!r}: File() needs an UploadFile, "
                    "list[UploadFile], UploadFile | None, bytes or list[bytes] annotation, "
                    f"not {annotation!r}"
                )
            if many and default is REQUIRED and not required:
                default = []
            wire = marker.alias or name
            read: Callable[[Any], Any] = _whole_file if whole else _same
            return ParamSpec(
                name, wire, "file", read, many, required, default, marker, annotation, whole
            )
        try:
            convert = scalar_converter(item if many else annotation)
        except TypeError as error:
            raise TypeError(f"parameter {name!r} of {call!r}: {error}") from None
        if marker.source == "header":
            wire = marker.alias or (name.replace("_", "-") if marker.convert_underscores else name)
            wire = wire.lower()
        else:
            wire = marker.alias or name
        if many and default is REQUIRED and not required:
            default = []
        return ParamSpec(
            name, wire, marker.source, convert, many, required, default, marker, annotation
        )
