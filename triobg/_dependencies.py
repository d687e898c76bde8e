# Dependency injection: compile a handler's signature into a plan, then solve it per request.
#
# Compiling happens once per route (and again only when ``app.dependency_overrides`` changes):
# every parameter of the handler and of each dependency, to any depth, is classified as a
# path/query/header/cookie/body value, an injected object (``Request``, ``BackgroundTasks``,
# ``Response``) or a sub-dependency, and its converter is built.
#
# Solving a request is two passes. Pass one reads and converts *every* request value the whole
# tree needs, collecting all errors, and runs no user code: an invalid request is answered 422
# with every problem listed and without side effects. Pass two calls the dependencies, then the
# handler, in order; ``async def`` in the event loop, ``def`` in a worker thread (context
# variables set there are copied back, so later code and background tasks see them).
from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import attrs
import trio

from ._background import BackgroundTasks
from ._convert import (
    ConversionError,
    ErrorDetail,
    errors_from_structuring,
    is_scalar,
    scalar_converter,
    sequence_item,
    strip_optional,
)
from ._encode import converter as body_converter
from ._exceptions import HTTPException, RequestValidationError
from ._params import REQUIRED, DependsInfo, ParamInfo
from ._requests import Request
from ._responses import Response


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


class DependencyOverrides(dict[Callable[..., Any], Callable[..., Any]]):
    """``app.dependency_overrides``: a dict that counts its changes so plans can be recompiled."""

    version = 0

    def _bump(self) -> None:
        self.version += 1

    def __setitem__(self, key: Callable[..., Any], value: Callable[..., Any]) -> None:
        super().__setitem__(key, value)
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
        super().update(*args, **kwargs)
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


def _type_hints(call: Callable[..., Any]) -> dict[str, Any]:
    target: Any = call
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.isclass(target):
        target = target.__init__
    elif not inspect.isfunction(target) and not inspect.ismethod(target):
        target = getattr(target, "__call__", target)  # noqa: B004
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as error:
        raise TypeError(f"cannot resolve the annotations of {call!r}: {error}") from error


def _split_annotated(annotation: Any) -> tuple[Any, list[Any]]:
    if typing.get_origin(annotation) is Annotated:
        base, *extras = typing.get_args(annotation)
        return base, extras
    return annotation, []


def _is_subclass(annotation: Any, cls: type) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, cls)


class Compiler:
    """Compiles callables into ``Dependant`` plans for one route."""

    def __init__(self, path_params: tuple[str, ...], overrides: Mapping[Any, Any]) -> None:
        self._path_params = path_params
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
        call = self._overrides.get(call, call)
        if call in self._done and not extra:
            return self._done[call]
        if call in self._visiting:
            raise TypeError(f"dependency cycle through {call!r}")
        self._visiting.add(call)
        try:
            dependant = self._compile(call, extra or [], is_handler)
        finally:
            self._visiting.discard(call)
        if not extra:
            self._done[call] = dependant
        return dependant

    def _compile(
        self, call: Callable[..., Any], extra: list[DependsInfo], is_handler: bool
    ) -> Dependant:
        kind = _kind_of(call)
        if is_handler and kind in (CallKind.ASYNC_GEN, CallKind.SYNC_GEN):
            raise TypeError(f"a path operation cannot be a generator: {call!r}")
        hints = _type_hints(call)
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
                if _is_subclass(annotation, Request):
                    request_arg = parameter.name
                    continue
                if _is_subclass(annotation, BackgroundTasks):
                    tasks_arg = parameter.name
                    continue
                if _is_subclass(annotation, Response):
                    response_arg = parameter.name
                    continue
                if parameter.name in self._path_params:
                    marker = ParamInfo(source="path")
                elif is_scalar(annotation):
                    marker = ParamInfo(source="query")
                else:
                    marker = ParamInfo(source="body")
            if marker.default is not REQUIRED:
                default = marker.default
            required = default is parameter.empty or default is REQUIRED
            if marker.source == "body":
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
        return ParamSpec(name, wire, marker.source, convert, many, required, default, marker)


# --- solving ---------------------------------------------------------------------------------


def _check_bounds(value: Any, marker: ParamInfo) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if marker.gt is not None and not value > marker.gt:
            return f"must be greater than {marker.gt}"
        if marker.ge is not None and not value >= marker.ge:
            return f"must be greater than or equal to {marker.ge}"
        if marker.lt is not None and not value < marker.lt:
            return f"must be less than {marker.lt}"
        if marker.le is not None and not value <= marker.le:
            return f"must be less than or equal to {marker.le}"
    if isinstance(value, str | list | tuple | set | frozenset):
        if marker.min_length is not None and len(value) < marker.min_length:
            return f"must have at least {marker.min_length} characters or items"
        if marker.max_length is not None and len(value) > marker.max_length:
            return f"must have at most {marker.max_length} characters or items"
    return None


