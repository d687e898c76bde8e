# Declaring WebSocket routes: ``WebSocketRoute`` values, collected by ``Router.websocket``.
#
# A WebSocket route is a path and an ``async def`` handler that receives a ``WebSocket``. Its
# handler and dependencies compile into the same dependency plan as an HTTP route's (path,
# query, header and cookie parameters; ``Depends`` with ``yield``; ``BackgroundTasks``), with the
# ``WebSocket`` injected where a ``Request`` would be. What a WebSocket cannot have (a request
# body, an injected ``Response``, a sync handler) is refused here, at declaration.
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ._dependencies import CallKind, Compiler, DependencyOverrides
from ._forms import FORM_SOURCES
from ._params import DependsInfo
from ._routing import compile_path
from ._scope import Scope, declaring_scope
from ._solve import Solver, compile_solver


@attrs.define(eq=False)
class WebSocketRoute:
    """One WebSocket endpoint: a path and the ``async def`` handler that serves it."""

    path: str
    endpoint: Callable[..., Any]
    dependencies: list[DependsInfo] = attrs.field(factory=list)
    name: str = ""
    #: Where the route was declared: its annotations are resolved there (``_scope.py``).
    scope: Scope = attrs.field(
        default=attrs.Factory(lambda route: declaring_scope(route.endpoint), takes_self=True),
        kw_only=True,
        repr=False,
    )
    _solver: Solver | None = attrs.field(default=None, init=False, repr=False)
    _solver_version: int = attrs.field(default=-1, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.name:
            self.name = getattr(self.endpoint, "__name__", "endpoint")
        self.solver(DependencyOverrides())  # fail at declaration, not at the first connection

    def solver(self, overrides: DependencyOverrides) -> Solver:
        """The compiled plan for this route, rebuilt when ``overrides`` has changed.

        Raises:
            TypeError: the handler is not ``async def``, or something in its tree asks for a
                request body or an injected ``Response``, which a WebSocket does not have.
        """
        solver = self._solver
        if solver is not None and self._solver_version == overrides.version:
            return solver
        compiler = Compiler(
            compile_path(self.path).param_names, overrides, websocket=True, scope=self.scope
        )
        plan = compiler.plan(self.endpoint, self.dependencies)
        where = f"WebSocket route {self.path!r}"
        if plan.root.kind is not CallKind.ASYNC:
            raise TypeError(f"{where}: the handler must be an 'async def' function")
        from_body = [spec.name for spec in plan.body]
        from_body += [p.name for r in plan.readers for p in r.params if p.source in FORM_SOURCES]
        if from_body:
            names = ", ".join(from_body)
            raise TypeError(
                f"{where}: parameter(s) {names} would be read from a request body, which a "
                "WebSocket handshake does not have; receive them as messages, or declare them "
                "as Query/Header/Cookie parameters"
            )
        if plan.needs_response:
            raise TypeError(f"{where}: a WebSocket has no Response to inject")
        solver = self._solver = compile_solver(plan, f"WEBSOCKET {self.path}")
        self._solver_version = overrides.version
        return solver
