# Declaring routes: ``Route`` values and the ``Router`` that collects them.
#
# A ``Router`` is a list of routes with a prefix and shared dependencies ("bigger applications"):
# ``app.include_router(router)`` copies its routes into the app. Each route compiles its handler
# into a dependency plan lazily, and again only if ``app.dependency_overrides`` has changed.
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypedDict, TypeVar, Unpack

import attrs

from ._dependencies import Compiler, DependencyOverrides
from ._encode import dump_json
from ._params import DependsInfo
from ._response_model import UNSET, ResponseFilter, response_filter
from ._responses import JSONResponse, Response, no_body_status
from ._routing import compile_path
from ._scope import Scope, declared_in, declaring_scope
from ._solve import Solver, compile_solver
from ._uploads import UploadLimits
from ._websocket_routes import WebSocketRoute

Handler = TypeVar("Handler", bound=Callable[..., Any])


class RouteOptions(TypedDict, total=False):
    """Options every route decorator takes.

    Attributes:
        status_code: Status of the response built from the return value (default 200).
        response_class: How a plain return value is rendered (default ``JSONResponse``).
        dependencies: Run before the handler, results discarded.
        name: A name for the route (default: the function's name).
        response_model: The type of the response body. The handler's return value is
            validated and filtered through it (fields not in the model are never sent) and it
            documents the response. Default: the return annotation when it names an attrs
            model (``-> UserOut``, ``-> list[UserOut]``); ``None`` turns both off.
        tags: Groups the operation under these names in the OpenAPI document and ``/docs``.
        summary: A one-line title (default: the function's name in words).
        description: Longer text, Markdown (default: the handler's docstring, up to a ``\\f``).
        response_description: Text for the success response (default "Successful Response").
        responses: More responses to document, by status code: ``{404: {"description":
            "Not found", "model": Message}}`` (``model`` becomes the JSON body's schema).
        deprecated: Mark the operation deprecated in the document.
        operation_id: The operation's id (default: from the function's name, made unique).
        include_in_schema: ``False`` leaves the route out of the OpenAPI document.
        openapi_extra: Merged into the operation's OpenAPI object last (nested dicts key by
            key), for what triobg cannot see, such as a raw body read from ``Request``.
        upload_limits: This route's form and upload limits (an ``UploadLimits``) instead of
            the app's: a route that takes videos may allow more than the rest.
    """

    status_code: int
    response_class: type[Response]
    dependencies: Sequence[DependsInfo] | None
    name: str | None
    response_model: Any
    tags: Sequence[str] | None
    summary: str | None
    description: str | None
    response_description: str
    responses: Mapping[int | str, Mapping[str, Any]] | None
    deprecated: bool | None
    operation_id: str | None
    include_in_schema: bool
    openapi_extra: Mapping[str, Any] | None
    upload_limits: UploadLimits | None


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# FastAPI's path operation options that triobg does not implement yet. Each is refused by name:
# accepting ``response_model_exclude={"password"}`` and ignoring it would send the password to
# the client.
_FASTAPI_ONLY = frozenset(
    {
        "response_model_include",
        "response_model_exclude",
        "response_model_by_alias",
        "response_model_exclude_unset",
        "response_model_exclude_defaults",
        "response_model_exclude_none",
        "callbacks",
        "generate_unique_id_function",
    }
)


def check_route_options(path: str, options: dict[str, Any]) -> None:
    """Refuse, at declaration, every option a route does not understand.

    Raises:
        TypeError: naming the option, and saying so when it is one of FastAPI's that triobg
            does not support yet (rather than a typo such as ``status=202``).
    """
    for name in options:
        if name in RouteOptions.__annotations__:
            continue
        known = ", ".join(sorted(RouteOptions.__annotations__))
        if name in _FASTAPI_ONLY:
            raise TypeError(
                f"route {path!r}: {name}= is a FastAPI option that triobg does not support "
                f"yet; it is refused rather than ignored (route options: {known})"
            )
        raise TypeError(f"route {path!r}: unknown option {name}= (route options: {known})")


class _UnsetStatus(Response):
    """The ``Response`` injected into handlers that declare one: headers, cookies and status
    set on it are copied onto the response built from the handler's return value."""

    def __init__(self) -> None:
        super().__init__()
        self.status_code = 0  # 0: not set by the handler
        self._raw.clear()

    def _init_content_headers(self, media_type: str | None) -> None:
        return


