# Solving a route's dependency plan for one request.
#
# ``_dependencies.Compiler`` turns a handler's signature tree into a ``Plan`` once per route.
# This module is the per-request side: reading and converting request values, entering
# ``yield`` dependencies, running sync code in threads, and the code generator that writes
# each plan out as one straight-line coroutine.
#
# Why generate code: a plan is fixed per route, but solving it generically (a loop over
# readers, a dict per callable, a cache dict, a coroutine frame per dependency) cost more than a
# whole bare request. ``compile_solver`` writes the Python a person would write by hand for that
# route and compiles it once, as attrs does for ``__init__`` and cattrs for structuring hooks.
# The generated function keeps the two passes: pass one reads *every* request value into locals
# and raises one ``RequestValidationError`` listing all problems, before any user code runs;
# pass two awaits each dependency in declaration order, then the handler. The per-request
# dependency cache is resolved while writing: a cached dependency's second use is its local.
# ``Solver.source`` holds the text, and tracebacks show its lines (it is put in ``linecache``).
from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
import linecache
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import trio

from ._convert import ConversionError, ErrorDetail, errors_from_structuring, scalar_converter
from ._dependencies import BodySpec, CallKind, Dependant, ParamSpec, Plan, SubDependency
from ._encode import converter as body_converter
from ._exceptions import HTTPException, RequestValidationError
from ._forms import FORM_SOURCES, read_form_param
from ._requests import Request
from ._uploads import UploadFile

# --- reading request values -----------------------------------------------------------------


def read_param(
    spec: ParamSpec, request: Request, path_params: Mapping[str, str], errors: list[ErrorDetail]
) -> Any:
    source = spec.source
    if source in FORM_SOURCES:
        return read_form_param(spec, request, errors)
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
        errors.extend(spec.marker.check(result, (source, spec.wire)))
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
        errors.extend(spec.marker.check(result, loc))
    return result


_JSON_TYPES = ("application/json",)


async def load_body(plan: Plan, request: Request, errors: list[ErrorDetail]) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    media = content_type.partition(";")[0].strip().lower()
    wrong_type = bool(media) and media not in _JSON_TYPES and not media.endswith("+json")
    if wrong_type and request._has_unread_body():
        raise _wrong_type(media)  # decided from the headers: the body is never read
    raw = await request.body()
    if not raw:
        if all(not spec.required for spec in plan.body):
            return {spec.wire: spec.default for spec in plan.body}
        errors.append(ErrorDetail(("body",), "a JSON body is required", "missing"))
        return {}
    if wrong_type:
        raise _wrong_type(media)
    payload = await request.json()
    return _read_body(plan, payload, errors)


async def load_form(request: Request, whole_files: tuple[str, ...]) -> None:
    """Read the form (``Form``/``File`` parameters), streaming its files to disk.

    The files of ``bytes`` parameters (``whole_files``, by field name) are then read into
    memory, in worker threads, so converting them (``_whole_file``) needs no I/O. What such a
    file may hold is bounded by the upload limits' ``max_file_size``, as any file is.
    """
    form = await request.form()
    for wire in whole_files:
        for value in form.getlist(wire):
            if isinstance(value, UploadFile) and value._content is None:
                await value.seek(0)
                value._content = await value.read()
                await value.seek(0)  # as found, for any other reader of the same part


def _wrong_type(media: str) -> HTTPException:
    return HTTPException(
        415, f"expected a JSON body (Content-Type: application/json), got {media!r}"
    )


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