def _read_param(
    spec: ParamSpec, request: Request, path_params: Mapping[str, str], errors: list[ErrorDetail]
) -> Any:
    source = spec.source
    found: str | list[str] | None
    if spec.many:
        if source == "query":
            found = request.query_params.getlist(spec.wire)
        elif source == "header":
            found = request.headers.getlist(spec.wire)
        else:
            cookie = request.cookies.get(spec.wire)
            found = [cookie] if cookie is not None else []
        found = found or None
    elif source == "query":
        # A repeated scalar key: the last one wins, as in most frameworks.
        found = request.query_params.get(spec.wire)
    elif source == "path":
        found = path_params.get(spec.wire)
    elif source == "header":
        found = request.headers.get(spec.wire)
    else:
        found = request.cookies.get(spec.wire)
    if found is None:
        if spec.required:
            errors.append(ErrorDetail((source, spec.wire), "field required", "missing"))
        return spec.default
    try:
        if isinstance(found, list):
            result: Any = [spec.convert(v) for v in found]
        else:
            result = spec.convert(found)
    except ConversionError as error:
        errors.append(ErrorDetail((source, spec.wire), error.msg, error.kind))
        return None
    if spec.marker.has_bounds:
        problem = _check_bounds(result, spec.marker)
        if problem is not None:
            errors.append(ErrorDetail((source, spec.wire), problem, "bounds"))
    return result