@attrs.define(eq=False)
class Route:
    """One path operation: a path, its methods, and the handler that answers them."""

    path: str
    methods: frozenset[str]
    endpoint: Callable[..., Any]
    status_code: int = 200
    response_class: type[Response] = JSONResponse
    dependencies: list[DependsInfo] = attrs.field(factory=list)
    name: str = ""
    #: What the route documents (``_openapi.py`` reads these; nothing per request does).
    response_model: Any = attrs.field(default=UNSET, kw_only=True)
    tags: list[str] = attrs.field(factory=list, kw_only=True)
    summary: str | None = attrs.field(default=None, kw_only=True)
    description: str | None = attrs.field(default=None, kw_only=True)
    response_description: str = attrs.field(default="Successful Response", kw_only=True)
    responses: dict[int | str, Mapping[str, Any]] = attrs.field(factory=dict, kw_only=True)
    deprecated: bool | None = attrs.field(default=None, kw_only=True)
    operation_id: str | None = attrs.field(default=None, kw_only=True)
    include_in_schema: bool = attrs.field(default=True, kw_only=True)
    openapi_extra: Mapping[str, Any] | None = attrs.field(default=None, kw_only=True)
    #: Where the route was declared: its annotations are resolved there (``_scope.py``).
    scope: Scope = attrs.field(
        default=attrs.Factory(lambda route: declaring_scope(route.endpoint), takes_self=True),
        kw_only=True,
        repr=False,
    )
    #: Form and upload limits for this route (``None``: the app's).
    upload_limits: UploadLimits | None = attrs.field(default=None, kw_only=True)
    _solver: Solver | None = attrs.field(default=None, init=False, repr=False)
    # Facts ``make_response`` reads per request, worked out once.
    _plain_json: bool = attrs.field(default=False, init=False, repr=False)
    _no_body: bool = attrs.field(default=False, init=False, repr=False)
    _solver_version: int = attrs.field(default=-1, init=False, repr=False)
    # ``response_model``'s validate-and-filter step; ``None`` (most routes) costs nothing.
    _filter: ResponseFilter | None = attrs.field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        unknown = self.methods - METHODS
        if unknown:
            raise ValueError(
                f"unknown HTTP method(s) for {self.path}: {', '.join(sorted(unknown))}"
            )
        if not self.name:
            self.name = getattr(self.endpoint, "__name__", "endpoint")
        self.solver(DependencyOverrides())  # fail at declaration, not at the first request
        self._filter = response_filter(self.endpoint, self.response_model, self.path, self.scope)
        # Routes with a filter leave the fast path below, so routes without one pay nothing.
        self._plain_json = self.response_class is JSONResponse and self._filter is None
        self._no_body = no_body_status(self.status_code)

    def solver(self, overrides: DependencyOverrides) -> Solver:
        """The compiled plan for this route, rebuilt when ``overrides`` has changed."""
        solver = self._solver
        if solver is None or self._solver_version != overrides.version:
            compiler = Compiler(compile_path(self.path).param_names, overrides, scope=self.scope)
            plan = compiler.plan(self.endpoint, self.dependencies)
            label = f"{'/'.join(sorted(self.methods))} {self.path}"
            solver = self._solver = compile_solver(plan, label)
            self._solver_version = overrides.version
        return solver

    def make_response(self, result: Any, injected: Response | None) -> Response:
        """Wrap a handler's return value (unless it already is a ``Response``)."""
        if isinstance(result, Response):
            return result
        if injected is None and self._plain_json:
            return JSONResponse._encoded(dump_json(result), self.status_code, self._no_body)
        if self._filter is not None:
            result = self._filter(result)
            if injected is None and self.response_class is JSONResponse:
                return JSONResponse._encoded(dump_json(result), self.status_code, self._no_body)
        status = self.status_code
        if injected is not None and injected.status_code:
            status = injected.status_code
        response = self.response_class(result, status_code=status)
        if injected is not None and injected.raw_headers:
            response.raw_headers.extend(injected.raw_headers)
        return response


def new_injected_response() -> Response:
    return _UnsetStatus()