async def enter_generator(
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


# --- the generated solver --------------------------------------------------------------------

#: The coroutine written for a plan, called by the pipeline as
#: ``solve(request, path_params, tasks, response, teardown, function_stack, limiter)``.
SolveFunction = Callable[..., Awaitable[Any]]

_IDENTITY = scalar_converter(str)
_counter = itertools.count()


@attrs.frozen(eq=False)
class Solver:
    """A route's plan, written out and compiled.

    Attributes:
        plan: What was compiled.
        solve: The generated coroutine function.
        source: Its text, for reading and debugging (``print(solver.source)``).
        needs_teardown: Some ``yield`` dependency is torn down after the response, so the
            pipeline must pass a ``Teardown``.
    """

    plan: Plan
    solve: SolveFunction
    source: str
    needs_teardown: bool


def compile_solver(plan: Plan, label: str) -> Solver:
    """Write ``plan`` out as one coroutine function and compile it.

    ``label`` (e.g. ``"GET /items/{item_id}"``) names the generated file in tracebacks.
    """
    writer = _SolverWriter(plan)
    source = writer.write()
    filename = f"<triobg solver {next(_counter)}: {label}>"
    code = compile(source, filename, "exec")
    namespace = dict(writer.names)
    exec(code, namespace)  # our own generated text; every outside value is passed as a name
    # Let tracebacks and debuggers show the generated lines, as attrs does for its methods.
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    return Solver(plan, namespace["solve"], source, writer.needs_teardown)


class _SolverWriter:
    """Writes the source of one plan's solver.

    Every value the code needs (callables, specs, defaults, converters) is passed in as a
    global of the generated module under a made-up name, so nothing from a user's code is ever
    spliced into the text except parameter names, which are Python identifiers, and wire names
    and sources, which are written with ``repr``.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.lines: list[str] = []
        self.names: dict[str, Any] = {
            "_ConversionError": ConversionError,
            "_ErrorDetail": ErrorDetail,
            "_RequestValidationError": RequestValidationError,
            "_read_param": read_param,
            "_load_body": load_body,
            "_load_form": load_form,
            "_run_sync": run_sync,
            "_enter_generator": enter_generator,
            "_plan": plan,
        }
        self.locals_of: dict[tuple[int, str], str] = {}  # (id(reader), argument) -> local
        self.cache: dict[Any, str] = {}  # dependency callable -> local holding its value
        self.results = 0
        self.needs_teardown = False

    def name(self, prefix: str, value: Any) -> str:
        name = f"_{prefix}{len(self.names)}"
        self.names[name] = value
        return name

    def line(self, text: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + text)

    def write(self) -> str:
        self.lines.append(
            "async def solve(request, path_params, tasks, response, teardown, function_stack, "
            "limiter):"
        )
        self.line("# pass one: every request value, converted; all problems reported at once")
        self.line("errors = []")
        if self.plan.body:
            self.line("body = await _load_body(_plan, request, errors)")
        form_params = self.plan.form_params
        if form_params:
            whole = {spec.wire for spec in form_params if spec.whole_file}
            self.line(f"await _load_form(request, {tuple(sorted(whole))!r})")
        if any(_inline_source(spec) == "query" for r in self.plan.readers for spec in r.params):
            self.line("query = request.query_params")
        for index, reader in enumerate(self.plan.readers):
            for spec in reader.params:
                local = f"v{index}_{spec.name}"
                self.locals_of[id(reader), spec.name] = local
                self.read_param(spec, local)
            for body_spec in reader.body:
                local = f"v{index}_{body_spec.name}"
                self.locals_of[id(reader), body_spec.name] = local
                self.read_body(body_spec, local)
        self.line("if errors:")
        self.line("raise _RequestValidationError(errors)", 2)
        self.line("# pass two: dependencies in declaration order, then the handler")
        root = self.plan.root
        arguments = self.arguments(root)
        self.line(f"return {self.call(root, arguments)}")
        return "\n".join(self.lines) + "\n"

    def read_param(self, spec: ParamSpec, local: str) -> None:
        source = _inline_source(spec)
        if source is None:  # lists, headers, cookies, bounds: the general reader
            self.line(
                f"{local} = _read_param({self.name('spec', spec)}, request, path_params, errors)"
            )
            return
        loc = f"({spec.source!r}, {spec.wire!r})"
        getter = "path_params" if source == "path" else "query"
        self.line(f"{local} = {getter}.get({spec.wire!r})")
        self.line(f"if {local} is None:")
        if spec.required:
            self.line(f"errors.append(_ErrorDetail({loc}, 'field required', 'missing'))", 2)
        else:
            self.line(f"{local} = {self.name('default', spec.default)}", 2)
        if spec.convert is _IDENTITY:
            return
        self.line("else:")
        self.line("try:", 2)
        self.line(f"{local} = {self.name('convert', spec.convert)}({local})", 3)
        self.line("except _ConversionError as error:", 2)
        self.line(f"errors.append(_ErrorDetail({loc}, error.msg, error.kind))", 3)
        self.line(f"{local} = None", 3)

    def read_body(self, spec: BodySpec, local: str) -> None:
        self.line(f"{local} = body.get({spec.wire!r}, {self.name('default', spec.default)})")

    def arguments(self, dep: Dependant) -> list[tuple[str, str]]:
        """Write the statements that compute ``dep``'s arguments; return (name, local) pairs."""
        arguments = [(spec.name, self.locals_of[id(dep), spec.name]) for spec in dep.params]
        arguments += [(spec.name, self.locals_of[id(dep), spec.name]) for spec in dep.body]
        for sub in dep.deps:
            local = self.value_of(sub)
            if sub.arg is not None:
                arguments.append((sub.arg, local))
        if dep.request_arg is not None:
            arguments.append((dep.request_arg, "request"))
        if dep.tasks_arg is not None:
            arguments.append((dep.tasks_arg, "tasks"))
        if dep.response_arg is not None:
            arguments.append((dep.response_arg, "response"))
        return arguments

    def value_of(self, sub: SubDependency) -> str:
        target = sub.dependant
        if sub.use_cache and target.call in self.cache:
            return self.cache[target.call]
        arguments = self.arguments(target)
        local = f"d{self.results}"
        self.results += 1
        if target.context_factory is None:
            self.line(f"{local} = {self.call(target, arguments)}")
        else:
            # ``yield`` dependencies: entered now, exited from a stack in reverse order later
            # (``scope="function"`` ones before the response, the others after the tasks).
            if sub.scope == "function":
                stack = "function_stack"
            else:
                stack = "teardown.get()"
                self.needs_teardown = True
            dep = self.name("dep", target)
            self.line(
                f"{local} = await _enter_generator({dep}, {stack}, {_as_dict(arguments)}, limiter)"
            )
        if sub.use_cache:
            self.cache[target.call] = local
        return local

    def call(self, dep: Dependant, arguments: list[tuple[str, str]]) -> str:
        function = self.name("call", dep.call)
        if dep.kind is CallKind.ASYNC:
            keywords = ", ".join(f"{name}={local}" for name, local in arguments)
            return f"await {function}({keywords})"
        return f"await _run_sync({function}, {_as_dict(arguments)}, limiter)"


def _inline_source(spec: ParamSpec) -> str | None:
    """``path``/``query`` for values the solver reads inline; None for the general reader."""
    if spec.source in ("path", "query") and not spec.many and not spec.marker.has_bounds:
        return spec.source
    return None


def _as_dict(arguments: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{name!r}: {local}" for name, local in arguments) + "}"