def _read_body(plan: Plan, payload: Any, errors: list[ErrorDetail]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if not plan.embed_body:
        spec = plan.body[0]
        found[spec.wire] = _structure(spec, payload, ("body",), errors)
        return found
    if not isinstance(payload, dict):
        errors.append(ErrorDetail(("body",), "expected a JSON object", "type_error"))
        return {spec.wire: None for spec in plan.body}
    for spec in plan.body:
        if spec.wire not in payload:
            if spec.required:
                errors.append(ErrorDetail(("body", spec.wire), "field required", "missing"))
            found[spec.wire] = None if spec.required else spec.default
            continue
        found[spec.wire] = _structure(spec, payload[spec.wire], ("body", spec.wire), errors)
    return found


def _structure(
    spec: BodySpec, value: Any, loc: tuple[str | int, ...], errors: list[ErrorDetail]
) -> Any:
    if spec.annotation is Any:
        return value
    try:
        result = body_converter.structure(value, spec.annotation)
    except Exception as error:
        errors.extend(errors_from_structuring(error, loc))
        return None
    if spec.marker.has_bounds:
        problem = _check_bounds(result, spec.marker)
        if problem is not None:
            errors.append(ErrorDetail(loc, problem, "bounds"))
    return result


_JSON_TYPES = ("application/json",)


async def read_inputs(
    plan: Plan, request: Request, path_params: Mapping[str, str]
) -> dict[int, dict[str, Any]]:
    """Pass one: every request value of the whole tree, converted; raise with all errors.

    Raises:
        RequestValidationError: at least one value is missing or invalid (422).
        HTTPException: the body has a content type other than JSON (415) or is too large (413).
    """
    errors: list[ErrorDetail] = []
    body_values = await _load_body(plan, request, errors)
    return read_values(plan, request, path_params, body_values, errors)


def read_values(
    plan: Plan,
    request: Request,
    path_params: Mapping[str, str],
    body_values: dict[str, Any] | None = None,
    errors: list[ErrorDetail] | None = None,
) -> dict[int, dict[str, Any]]:
    """Pass one without a body to await (the common case): path, query, headers, cookies.

    Raises:
        RequestValidationError: at least one value is missing or invalid (422).
    """
    if errors is None:
        errors = []
    if body_values is None:
        body_values = {}
    inputs: dict[int, dict[str, Any]] = {}
    for reader in plan.readers:
        values: dict[str, Any] = {}
        for spec in reader.params:
            values[spec.name] = _read_param(spec, request, path_params, errors)
        for body_spec in reader.body:
            values[body_spec.name] = body_values.get(body_spec.wire, body_spec.default)
        inputs[id(reader)] = values
    if errors:
        raise RequestValidationError(errors)
    return inputs


async def _load_body(plan: Plan, request: Request, errors: list[ErrorDetail]) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    media = content_type.partition(";")[0].strip().lower()
    raw = await request.body()
    if not raw:
        if all(not spec.required for spec in plan.body):
            return {spec.wire: spec.default for spec in plan.body}
        errors.append(ErrorDetail(("body",), "a JSON body is required", "missing"))
        return {}
    if media and media not in _JSON_TYPES and not media.endswith("+json"):
        raise HTTPException(
            415, f"expected a JSON body (Content-Type: application/json), got {media!r}"
        )
    payload = await request.json()
    return _read_body(plan, payload, errors)


class Teardown:
    """The request-scoped exit stack, created only when a generator dependency needs one
    (most requests have none, and an ``AsyncExitStack`` per request is measurable)."""

    __slots__ = ("stack",)

    def __init__(self) -> None:
        self.stack: contextlib.AsyncExitStack | None = None

    def get(self) -> contextlib.AsyncExitStack:
        if self.stack is None:
            self.stack = contextlib.AsyncExitStack()
        return self.stack

    async def close(self, error: BaseException | None) -> None:
        """Exit every generator dependency in reverse order, throwing ``error`` into them."""
        if self.stack is None:
            return
        stack, self.stack = self.stack, None
        if error is None:
            await stack.__aexit__(None, None, None)
        else:
            await stack.__aexit__(type(error), error, error.__traceback__)


class Solving:
    """Per-request state of pass two: the dependency cache and the teardown stacks."""

    __slots__ = (
        "cache",
        "function_stack",
        "inputs",
        "request",
        "response",
        "sync_limiter",
        "tasks",
        "teardown",
    )

    def __init__(
        self,
        request: Request,
        inputs: dict[int, dict[str, Any]],
        tasks: BackgroundTasks | None,
        response: Response | None,
        teardown: Teardown,
        function_stack: contextlib.AsyncExitStack | None,
        sync_limiter: trio.CapacityLimiter,
    ) -> None:
        self.request = request
        self.inputs = inputs
        self.tasks = tasks
        self.response = response
        self.teardown = teardown
        self.function_stack = function_stack
        self.sync_limiter = sync_limiter
        self.cache: dict[Any, Any] = {}


async def call_dependant(dep: Dependant, solving: Solving) -> Any:
    """Pass two: call ``dep`` after its sub-dependencies, with everything it asked for."""
    kwargs = await _gather(dep, solving)
    if dep.kind is CallKind.ASYNC:
        return await dep.call(**kwargs)
    return await run_sync(dep.call, kwargs, solving.sync_limiter)


async def _gather(dep: Dependant, solving: Solving) -> dict[str, Any]:
    # The inputs dict was built for this request alone (``read_values``), so it is used as the
    # call's keyword arguments directly rather than copied.
    kwargs = solving.inputs.get(id(dep))
    if kwargs is None:
        kwargs = {}
    for sub in dep.deps:
        target = sub.dependant
        if sub.use_cache and target.call in solving.cache:
            value = solving.cache[target.call]
        else:
            value = await _invoke(target, sub.scope, solving)
            if sub.use_cache:
                solving.cache[target.call] = value
        if sub.arg is not None:
            kwargs[sub.arg] = value
    if dep.request_arg is not None:
        kwargs[dep.request_arg] = solving.request
    if dep.tasks_arg is not None:
        kwargs[dep.tasks_arg] = solving.tasks
    if dep.response_arg is not None:
        kwargs[dep.response_arg] = solving.response
    return kwargs


async def _invoke(dep: Dependant, scope: str, solving: Solving) -> Any:
    if dep.context_factory is None:
        return await call_dependant(dep, solving)
    if scope == "function" and solving.function_stack is not None:
        stack = solving.function_stack
    else:
        stack = solving.teardown.get()
    # Generator dependencies: enter now, exit later from the stack (in reverse order), with the
    # handler's exception thrown in so the dependency can see it and roll back.
    return await _enter_generator(dep, stack, await _gather(dep, solving), solving.sync_limiter)


async def _enter_generator(
    dep: Dependant,
    stack: contextlib.AsyncExitStack,
    kwargs: dict[str, Any],
    limiter: trio.CapacityLimiter,
) -> Any:
    assert dep.context_factory is not None
    manager = dep.context_factory(**kwargs)
    if dep.kind is CallKind.ASYNC_GEN:
        return await stack.enter_async_context(manager)
    # A plain generator runs on both sides of its ``yield`` in a worker thread, under the same
    # limiter and context rules as any sync dependency.
    value = await run_sync(manager.__enter__, {}, limiter)

    async def exit_in_thread(*exc_info: Any) -> bool:
        return bool(
            await run_sync(manager.__exit__, dict(zip(_EXIT_ARGS, exc_info, strict=True)), limiter)
        )

    stack.push_async_exit(exit_in_thread)
    return value


async def run_sync(
    func: Callable[..., Any], kwargs: dict[str, Any], limiter: trio.CapacityLimiter
) -> Any:
    """Run a sync handler or dependency in a worker thread, then copy its context changes back.

    trio runs the thread in a copy of our context; without copying back, a ``ContextVar`` set
    by a sync dependency would be invisible to the handler and to background tasks.
    """
    context = contextvars.copy_context()
    result = await trio.to_thread.run_sync(
        functools.partial(context.run, func, **kwargs), limiter=limiter
    )
    for var, value in context.items():
        if var.get(_UNSET) is not value:
            var.set(value)
    return result


_UNSET: Any = object()
_EXIT_ARGS = ("typ", "value", "traceback")