class Router:
    """A group of routes with a common ``prefix`` and ``dependencies``.

    Args:
        prefix: Prepended to every path, e.g. ``"/users"``.
        dependencies: Run before every handler of this router, results discarded (for checks
            such as authentication).
        tags: OpenAPI tags given to every route of this router (before the route's own).
    """

    def __init__(
        self,
        *,
        prefix: str = "",
        dependencies: Sequence[DependsInfo] | None = None,
        tags: Sequence[str] | None = None,
    ) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"router prefix {prefix!r} must start with '/' and not end with '/'")
        self.prefix = prefix
        self.dependencies = list(dependencies or [])
        self.tags = list(tags or [])
        self.routes: list[Route] = []
        self.websocket_routes: list[WebSocketRoute] = []
        self.version = 0

    def add_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Iterable[str] = ("GET",),
        **options: Unpack[RouteOptions],
    ) -> Route:
        """Register ``endpoint`` for ``methods`` at ``path`` (relative to the prefix).

        Raises:
            TypeError: an option that routes do not have (see ``check_route_options``).
        """
        check_route_options(path, dict(options))
        route = Route(
            self.prefix + path,
            frozenset(m.upper() for m in methods),
            endpoint,
            options.get("status_code", 200),
            options.get("response_class", JSONResponse),
            [*self.dependencies, *(options.get("dependencies") or [])],
            options.get("name") or "",
            response_model=options.get("response_model", UNSET),
            tags=[*self.tags, *(options.get("tags") or [])],
            summary=options.get("summary"),
            description=options.get("description"),
            response_description=options.get("response_description", "Successful Response"),
            responses=dict(options.get("responses") or {}),
            deprecated=options.get("deprecated"),
            operation_id=options.get("operation_id"),
            include_in_schema=options.get("include_in_schema", True),
            openapi_extra=options.get("openapi_extra"),
            upload_limits=options.get("upload_limits"),
        )
        self.routes.append(route)
        self.version += 1
        return route

    def route(
        self, path: str, *, methods: Iterable[str] = ("GET",), **options: Unpack[RouteOptions]
    ) -> Callable[[Handler], Handler]:
        """Decorator form of ``add_route``; unknown options fail here, before decorating."""
        check_route_options(path, dict(options))

        def register(endpoint: Handler) -> Handler:
            self.add_route(path, endpoint, methods=methods, **options)
            return endpoint

        return register

    def get(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``GET path`` (``HEAD`` is served from it too)."""
        return self.route(path, methods=("GET",), **options)

    def add_websocket_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        dependencies: Sequence[DependsInfo] | None = None,
        name: str | None = None,
    ) -> WebSocketRoute:
        """Register ``endpoint`` (``async def``, given a ``WebSocket``) at ``path``."""
        route = WebSocketRoute(
            self.prefix + path, endpoint, [*self.dependencies, *(dependencies or [])], name or ""
        )
        self.websocket_routes.append(route)
        self.version += 1
        return route

    def websocket(
        self,
        path: str,
        *,
        dependencies: Sequence[DependsInfo] | None = None,
        name: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register the decorated ``async def`` function for WebSocket connections to ``path``."""

        def register(endpoint: Handler) -> Handler:
            self.add_websocket_route(path, endpoint, dependencies=dependencies, name=name)
            return endpoint

        return register

    def post(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``POST path``."""
        return self.route(path, methods=("POST",), **options)

    def put(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``PUT path``."""
        return self.route(path, methods=("PUT",), **options)

    def patch(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``PATCH path``."""
        return self.route(path, methods=("PATCH",), **options)

    def delete(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``DELETE path``."""
        return self.route(path, methods=("DELETE",), **options)

    def head(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``HEAD path`` (instead of the GET fallback)."""
        return self.route(path, methods=("HEAD",), **options)

    def options(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``OPTIONS path``."""
        return self.route(path, methods=("OPTIONS",), **options)

    def include_router(
        self,
        router: Router,
        *,
        prefix: str = "",
        dependencies: Sequence[DependsInfo] | None = None,
        tags: Sequence[str] | None = None,
    ) -> None:
        """Copy ``router``'s routes (as they are now) into this one, under ``prefix``.

        ``tags`` are added before each route's own (and after this router's).
        """
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"include prefix {prefix!r} must start with '/' and not end with '/'")
        for route in router.routes:
            with declared_in(route.scope):
                self._add_copy(prefix, dependencies, tags, route)
        for ws_route in router.websocket_routes:
            with declared_in(ws_route.scope):
                self.add_websocket_route(
                    prefix + ws_route.path,
                    ws_route.endpoint,
                    dependencies=[*(dependencies or []), *ws_route.dependencies],
                    name=ws_route.name,
                )

    def _add_copy(
        self,
        prefix: str,
        dependencies: Sequence[DependsInfo] | None,
        tags: Sequence[str] | None,
        route: Route,
    ) -> None:
        self.add_route(
            prefix + route.path,
            route.endpoint,
            methods=route.methods,
            status_code=route.status_code,
            response_class=route.response_class,
            dependencies=[*(dependencies or []), *route.dependencies],
            name=route.name,
            response_model=route.response_model,
            tags=[*(tags or []), *route.tags],
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses=route.responses,
            deprecated=route.deprecated,
            operation_id=route.operation_id,
            include_in_schema=route.include_in_schema,
            openapi_extra=route.openapi_extra,
            upload_limits=route.upload_limits,
        )
