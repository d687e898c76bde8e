# ASGI type aliases shared by the benchmark apps and drivers.
#
# The benchmarks must not import triobg's private types (triobg may be absent), so they carry their
# own minimal, structural definitions of the ASGI 3 callable and of the app factories.
from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol, TypeAlias

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
# Loose on purpose: each framework types the ASGI triple its own way (dicts, TypedDict unions),
# and parameter types are contravariant, so no precise alias accepts all five apps.
ASGIApp: TypeAlias = Callable[[Any, Any, Any], Awaitable[None]]


class AppFactory(Protocol):
    """The ``create_app`` every module in ``benchmarks/apps`` exports.

    One signature for all apps lets each benchmark build "the same app" for every framework and
    every task kind without knowing anything framework-specific.
    """

    def __call__(self, kind: str, *, log_dir: str | None = None, extra_routes: int = 0) -> ASGIApp:
        """Build the seed app whose background tasks are of ``kind``.

        Args:
            kind: One of ``benchmarks.apps._work.KINDS``.
            log_dir: Directory for the ``file`` kind's log file.
            extra_routes: Dummy routes registered before the seed route, for the routing scale test.
        """
        ...
