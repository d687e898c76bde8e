# Declaring routes: ``Route`` values and the ``Router`` that collects them.
#
# A ``Router`` is a list of routes with a prefix and shared dependencies ("bigger applications"):
# ``app.include_router(router)`` copies its routes into the app. Each route compiles its handler
# into a dependency plan lazily, and again only if ``app.dependency_overrides`` has changed.
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypedDict, TypeVar, Unpack

import attrs

from ._dependencies import Compiler, DependencyOverrides
from ._encode import dump_json
from ._params import DependsInfo
from ._responses import JSONResponse, Response, no_body_status
from ._routing import compile_path
from ._solve import Solver, compile_solver
from ._websocket_routes import WebSocketRoute

Handler = TypeVar("Handler", bound=Callable[..., Any])


class RouteOptions(TypedDict, total=False):
    """Options every route decorator takes.

    Attributes:
        status_code: Status of the response built from the return value (default 200).
        response_class: How a plain return value is rendered (default ``JSONResponse``).
        dependencies: Run before the handler, results discarded.
        name: A name for the route (default: the function's name).
    """

    status_code: int
    response_class: type[Response]
    dependencies: Sequence[DependsInfo] | None
    name: str | None


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# FastAPI's path operation options that triobg does not implement yet. Each is refused by name:
# accepting ``response_model=UserOut`` and ignoring it would send every field the handler
# returns, a password included, to the client.
_FASTAPI_ONLY = frozenset(
    {
        "response_model",
        "response_model_include",
        "response_model_exclude",
        "response_model_by_alias",
        "response_model_exclude_unset",
        "response_model_exclude_defaults",
        "response_model_exclude_none",
        "tags",
        "summary",
        "description",
        "response_description",
        "responses",
        "deprecated",
        "operation_id",
        "include_in_schema",
        "callbacks",
        "openapi_extra",
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
    _solver: Solver | None = attrs.field(default=None, init=False, repr=False)
    # Facts ``make_response`` reads per request, worked out once.
    _plain_json: bool = attrs.field(default=False, init=False, repr=False)
    _no_body: bool = attrs.field(default=False, init=False, repr=False)
    _solver_version: int = attrs.field(default=-1, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        unknown = self.methods - METHODS
        if unknown:
            raise ValueError(
                f"unknown HTTP method(s) for {self.path}: {', '.join(sorted(unknown))}"
            )
        if not self.name:
            self.name = getattr(self.endpoint, "__name__", "endpoint")
        self._plain_json = self.response_class is JSONResponse
        self._no_body = no_body_status(self.status_code)
        self.solver(DependencyOverrides())  # fail at declaration, not at the first request

    def solver(self, overrides: DependencyOverrides) -> Solver:
        """The compiled plan for this route, rebuilt when ``overrides`` has changed."""
        solver = self._solver
        if solver is None or self._solver_version != overrides.version:
            compiler = Compiler(compile_path(self.path).param_names, overrides)
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
    """

    def __init__(
        self, *, prefix: str = "", dependencies: Sequence[DependsInfo] | None = None
    ) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"router prefix {prefix!r} must start with '/' and not end with '/'")
        self.prefix = prefix
        self.dependencies = list(dependencies or [])
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
    ) -> None:
        """Copy ``router``'s routes (as they are now) into this one, under ``prefix``."""
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"include prefix {prefix!r} must start with '/' and not end with '/'")
        for route in router.routes:
            self.add_route(
                prefix + route.path,
                route.endpoint,
                methods=route.methods,
                status_code=route.status_code,
                response_class=route.response_class,
                dependencies=[*(dependencies or []), *route.dependencies],
                name=route.name,
            )
        for ws_route in router.websocket_routes:
            self.add_websocket_route(
                prefix + ws_route.path,
                ws_route.endpoint,
                dependencies=[*(dependencies or []), *ws_route.dependencies],
                name=ws_route.name,
            )
