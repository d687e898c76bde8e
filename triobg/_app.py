# The application object: configuration, route registration, middleware, and the ASGI entry.
#
# ``App`` is what users create and what servers call. It holds the routes (through a root
# ``Router``), the exception handlers, the middleware stack, the lifespan, the request limits,
# the thread limiter for sync handlers and the ``BackgroundRunner`` for tasks. The work of
# answering a request lives in ``_pipeline.py``; the lifespan protocol in ``_lifespan.py``.
from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar, Unpack
from urllib.parse import quote, quote_from_bytes, unquote

import trio

from ._background import DEFAULT_MAX_QUEUED_TASKS, BackgroundRunner, TaskFailure
from ._dependencies import DependencyOverrides
from ._docs import install_docs
from ._durable._store import TaskStore
from ._durable._task import DurableTask
from ._durable._tasks import DurableTasks
from ._errors import DEFAULT_HANDLERS, ExceptionHandler
from ._exceptions import HTTPException
from ._lifespan import handle_lifespan
from ._mount import Mount, NoMatchFound, check_mount_path, find_mount
from ._openapi import OpenAPICache, OpenAPIInfo, openapi_document
from ._params import DependsInfo
from ._pipeline import handle_http
from ._requests import Receive, RequestLimits, State
from ._responses import RedirectResponse, Send, is_same_site_reference
from ._routes import Handler, Route, RouteOptions, Router
from ._routing import PathTable, compile_path
from ._uploads import UploadLimits
from ._url import split_root
from ._websocket_pipeline import WebSocketSessions, handle_websocket
from ._websocket_routes import WebSocketRoute
from ._websockets import WebSocketLimits

P = ParamSpec("P")
R = TypeVar("R")
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]
Lifespan = Callable[["App"], contextlib.AbstractAsyncContextManager[Any]]
E = TypeVar("E", bound=ExceptionHandler)


class _Redirect(HTTPException):
    """Internal: the path only matches with/without a trailing slash; answer 307 to it."""

    def __init__(self, location: str) -> None:
        super().__init__(307, headers={"location": location})
        self.location = location


# Kept as they are in a redirect's Location: ``%`` (the client's escapes stay as sent) and the
# characters RFC 3986 allows unescaped in a path or query; everything else is escaped.
_PATH_SAFE = "/%!$&'()*+,;=:@"
_QUERY_SAFE = _PATH_SAFE + "?"


def _other_slash_form(path: str, raw_path: bytes | None) -> tuple[str, bytes]:
    """``path`` with its trailing slash toggled, decoded and raw (percent-encoded).

    The raw form comes from the client's own ``raw_path`` when it matches ``path``, so that an
    encoded ``/`` stays inside its segment; otherwise it is ``path`` percent-encoded.
    """
    other = path[:-1] if path.endswith("/") else path + "/"
    if raw_path and unquote(raw_path.decode("latin-1")) == path:
        return other, raw_path[:-1] if raw_path.endswith(b"/") else raw_path + b"/"
    return other, quote(other, safe="/").encode("ascii")


def _to_origin_form(scope: dict[str, Any]) -> None:
    """Rewrite an absolute-form target (``GET http://host/ping``) to its path, in place.

    HTTP/1.1 servers must accept the absolute form (RFC 9112 section 3.2.2), which clients use
    when they think they talk to a proxy; hypercorn passes it on as the path, which no route
    matches. The target's authority replaces the ``Host`` header, as the RFC says. Anything
    else that does not start with ``/`` (``*``, garbage) is left alone, to be a 404.
    """
    path: str = scope["path"]
    scheme, sep, rest = path.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return
    authority, slash, tail = rest.partition("/")
    scope["path"] = slash + tail if slash else "/"
    raw: bytes = scope.get("raw_path") or path.encode("latin-1")
    raw_rest = raw.partition(b"://")[2]
    raw_slash, raw_tail = raw_rest.partition(b"/")[1:]
    scope["raw_path"] = raw_slash + raw_tail if raw_slash else b"/"
    if authority:
        host = authority.encode("latin-1", "replace")
        headers = [(k, v) for k, v in scope.get("headers", ()) if k != b"host"]
        scope["headers"] = [(b"host", host), *headers]


def _redirect_handler(request: Any, error: _Redirect) -> RedirectResponse:
    return RedirectResponse(error.location, 307)


class App:
    """A triobg application: an ASGI callable for hypercorn's trio worker and ``triobg.serve``.

    Args:
        lifespan: ``async with lifespan(app) as state:`` runs around the server's life; a
            mapping it yields becomes ``app.state`` and ``request.state``.
        dependencies: Run before every handler, results discarded.
        drain_timeout: Seconds background tasks get to finish once shutdown begins; tasks still
            running then are cancelled and named in the log (default 30).
        max_running_tasks: Most background tasks running at once; the rest wait their turn.
        max_queued_tasks: Most background tasks waiting at once; beyond it ``add_task`` answers
            503 instead of accepting work it cannot promise to do. Default 8192: a request
            whose tasks wait keeps about 8.5 KB alive (measured under hypercorn), so the queue
            holds at most about 70 MB. Raise it by that arithmetic if you have the memory.
        task_threads: Worker threads for ``def`` background tasks.
        sync_threads: Worker threads for ``def`` handlers and dependencies (a separate pool, so
            slow tasks never starve request handling).
        on_task_error: Called with a ``TaskFailure`` whenever a background task raises.
        max_body_size, max_json_depth, max_query_params, min_body_rate, body_grace: Request
            limits; see ``RequestLimits``.
        redirect_slashes: Answer ``/items/`` with a 307 to ``/items`` (and back) when only the
            other form is routed.
        title, version, description: The API's name, version and (Markdown) description in its
            OpenAPI document and on the ``/docs`` page.
        servers: The document's ``servers`` (e.g. ``[{"url": "/api"}]`` behind a proxy that
            serves the app under a prefix).
        openapi_url: Where the OpenAPI 3.1 document is served; ``None`` turns it (and the
            docs) off.
        docs_url: Where Swagger UI is served; ``None`` turns it off.
        swagger_js_url, swagger_css_url: Load Swagger UI from these URLs (a CDN) instead of
            the installed ``triobg[swagger]`` package.
        task_store: Where durable tasks (``@app.task``) are kept: a ``TaskStore`` or a URL
            (``"sqlite:///path/to/tasks.sqlite3"``). Default: ``$TRIOBG_TASK_STORE``, else
            ``triobg-tasks.sqlite3`` in the current directory, created on first use (an app
            without durable tasks never creates it).
        websocket_limits: Message size and send timeout for every WebSocket; see
            ``WebSocketLimits``.
        upload_limits: Sizes and counts a form body may reach, and where uploaded files are
            written; see ``UploadLimits``. A route's ``upload_limits=`` overrides it.
    """

    def __init__(
        self,
        *,
        lifespan: Lifespan | None = None,
        dependencies: Sequence[DependsInfo] | None = None,
        drain_timeout: float = 30.0,
        max_running_tasks: int | None = 1024,
        max_queued_tasks: int | None = DEFAULT_MAX_QUEUED_TASKS,
        task_threads: int = 40,
        sync_threads: int = 40,
        on_task_error: Callable[[TaskFailure], Awaitable[None] | None] | None = None,
        max_body_size: int = 1024 * 1024,
        max_json_depth: int = 64,
        max_query_params: int = 1000,
        min_body_rate: float | None = 1024.0,
        body_grace: float = 10.0,
        redirect_slashes: bool = True,
        title: str = "triobg",
        version: str = "0.1.0",
        description: str | None = None,
        servers: Sequence[Mapping[str, Any]] | None = None,
        openapi_url: str | None = "/openapi.json",
        docs_url: str | None = "/docs",
        swagger_js_url: str | None = None,
        swagger_css_url: str | None = None,
        task_store: TaskStore | str | None = None,
        websocket_limits: WebSocketLimits | None = None,
        upload_limits: UploadLimits | None = None,
    ) -> None:
        if not drain_timeout >= 0 or math.isnan(drain_timeout):
            raise ValueError("drain_timeout must be a number of seconds >= 0")
        self.lifespan = lifespan
        self.router = Router(dependencies=dependencies)
        self.state = State()
        self.limits = RequestLimits(
            max_body_size, max_json_depth, max_query_params, min_body_rate, body_grace
        )
        self.redirect_slashes = redirect_slashes
        self.dependency_overrides = DependencyOverrides()
        self.sync_limiter = trio.CapacityLimiter(sync_threads)
        self.background = BackgroundRunner(
            drain_timeout=drain_timeout,
            max_running_tasks=max_running_tasks,
            max_queued_tasks=max_queued_tasks,
            thread_limiter=trio.CapacityLimiter(task_threads),
            on_task_error=on_task_error,
        )
        self.tasks = DurableTasks(task_store, self.background)
        self.websocket_limits = websocket_limits or WebSocketLimits()
        self.upload_limits = upload_limits or UploadLimits()
        self.websockets = WebSocketSessions(self.background)
        self.exception_handlers: dict[type[BaseException], ExceptionHandler] = {
            **DEFAULT_HANDLERS,
            _Redirect: _redirect_handler,
        }
        self._middleware: list[tuple[Callable[..., ASGIApp], dict[str, Any]]] = []
        self._mounts: list[Mount] = []
        self._stack: ASGIApp | None = None
        self._direct = False  # set with the stack: no middleware between server and pipeline
        self._table: PathTable[Route] | None = None
        self._table_version = -1
        self.title, self.version, self.description = title, version, description
        self.servers = [dict(server) for server in servers or ()]
        self._openapi_cache = OpenAPICache()
        install_docs(
            self,
            openapi_url=openapi_url,
            docs_url=docs_url,
            swagger_js_url=swagger_js_url,
            swagger_css_url=swagger_css_url,
        )

    # --- describing ------------------------------------------------------------------------

    def openapi(self) -> dict[str, Any]:
        """The app's OpenAPI 3.1 document (what ``openapi_url`` serves).

        Generated on first use and kept until a route is added or ``dependency_overrides``
        changes. Returned as is, not copied. ``openapi_url`` serves what this method returns,
        so a subclass may override it to adjust the document (see the how-to).

        Raises:
            ValueError: two operations share an explicit ``operation_id``.
        """
        return self._openapi_cache.document(self._openapi_key(), self._build_openapi)

    def _openapi_json(self) -> bytes:
        return self._openapi_cache.json(self.openapi())

    def _openapi_key(self) -> tuple[int, int]:
        return (self.router.version, self.dependency_overrides.version)

    def _build_openapi(self) -> dict[str, Any]:
        info = OpenAPIInfo(
            title=self.title,
            version=self.version,
            description=self.description,
            servers=tuple(self.servers),
        )
        return openapi_document(self.router.routes, self.dependency_overrides, info)

    # --- declaring -------------------------------------------------------------------------

    @property
    def routes(self) -> list[Route]:
        return self.router.routes

    def add_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Sequence[str] = ("GET",),
        **options: Unpack[RouteOptions],
    ) -> Route:
        """Register ``endpoint`` for ``methods`` at ``path``."""
        return self.router.add_route(path, endpoint, methods=methods, **options)

    def route(
        self, path: str, *, methods: Sequence[str] = ("GET",), **options: Unpack[RouteOptions]
    ) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``methods`` at ``path``."""
        return self.router.route(path, methods=methods, **options)

    def get(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``GET path`` (``HEAD`` is served from it too)."""
        return self.router.get(path, **options)

    def post(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``POST path``."""
        return self.router.post(path, **options)

    def put(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``PUT path``."""
        return self.router.put(path, **options)

    def patch(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``PATCH path``."""
        return self.router.patch(path, **options)

    def delete(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``DELETE path``."""
        return self.router.delete(path, **options)

    def head(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``HEAD path``."""
        return self.router.head(path, **options)

    def options(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``OPTIONS path``."""
        return self.router.options(path, **options)

    def websocket(
        self,
        path: str,
        *,
        dependencies: Sequence[DependsInfo] | None = None,
        name: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register the decorated ``async def`` function for WebSocket connections to ``path``."""
        return self.router.websocket(path, dependencies=dependencies, name=name)

    def add_websocket_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        dependencies: Sequence[DependsInfo] | None = None,
        name: str | None = None,
    ) -> WebSocketRoute:
        """Register ``endpoint`` (``async def``, given a ``WebSocket``) at ``path``."""
        return self.router.add_websocket_route(path, endpoint, dependencies=dependencies, name=name)

    def include_router(
        self,
        router: Router,
        *,
        prefix: str = "",
        dependencies: Sequence[DependsInfo] | None = None,
        tags: Sequence[str] | None = None,
    ) -> None:
        """Add ``router``'s routes (as they are now) under ``prefix``, with ``tags`` first."""
        self.router.include_router(router, prefix=prefix, dependencies=dependencies, tags=tags)

    def mount(self, path: str, app: ASGIApp, *, name: str | None = None) -> None:
        """Serve the ASGI ``app`` (another ``App``, ``StaticFiles``, any ASGI app) under ``path``.

        Every request (HTTP or WebSocket) whose path is ``path`` or lies below it goes to
        ``app``, ahead of this app's own routes, with ``root_path`` extended by ``path`` (the
        ASGI spec's way of telling a sub-application where it lives). Its lifespan runs inside
        this app's: started after this app's startup, stopped before its shutdown; a mounted
        app that fails to start fails this app's startup. Mounted apps are not part of this
        app's OpenAPI document (a mounted ``App`` serves its own).

        Args:
            path: The prefix, such as ``"/static"``: starts with ``/``, no trailing ``/``.
            app: The ASGI application to serve there.
            name: For ``url_for("name:route")`` (a mounted ``App``'s routes) or
                ``url_for("name", path="/file.css")`` (a path under the mount).

        Raises:
            ValueError: a malformed ``path``, or one already mounted.
            RuntimeError: the app has already started serving.
        """
        check_mount_path(path)
        if self._stack is not None:
            raise RuntimeError("apps must be mounted before the app handles its first call")
        if any(mount.path == path for mount in self._mounts):
            raise ValueError(f"an app is already mounted at {path!r}")
        self._mounts.append(Mount(path, app, name))

    @property
    def mounts(self) -> list[Mount]:
        """The mounted apps, in the order they were mounted (a copy)."""
        return list(self._mounts)

    def url_path_for(self, name: str, /, **path_params: Any) -> str:
        """The path (below the app's root path) of the route called ``name``.

        ``"mount_name:route_name"`` reaches into an app mounted with ``name=``; a bare mount
        name with ``path=`` gives a path under that mount (``url_path_for("static",
        path="/app.css")``). Values are percent-encoded; a ``{name:path}`` value keeps its ``/``.

        Raises:
            NoMatchFound: no route (or mount) of that name takes exactly these parameters.
        """
        wanted = set(path_params)
        takes: list[set[str]] = []
        routes: list[Route | WebSocketRoute] = [*self.router.routes, *self.router.websocket_routes]
        for route in routes:
            if route.name != name:
                continue
            template = compile_path(route.path)
            if set(template.param_names) == wanted:
                return template.url_path(path_params)
            takes.append(set(template.param_names))
        mount_name, colon, rest = name.partition(":")
        for mount in self._mounts:
            if mount.name is None or mount.name != mount_name:
                continue
            if colon:
                inner = getattr(mount.app, "url_path_for", None)
                if inner is not None:
                    with contextlib.suppress(NoMatchFound):
                        return mount.path + str(inner(rest, **path_params))
            elif wanted == {"path"}:
                below = str(path_params["path"]).lstrip("/")
                return mount.path + "/" + quote(below, safe=_PATH_SAFE.replace("%", ""))
        if takes:
            options = " or ".join(
                f"({', '.join(sorted(names))})" if names else "no parameters" for names in takes
            )
            given = ", ".join(sorted(wanted)) or "none"
            raise NoMatchFound(f"route {name!r} takes {options}, not ({given})")
        raise NoMatchFound(f"no route named {name!r}")

    def task(
        self, *, retries: int = 0, timeout: float | None = None, name: str | None = None
    ) -> Callable[[Callable[P, R]], DurableTask[P, R]]:
        """Declare the decorated function (``def`` or ``async def``) a durable task.

        ``add_task(task, ...)`` then stores it before the response is sent, and the app's
        worker runs it after, retrying and recovering it after a crash; see ``DurableTask``.

        Args:
            retries: Further attempts after a failed one (exponential backoff with jitter).
            timeout: Seconds per attempt: an ``async def`` attempt is cancelled, a ``def`` one
                abandoned in its thread; either way the attempt counts as failed.
            name: The stable name it is stored under (default ``module.qualname``).
        """

        def declare(func: Callable[P, R]) -> DurableTask[P, R]:
            return self.tasks.declare(func, name=name, retries=retries, timeout=timeout)

        return declare

    def exception_handler(self, exc_class: type[BaseException]) -> Callable[[E], E]:
        """Decorator: answer ``exc_class`` (and subclasses) with ``handler(request, exc)``.

        In a WebSocket route the handler is given the ``WebSocket`` instead of a request: it
        may close it with a code and reason (``await websocket.close(4000, "...")``), before or
        after ``accept``; what it returns is ignored, and a socket it leaves open is closed
        as without a handler (1008 for an ``HTTPException``, else 1011, or the handshake
        refused).
        """

        def register(handler: E) -> E:
            self.add_exception_handler(exc_class, handler)
            return handler

        return register

    def add_exception_handler(
        self, exc_class: type[BaseException], handler: ExceptionHandler
    ) -> None:
        """Answer ``exc_class`` (and subclasses) with ``handler(request, exc)`` (sync or async)."""
        self.exception_handlers[exc_class] = handler

    def add_middleware(self, middleware: Callable[..., ASGIApp], **options: Any) -> None:
        """Wrap the app in a pure ASGI middleware: ``middleware(app, **options)``.

        The middleware added last is the outermost: it sees a request first and the response
        last. Middleware wraps the whole pipeline, background tasks included, so a middleware
        that waits for the inner app to return also waits for the request's tasks; one that
        only watches ``send`` messages sees the response as soon as it is sent.

        Raises:
            RuntimeError: the app has already started serving.
        """
        if self._stack is not None:
            raise RuntimeError("middleware must be added before the app handles its first call")
        self._middleware.append((middleware, options))

    # --- serving ---------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        stack = self._stack
        if stack is None:
            stack = self._stack = self._build_stack()
        if scope["type"] == "http":
            if scope["path"][:1] != "/":
                _to_origin_form(scope)
            if self._direct:
                # No middleware: straight into the pipeline, one coroutine frame fewer per request.
                await handle_http(self, scope, receive, send)
                return
        await stack(scope, receive, send)

    def _build_stack(self) -> ASGIApp:
        app: ASGIApp = self._dispatch
        self._direct = not self._middleware and not self._mounts
        if not self._middleware:
            return app
        for middleware, options in self._middleware:
            app = middleware(app, **options)
        return app

    async def _dispatch(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if self._mounts and kind in ("http", "websocket"):
            below, _ = split_root(scope)
            mount = find_mount(self._mounts, below)
            if mount is not None:
                return await mount.app(mount.child_scope(scope, below), receive, send)
        if kind == "http":
            return await handle_http(self, scope, receive, send)
        if kind == "lifespan":
            return await handle_lifespan(self, scope, receive, send)
        if kind == "websocket":
            return await handle_websocket(self, scope, receive, send)
        raise RuntimeError(f"triobg does not handle ASGI scope type {kind!r}")

    def _find_route(self, scope: dict[str, Any]) -> tuple[Route, Mapping[str, str]]:
        """Match the request to a route.

        Raises:
            HTTPException: 404 for an unknown path, 405 (with ``Allow``) for a known path
                without this method, 307 when only the other trailing-slash form is routed.
        """
        table = self._table
        if table is None or self._table_version != self.router.version:
            table = self._table = self._build_table()
            self._table_version = self.router.version
        path: str
        raw_path: bytes | None
        if scope.get("root_path"):  # route on the path below it (see ``split_root``)
            path, raw_path = split_root(scope)
        else:
            path, raw_path = scope["path"], scope.get("raw_path")
        found = table.match(path, raw_path)
        if found is None:
            if self.redirect_slashes and path != "/":
                other, raw_other = _other_slash_form(path, raw_path)
                if is_same_site_reference(other) and table.match(other, raw_other) is not None:
                    # Percent-encoded, so that any path (``%2F``, non-Latin-1 text, ``\\``) makes
                    # a valid Location that names the same resource and stays on this site.
                    # The root path (a proxy prefix, a mount) goes in front: the client needs the
                    # whole path.
                    root = quote(scope.get("root_path") or "", safe=_PATH_SAFE)
                    location = root + quote_from_bytes(raw_other, safe=_PATH_SAFE)
                    query = quote_from_bytes(scope.get("query_string", b""), safe=_QUERY_SAFE)
                    raise _Redirect(f"{location}?{query}" if query else location)
            raise HTTPException(404)
        method: str = scope["method"]
        endpoints, params, _ = found
        route = endpoints.get(method)
        if route is None and method == "HEAD":
            route = endpoints.get("GET")
        if route is None:
            allowed = set(endpoints)
            if "GET" in allowed:
                allowed.add("HEAD")
            raise HTTPException(405, headers={"allow": ", ".join(sorted(allowed))})
        return route, params

    def _build_table(self) -> PathTable[Route]:
        table: PathTable[Route] = PathTable()
        for route in self.router.routes:
            table.add(route.path, route.methods, route)
        return table
